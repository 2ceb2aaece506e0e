"""Benchmark: citation checking of 10,000 answers, and the index build of the whole bundled corpus.

    .venv/bin/python bench/citations.py [--answers 10000]

In a fresh LEGALFT_HOME: builds the statute index of the bundled 4,935 sections (seconds), then
checks 10,000 answers written from the corpus (each citing real, absent and unindexed provisions
around a passage of statute text) and prints answers/s, against the Act detector it replaces
(``legalft.data.stats.cited_acts``, which only finds Act titles) measured on the same answers in
the same run. Then the time checking adds after the last streamed token of an answer (parse,
verdicts, summary line): p50, p95 and max in ms, against the 50 ms target.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_answers(count: int, seed: int = 0) -> list[str]:
    with gzip.open(ROOT / "data" / "uk_legislation_sections.jsonl.gz", "rt", encoding="utf-8") as fh:
        sections = [json.loads(line) for line in fh]
    rng = random.Random(seed)
    answers = []
    for i in range(count):
        s = rng.choice(sections)
        act, number = s["act_title"], s["section"]
        passage = s["text"][: rng.randint(200, 1200)]
        answers.append(
            f"Section {number} of the {act} provides that {passage} Under s. {number}(1) of that Act, and "
            f"sections {rng.randint(1, 5)} to {rng.randint(6, 9)} of this Act, the duty applies; section "
            f"{rng.randint(300, 900)} of the {act} is sometimes cited but does not exist. Compare section "
            f"{rng.randint(1, 200)} of the Companies Act 2006 and paragraph 3 of Schedule 1 to the {act}."
        )
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=10_000)
    args = parser.parse_args()
    os.environ["LEGALFT_HOME"] = tempfile.mkdtemp(prefix="legalft-bench-")

    from legalft.data.stats import cited_acts
    from legalft.legal.citations import check_citations, parse_citations, summarise
    from legalft.legal.index import StatuteIndex

    index = StatuteIndex()
    started = time.perf_counter()
    report = index.ensure_bundled()
    build = time.perf_counter() - started
    print(f"index build: {report.provisions:,} provisions of {len(index.acts())} Acts in {build:.2f} s")
    started = time.perf_counter()
    index.ensure_bundled()
    print(f"second build (unchanged corpus, skipped): {time.perf_counter() - started:.3f} s")

    answers = make_answers(args.answers)
    index.acts()  # load the catalogue once, as a running app has
    started = time.perf_counter()
    for text in answers:
        cited_acts(text)
    baseline = time.perf_counter() - started
    started = time.perf_counter()
    parsed = sum(len(parse_citations(text, index)) for text in answers)
    parse_only = time.perf_counter() - started
    started = time.perf_counter()
    statuses: dict[str, int] = {}
    for text in answers:
        for item in check_citations(text, index):
            statuses[item.status] = statuses.get(item.status, 0) + 1
    checking = time.perf_counter() - started
    n = len(answers)
    print(f"baseline (Act titles only, stats.cited_acts): {n / baseline:,.0f} answers/s")
    print(f"parse citations:                            {n / parse_only:,.0f} answers/s "
          f"({parsed:,} citations; {baseline / parse_only:.2f}× the baseline's speed)")
    print(f"parse + check against the index:            {n / checking:,.0f} answers/s "
          f"({baseline / checking:.2f}× the baseline's speed); verdicts {statuses}")

    # After the last token: the Chat page checks the whole answer once and writes the summary line.
    long_answers = [" ".join(answers[i:i + 4]) for i in range(0, min(len(answers), 2000), 4)]
    added = []
    for text in long_answers:
        started = time.perf_counter()
        summarise(check_citations(text, index)).line
        added.append((time.perf_counter() - started) * 1000)
    added.sort()
    p95 = added[int(len(added) * 0.95) - 1]
    words = statistics.mean(len(t.split()) for t in long_answers)
    print(f"time added after the last token ({len(added)} answers of ~{words:.0f} words): "
          f"p50 {statistics.median(added):.2f} ms, p95 {p95:.2f} ms, max {added[-1]:.2f} ms "
          f"(target ≤ 50 ms: {'met' if p95 <= 50 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
