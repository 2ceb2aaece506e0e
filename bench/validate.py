"""Benchmark: `legalft data validate` against the reference sanitizer and a plain msgspec parse-and-write.

    .venv/bin/python bench/validate.py                       # 200,000 and 1,000,000 records
    .venv/bin/python bench/validate.py --records 200000 --repeat 5

Builds, for each size, a JSONL file of reference-shaped records: unique variants of the 148 bundled
Q&A records (a reference number in the question, so the duplicate rule keeps them all; line 1's
malformed role field comes back once in every 148, and the reference sanitizer repairs it too).
Then, side by side in one run, each in its own process:

- the reference pipeline's sanitizer (an equivalent copy of its rules, below: the standard json
  module, the per-message rules of docs/REFERENCE, no line numbers, no rejects);
- the same fast JSON library legalft uses (msgspec), parsing and writing every line and nothing else;
- `legalft data validate` (clean file, rejects file, report).

It prints records/s, seconds and peak memory of each, and the two ratios the targets are set on:
validate ≥ 3× the reference sanitizer's records/s, and validate within 1.5× of the plain
parse-and-write's time; peak memory under 300 MB at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "data" / "legislation_qa_clean.jsonl"

TIMED = """
import resource, sys, time
t = time.perf_counter()
{body}
sys.stderr.write(f"RESULT {{time.perf_counter() - t:.3f}} {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}}\\n")
"""

VALIDATE = TIMED.format(body="""
from legalft.cli import main
code = main(["data", "validate", sys.argv[1], "--out", sys.argv[2], "--rejects", sys.argv[3], "--json"])
assert code == 0, code
""")

PLAIN = TIMED.format(body="""
import msgspec
decode, encode = msgspec.json.decode, msgspec.json.encode
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as out:
    buffer = []
    for line in src:
        if line.strip():
            buffer.append(encode(decode(line)))
            if len(buffer) >= 4096:
                out.write(b"\\n".join(buffer) + b"\\n")
                buffer.clear()
    if buffer:
        out.write(b"\\n".join(buffer) + b"\\n")
""")

# The reference sanitizer's rules (docs: "Reference sanitizer rules"), written as that script is:
# the standard json module, one record at a time; one malformed JSON line aborts it.
REFERENCE_SANITIZER = TIMED.format(body="""
import json
from collections import Counter
VALID = {"system", "user", "assistant"}
ALIASES = {"human": "user", "question": "user", "prompt": "user",
           "answer": "assistant", "response": "assistant", "bot": "assistant", "model": "assistant"}

def content_text(content):
    if isinstance(content, str):
        return content.strip()
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text", "") for p in content if isinstance(p, (str, dict))]
        return "\\n".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    if isinstance(content, dict):
        for key in ("text", "content", "message"):
            if key in content:
                return content_text(content[key])
    return ""

stats = Counter()
with open(sys.argv[1], encoding="utf-8") as src, open(sys.argv[2], "w", encoding="utf-8") as out:
    for line in src:
        if not line.strip():
            continue
        record = json.loads(line)
        stats["total"] += 1
        messages = record.get("messages") if isinstance(record, dict) else None
        if not isinstance(messages, list):
            stats["dropped"] += 1
            continue
        kept, repaired = [], False
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role_text = str(message.get("role") or "").strip()
            role = role_text.lower()
            content = content_text(message.get("content"))
            if role in VALID and content:
                kept.append({"role": role, "content": content})
            elif role in ALIASES and content:
                kept.append({"role": ALIASES[role], "content": content})
                stats["mapped_role_alias"] += 1
                repaired = True
            elif index == 0 and role_text and not content:
                kept.append({"role": "user", "content": role_text})
                stats["promoted_invalid_role_to_user_content"] += 1
                repaired = True
            elif index == 0 and content:
                kept.append({"role": "user", "content": content})
                stats["coerced_unknown_role_to_user"] += 1
                repaired = True
        roles = {m["role"] for m in kept}
        if "user" not in roles or "assistant" not in roles:
            stats["dropped"] += 1
            continue
        stats["kept"] += 1
        stats["repaired"] += repaired
        out.write(json.dumps({"messages": kept}, ensure_ascii=False) + "\\n")
print(json.dumps(stats))
""")


def build_file(path: Path, records: int) -> None:
    base = [json.loads(line) for line in REFERENCE.open(encoding="utf-8") if line.strip()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(records):
            record = base[i % len(base)]
            if i >= len(base):
                # A unique variant: the question gains a reference number, so no record is a duplicate.
                first = dict(record["messages"][0])
                key = "content" if "content" in first else "role"
                first[key] = f"[{i}] {first[key]}"
                record = {"messages": [first, *record["messages"][1:]]}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


def run(code: str, *args: str) -> tuple[float, int, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((l for l in result.stderr.splitlines() if l.startswith("RESULT")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"benchmark step failed:\n{result.stderr[-3000:]}")
    _, seconds, rss_kb = line.split()
    return float(seconds), int(rss_kb) * 1024, result.stdout


def bench(records: int, tmp: Path, repeat: int) -> bool:
    data = tmp / f"bench-{records}.jsonl"
    build_file(data, records)
    size = data.stat().st_size
    print(f"\n{records:,} records, {size / 1e6:,.0f} MB")
    best: dict[str, tuple[float, int]] = {}
    outputs: dict[str, str] = {}
    steps = (("reference sanitizer (json)", REFERENCE_SANITIZER), ("msgspec parse + write", PLAIN),
             ("legalft data validate", VALIDATE))
    for _ in range(repeat):  # interleaved, so a busy machine slows every step alike
        for name, code in steps:
            extra = [str(tmp / "rejects.jsonl")] if code is VALIDATE else []
            seconds, rss, out = run(code, str(data), str(tmp / "out.jsonl"), *extra)
            outputs[name] = out
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, rss)
    report = json.loads(outputs["legalft data validate"])
    reference = json.loads(outputs["reference sanitizer (json)"])
    assert report["total_records"] == records, report["total_records"]
    assert report["kept_records"] + report["dropped_records"] == report["total_records"]
    assert reference["kept"] == report["kept_records"], (reference, report["kept_records"])
    print(f"{'':30} {'seconds':>8} {'records/s':>12} {'peak MB':>8}")
    for name, (seconds, rss) in best.items():
        print(f"{name:30} {seconds:8.2f} {records / seconds:12,.0f} {rss / 1e6:8.0f}")
    ref_s, plain_s, val_s = (best[name][0] for name, _ in steps)
    val_rss = best["legalft data validate"][1]
    speedup, overhead = ref_s / val_s, val_s / plain_s
    print(f"validate kept {report['kept_records']:,} (repaired {report['repaired_records']:,}, "
          f"doubtful {report['doubtful_records']:,}), dropped {report['dropped_records']:,}")
    print(f"speed vs the reference sanitizer (records/s ratio): {speedup:.2f}x  (target >= 3.00)")
    print(f"time vs msgspec parse + write alone:                {overhead:.2f}x  (target <= 1.50)")
    print(f"validate peak memory: {val_rss / 1e6:.0f} MB  (target < 300 MB)")
    return speedup >= 3 and overhead <= 1.5 and val_rss < 300e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each step, interleaved; the fastest counts (the first run of a step pays for cold caches)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="legalft-bench-") as tmp:
        ok = [bench(n, Path(tmp), args.repeat) for n in args.records]
    print("\nall targets met" if all(ok) else "\nsome target missed")
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
