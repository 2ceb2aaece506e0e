"""The run directory: the contract between the training process and everything that watches it.

Layout of ``LEGALFT_HOME/runs/<job id>/``::

    config.yaml     the TrainConfig the run trains from (``python -m legalft.train RUN_DIR``)
    run.json        launch record: job id, host, one entry per attempt (pid, start time, command)
    status.json     state (job vocabulary), pid, heartbeat, step/total, error; written atomically
    metrics.jsonl   one row per logged step (and per evaluation), appended by a TrainerCallback
    train.log       the process's stdout and stderr, appended across attempts
    checkpoints/    TRL checkpoints (checkpoint-N), the last ones kept for resuming
    adapter/        the final adapter (or full model) with the tokenizer and chat template
    merged/         the merged full model, written by ``legalft merge``
    merge.json      the merge record with its parity check
    cancel.requested  present while a cancel is in progress or after it

Everything can be rebuilt from the folder alone; the database only indexes it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
MERGED_DIR = "merged"
MERGE_FILE = "merge.json"
CANCEL_FILE = "cancel.requested"
#: Held by the training process while it writes the folder; the launcher holds ``LAUNCH_LOCK_FILE``
#: while it checks a job's state and starts an attempt.
TRAIN_LOCK_FILE = "train.lock"
LAUNCH_LOCK_FILE = "launch.lock"
#: The training and validation files, copied in: the folder trains unchanged wherever it is copied.
DATA_DIR = "data"
#: Where a remote run trains (``legalft.targets``); absent for a local run.
TARGET_FILE = "target.json"
#: The follower's view of the remote host: reachable, last contact, phases and their minutes.
SYNC_FILE = "sync.json"

_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def in_run(run_dir: str | Path, value: str | None) -> str | None:
    """A path from a run's config, resolved: relative ones (``data/train.jsonl``) against the run folder."""
    if not value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path(run_dir) / path)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so a reader never sees half a file (write a sibling, then rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True, default=str)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``, or {} when it is missing or unreadable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """``status.json`` of a run ({} before the launcher wrote it)."""
    return read_json(Path(run_dir) / STATUS_FILE)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``, oldest first; a half-written last line is skipped."""
    path = Path(run_dir) / METRICS_FILE
    rows: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
    except FileNotFoundError:
        pass
    return rows


def read_log_tail(run_dir: str | Path, n: int = 50) -> str:
    """The last ``n`` lines of the run's log (progress-bar carriage returns folded to lines)."""
    path = Path(run_dir) / LOG_FILE
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            # Read a bounded tail: logs of long runs grow large.
            handle.seek(max(0, size - 256 * 1024))
            data = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    lines: deque[str] = deque(maxlen=max(n, 0))
    for line in data.replace("\r", "\n").split("\n"):
        if line.strip():
            lines.append(line.rstrip())
    return "\n".join(lines)


def find_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, path), oldest first.

    A checkpoint counts once its ``trainer_state.json`` exists: the Trainer writes it last, so a
    process killed while saving leaves an incomplete folder that resuming must skip.
    """
    folder = Path(run_dir) / CHECKPOINTS_DIR
    found = []
    if folder.is_dir():
        for child in folder.iterdir():
            match = _CHECKPOINT_RE.match(child.name)
            if match and (child / "trainer_state.json").exists():
                found.append((int(match.group(1)), child))
    return sorted(found)


def last_checkpoint(run_dir: str | Path) -> tuple[int, Path] | None:
    checkpoints = find_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def truncate_metrics(run_dir: str | Path, last_step: int) -> int:
    """Drop metric rows after ``last_step`` (steps a resumed run will train again). Returns rows kept."""
    path = Path(run_dir) / METRICS_FILE
    rows = [row for row in read_metrics(run_dir) if int(row.get("step") or 0) <= last_step]
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return len(rows)


def append_metrics(run_dir: str | Path, row: dict[str, Any]) -> None:
    with open(Path(run_dir) / METRICS_FILE, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, sort_keys=True, default=float) + "\n")
        handle.flush()


def heartbeat_age(status: dict[str, Any], now: float | None = None) -> float | None:
    """Seconds since the last heartbeat, or None if the status has none."""
    beat = status.get("heartbeat")
    if not isinstance(beat, (int, float)):
        return None
    return max(0.0, (now or time.time()) - float(beat))
