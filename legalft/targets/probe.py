"""``python -m legalft.targets.probe``: the GPU host's side of a remote run, one JSON line per call.

The follower runs it over SSH with the host's own python, so the rules that decide whether a run
lives (pid + start time + heartbeat, ``legalft.train.launch.settle_run_dir``) run where the process
runs. One call is one SSH round trip:

    probe status RUN_DIR --metrics-from N --log-from M [--metrics-file ID]
                                                         status + the new bytes of metrics and log
    probe start JOB_ID RUN_DIR                           start or resume (secrets as JSON on stdin)
    probe run JOB_ID RUN_DIR                             start and wait for the end (a SkyPilot job's body)
    probe merge JOB_ID RUN_DIR                           merge the adapter there (the GPU), parity checked
    probe cancel RUN_DIR [--grace S]                     SIGTERM to the run's group, then SIGKILL
    probe facts                                          python, GPUs and free disk, for ``check``
    probe serve                                          status requests, one JSON line each, until EOF

``facts`` needs only the standard library, so ``check`` can send this file on stdin
(``python - facts``) before any code is copied to the host.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: At most this much of the log per round trip: a chatty run catches up over a few polls.
MAX_CHUNK_BYTES = 256 * 1024


def file_identity(path: Path) -> str | None:
    """Which file ``path`` names now (device and inode): a resume replaces the metrics file with a
    shorter one (``truncate_metrics``) that can have grown past the reader's offset by its next poll,
    so the size alone cannot tell the reader that its offset points into another file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return f"{info.st_dev}:{info.st_ino}"


def _read_from(path: Path, offset: int, whole_lines: bool, identity: str | None = None) -> tuple[str, int]:
    """The bytes of ``path`` after ``offset`` (up to the last newline when ``whole_lines``) and the new
    offset; from the start when the file is shorter than ``offset`` or is not the file ``identity`` named."""
    if not path.exists():
        return "", 0
    size = path.stat().st_size
    if offset > size or (identity is not None and identity != file_identity(path)):
        offset = 0
    with open(path, "rb") as handle:
        handle.seek(offset)
        chunk = handle.read(MAX_CHUNK_BYTES)
    if whole_lines and chunk and not chunk.endswith(b"\n"):
        chunk = chunk[: chunk.rfind(b"\n") + 1]
    return chunk.decode("utf-8", "replace"), offset + len(chunk)


def status(run_dir: Path, metrics_from: int, log_from: int, metrics_file: str | None = None) -> dict[str, Any]:
    """The run's settled status and what its metrics and log gained since the caller's offsets.
    ``metrics_file`` is the ``metrics_file`` of the caller's last answer: when the metrics file was
    replaced since, the answer starts again from its first line and says ``metrics_reset``."""
    from legalft.train.launch import settle_run_dir
    from legalft.train.rundir import ADAPTER_DIR, LOG_FILE, METRICS_FILE, find_checkpoints

    if not run_dir.is_dir():
        return {"error": f"no run folder {run_dir} on this host"}
    state = settle_run_dir(run_dir)
    identity = file_identity(run_dir / METRICS_FILE)
    metrics, metrics_at = _read_from(run_dir / METRICS_FILE, metrics_from, whole_lines=True, identity=metrics_file)
    log, log_at = _read_from(run_dir / LOG_FILE, log_from, whole_lines=False)
    reset = metrics_from > 0 and (metrics_at < metrics_from or (metrics_file is not None and metrics_file != identity))
    return {"status": state, "metrics": metrics, "metrics_at": metrics_at, "metrics_file": identity,
            "metrics_reset": reset, "log": log, "log_at": log_at,
            "checkpoints": [step for step, _ in find_checkpoints(run_dir)],
            "adapter": (run_dir / ADAPTER_DIR).is_dir()}


def serve() -> int:
    """One long-lived probe: a JSON request per stdin line, a JSON answer per stdout line. The follower
    keeps one open over SSH, so a poll costs one round trip and no interpreter start on the GPU host."""
    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer = status(Path(request["run_dir"]).expanduser(), int(request.get("metrics_from", 0)),
                            int(request.get("log_from", 0)), request.get("metrics_file"))
        except Exception as exc:  # noqa: BLE001 - one bad poll must not end the session
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(answer, default=str), flush=True)
    return 0


def start(job_id: str, run_dir: Path) -> dict[str, Any]:
    from legalft.train.launch import start_run_dir

    secrets = json.loads(sys.stdin.readline() or "{}")  # kept in memory and the trainer's environment only
    attempt = start_run_dir(job_id, run_dir, env={str(k): str(v) for k, v in secrets.items()})
    return {"attempt": {k: attempt[k] for k in ("pid", "create_time", "host", "started_at", "resumed_from_step")}}


def run(job_id: str, run_dir: Path) -> int:
    """Start the run and wait for it to end: the body of a SkyPilot job, so SkyPilot's job queue (and
    its autostop, ``wait_for: jobs``) sees the cluster busy exactly as long as training lasts."""
    import time

    from legalft import procs
    from legalft.train.launch import settle_run_dir, start_run_dir

    attempt = start_run_dir(job_id, run_dir, env=None)  # secrets come as SkyPilot secrets (environment)
    while procs.is_running(attempt):
        time.sleep(5)
    return 0 if settle_run_dir(run_dir).get("state") == "succeeded" else 1


def cancel(run_dir: Path, grace: float) -> dict[str, Any]:
    from legalft.train.launch import stop_run_dir

    return {"status": stop_run_dir(run_dir, grace)}


def merge(job_id: str, run_dir: Path) -> dict[str, Any]:
    """Merge the adapter on the GPU host (bf16 there), with the parity check."""
    from legalft.train.merge import merge_run_dir

    report = merge_run_dir(run_dir, job_id)
    return {"message": report.message, "parity_ok": report.parity_ok, "seconds": report.seconds}


def facts() -> dict[str, Any]:
    found: dict[str, Any] = {"python": sys.version.split()[0], "gpus": []}
    if shutil.which("nvidia-smi"):
        result = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,compute_cap",
                                 "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=30)
        for line in result.stdout.strip().splitlines():
            name, memory, capability = (part.strip() for part in line.rsplit(",", 2))
            found["gpus"].append({"name": name, "memory_gib": round(float(memory) / 1024, 1),
                                  "compute_capability": capability})
    found["cpu_count"] = os.cpu_count() or 1
    try:
        import psutil

        found["ram_gib"] = round(psutil.virtual_memory().available / 1024**3, 1)
    except ImportError:
        pass
    where = Path(os.environ.get("LEGALFT_HOME") or Path.home())
    while not where.exists() and where != where.parent:
        where = where.parent
    usage = shutil.disk_usage(where)
    found["free_disk_gib"] = round(usage.free / 1024**3, 1)
    try:
        import peft  # noqa: F401
        import torch
        import trl  # noqa: F401

        found["torch"] = torch.__version__
        found["cuda"] = bool(torch.cuda.is_available())
    except ImportError as exc:
        found["missing"] = str(exc)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m legalft.targets.probe", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    status_cmd = commands.add_parser("status")
    status_cmd.add_argument("run_dir", type=Path)
    status_cmd.add_argument("--metrics-from", type=int, default=0)
    status_cmd.add_argument("--log-from", type=int, default=0)
    status_cmd.add_argument("--metrics-file", default=None, help="the metrics_file of the last answer")
    start_cmd = commands.add_parser("start")
    start_cmd.add_argument("job_id")
    start_cmd.add_argument("run_dir", type=Path)
    run_cmd = commands.add_parser("run")
    run_cmd.add_argument("job_id")
    run_cmd.add_argument("run_dir", type=Path)
    cancel_cmd = commands.add_parser("cancel")
    cancel_cmd.add_argument("run_dir", type=Path)
    cancel_cmd.add_argument("--grace", type=float, default=10.0)
    merge_cmd = commands.add_parser("merge")
    merge_cmd.add_argument("job_id")
    merge_cmd.add_argument("run_dir", type=Path)
    commands.add_parser("facts")
    commands.add_parser("serve")
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve()
    if args.command == "run":
        return run(args.job_id, args.run_dir.expanduser())
    if args.command == "status":
        answer = status(args.run_dir.expanduser(), args.metrics_from, args.log_from, args.metrics_file)
    elif args.command == "start":
        answer = start(args.job_id, args.run_dir.expanduser())
    elif args.command == "merge":
        answer = merge(args.job_id, args.run_dir.expanduser())
    elif args.command == "cancel":
        answer = cancel(args.run_dir.expanduser(), args.grace)
    else:
        answer = facts()
    print(json.dumps(answer, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
