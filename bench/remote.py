"""Benchmark: the remote overhead of the SSH target, measured against a local run in the same invocation.

    .venv/bin/python bench/remote.py                 # 60 steps of the smoke model, 2 repeats
    .venv/bin/python bench/remote.py --steps 200 --repeats 3

A real sshd on 127.0.0.1 (started here, as in the tests) plays the GPU host, so both runs use the
same CPU and the difference is what the target layer costs: copying the run folder over, starting
the trainer there, the follower's polls (one SSH round trip every 2 s on a multiplexed connection)
and pulling the adapter back. Printed, with ratios against the local run:

- wall time, launch to the job ending here (ratio remote / local; target: overhead ≤ 5% of a
  10-minute run, so the fixed cost in seconds is printed too);
- trained tokens/s as the trainer reports it (ratio remote / local; the follower's polls share the CPU);
- sync lag: seconds from a metrics line appearing in the host's run folder to its appearing in the
  local mirror (p50 and p95; target p95 ≤ 5 s). Both folders are on this machine, so one clock
  measures both ends.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
REFERENCE = ROOT / "data" / "legislation_qa_clean.jsonl"


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(1 for _ in handle)
    except FileNotFoundError:
        return 0


def run_once(config, train_file: Path, target, remote_root: Path | None) -> dict:
    from legalft.train import read_metrics, refresh_job, start_training

    started = time.monotonic()
    job = start_training(config, train_file, target=target, check=False)
    local_metrics = Path(job.run_dir) / "metrics.jsonl"
    remote_metrics = remote_root / "runs" / job.id / "metrics.jsonl" if remote_root else None
    seen_remote: dict[int, float] = {}
    seen_local: dict[int, float] = {}
    while True:
        now = time.monotonic()
        if remote_metrics is not None:
            for line in range(_lines(remote_metrics)):
                seen_remote.setdefault(line, now)
            for line in range(_lines(local_metrics)):
                seen_local.setdefault(line, now)
        job = refresh_job(job.id)
        if job.is_terminal:
            break
        time.sleep(0.1)
    wall = time.monotonic() - started
    if job.status != "succeeded":
        raise SystemExit(f"{job.id} {job.status}: {job.error}")
    rows = [r for r in read_metrics(job.run_dir) if r.get("kind") == "train"]
    lags = [seen_local[i] - seen_remote[i] for i in seen_remote if i in seen_local]
    return {"wall": wall, "tokens_per_second": rows[-1].get("tokens_per_second") or 0.0, "lags": lags}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="legalft-bench-remote-"))
    os.environ["LEGALFT_HOME"] = str(folder / "home")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sshd import ALIAS, Sshd

    from legalft.targets import parse_target
    from legalft.train import load_recipe
    from legalft.train.smoke import build_smoke_model

    sshd = Sshd(folder / "sshd")
    sshd.start()
    os.environ.update(sshd.env())
    try:
        smoke = build_smoke_model(folder / "smoke")
        train_file = folder / "train.jsonl"
        train_file.write_text("\n".join(REFERENCE.read_text(encoding="utf-8").splitlines()[1:41]) + "\n")
        config = load_recipe("smoke").with_overrides({
            "base_model": str(smoke), "sft.max_steps": args.steps, "sft.per_device_train_batch_size": 1,
            "sft.max_length": 128, "sft.save_steps": 20})
        results: dict[str, list[dict]] = {"local": [], "ssh": []}
        for repeat in range(args.repeats):
            root = folder / f"gpu-host-{repeat}"
            target = parse_target(f"ssh:{ALIAS}", remote_root=str(root), remote_python=sys.executable)
            results["local"].append(run_once(config, train_file, None, None))
            results["ssh"].append(run_once(config, train_file, target, root))
            print(f"repeat {repeat + 1}: local {results['local'][-1]['wall']:.1f} s, "
                  f"ssh {results['ssh'][-1]['wall']:.1f} s", flush=True)
    finally:
        sshd.stop()

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    local_wall, remote_wall = median("local", "wall"), median("ssh", "wall")
    local_tps, remote_tps = median("local", "tokens_per_second"), median("ssh", "tokens_per_second")
    lags = sorted(lag for r in results["ssh"] for lag in r["lags"])
    p50 = statistics.median(lags) if lags else float("nan")
    p95 = lags[min(len(lags) - 1, int(0.95 * len(lags)))] if lags else float("nan")
    overhead = remote_wall - local_wall
    print(f"\nsmoke model, {args.steps} steps, median of {args.repeats}, same machine (sshd on 127.0.0.1)")
    print(f"  wall time     local {local_wall:7.1f} s   ssh {remote_wall:7.1f} s   ratio {remote_wall / local_wall:.3f}"
          f"   fixed overhead {overhead:+.1f} s = {overhead / 600:.1%} of a 10-minute run")
    print(f"  tokens/s      local {local_tps:7.0f}     ssh {remote_tps:7.0f}     ratio {remote_tps / local_tps:.3f}")
    print(f"  sync lag      p50 {p50:.2f} s   p95 {p95:.2f} s   ({len(lags)} metrics lines; target p95 <= 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
