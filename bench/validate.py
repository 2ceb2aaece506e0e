"""Benchmark: `legalft data validate` against `datasets.load_dataset("json")` on the same file.

    .venv/bin/python bench/validate.py [--records 1000000]

Builds a JSONL file of unique records from the bundled reference set (each a variant of one of the
148 records, so the duplicate rule keeps them all, and one malformed record in every 148), then
runs each reader in its own process and prints records/s, the ratio and each process's peak memory.
The load validates nothing; the target is to be at least as fast, in under 300 MB whatever the size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "data" / "legislation_qa_clean.jsonl"

VALIDATE = """
import resource, sys, time
from legalft.cli import main
t = time.perf_counter()
code = main(["data", "validate", sys.argv[1], "--out", sys.argv[2], "--rejects", sys.argv[3], "--json"])
sys.stderr.write(f"RESULT {time.perf_counter() - t:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n")
sys.exit(code)
"""

LOAD = """
import resource, sys, time
t = time.perf_counter()
import datasets
datasets.disable_progress_bars()
ds = datasets.load_dataset("json", data_files=sys.argv[1], split="train", cache_dir=sys.argv[2])
n = ds.num_rows
sys.stderr.write(f"RESULT {time.perf_counter() - t:.3f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss} {n}\\n")
"""


def build_file(path: Path, records: int) -> None:
    base = [line.rstrip("\n") for line in REFERENCE.open(encoding="utf-8") if line.strip()]
    with path.open("w", encoding="utf-8") as out:
        for i in range(records):
            line = base[i % len(base)]
            if i >= len(base):
                # A unique variant: the question gains a reference number, so no record is a duplicate.
                line = line.replace('"content": "', f'"content": "[{i}] ', 1) if '"content"' in line else line
            out.write(line + "\n")


def run(code: str, *args: str) -> tuple[float, int, str]:
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    line = next((l for l in result.stderr.splitlines() if l.startswith("RESULT")), None)
    if result.returncode != 0 or line is None:
        raise SystemExit(f"benchmark step failed:\n{result.stderr[-3000:]}")
    _, seconds, rss_kb, *_ = line.split()
    return float(seconds), int(rss_kb) * 1024, result.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="legalft-bench-") as tmp:
        tmp = Path(tmp)
        data = tmp / "bench.jsonl"
        t = time.perf_counter()
        build_file(data, args.records)
        size = data.stat().st_size
        print(f"built {args.records:,} records, {size / 1e6:,.0f} MB in {time.perf_counter() - t:.1f} s")

        load_s, load_rss, _ = run(LOAD, str(data), str(tmp / "hf-cache"))
        val_s, val_rss, out = run(VALIDATE, str(data), str(tmp / "clean.jsonl"), str(tmp / "rejects.jsonl"))
        report = json.loads(out)
        assert report["total_records"] == args.records, report["total_records"]
        assert report["kept_records"] + report["dropped_records"] == report["total_records"]

        rows = [("datasets.load_dataset('json')", load_s, load_rss), ("legalft data validate", val_s, val_rss)]
        print(f"{'':32} {'seconds':>8} {'records/s':>12} {'peak MB':>8}")
        for name, seconds, rss in rows:
            print(f"{name:32} {seconds:8.1f} {args.records / seconds:12,.0f} {rss / 1e6:8.0f}")
        print(f"validate kept {report['kept_records']:,}, repaired {report['repaired_records']:,}, "
              f"dropped {report['dropped_records']:,}")
        print(f"speed ratio (validate records/s ÷ load records/s): {load_s / val_s:.2f}  (target ≥ 1.00)")
        print(f"validate peak memory: {val_rss / 1e6:.0f} MB  (target < 300 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
