"""One job store for both paths (local TRL runs and Nebius Token Factory jobs).

Statuses use the managed API's vocabulary so the Monitor page renders both paths the same way.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from legalft.db import connect
from legalft.home import subdir

STATUSES = ("validating_files", "queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
PATHS = ("local", "token_factory")

_JSON_FIELDS = ("config", "remote", "output", "progress")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """A fine-tuning job as the database holds it."""

    id: str
    path: str
    status: str
    created_at: str
    updated_at: str
    name: str | None = None
    base_model: str | None = None
    dataset_id: int | None = None
    dataset_path: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    remote_id: str | None = None
    remote: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    estimated_cost: float | None = None
    actual_cost: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    polled_at: float | None = None
    """When the job's service was last asked about it (epoch seconds); see ``claim_poll``."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_row(cls, row) -> "Job":
        data = dict(row)
        for name in _JSON_FIELDS:
            data[name] = json.loads(data.pop(f"{name}_json") or "{}")
        return cls(**data)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown job status {status!r}; expected one of {', '.join(STATUSES)}")


def new_job_id(path: str) -> str:
    prefix = "run" if path == "local" else "tf"
    return f"{prefix}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def create_job(
    path: str,
    *,
    status: str = "queued",
    job_id: str | None = None,
    **fields: Any,
) -> Job:
    """Record a new job and return it. ``fields`` are Job attributes (config, base_model, ...)."""
    if path not in PATHS:
        raise ValueError(f"unknown job path {path!r}; expected one of {', '.join(PATHS)}")
    _check_status(status)
    now = utc_now()
    job_id = job_id or new_job_id(path)
    columns = {"id": job_id, "path": path, "status": status, "created_at": now, "updated_at": now}
    columns.update(_to_columns(fields))
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    with connect() as conn:
        conn.execute(f"INSERT INTO jobs ({names}) VALUES ({marks})", list(columns.values()))
    return _saved(get_job(job_id))


def _to_columns(fields: dict[str, Any]) -> dict[str, Any]:
    allowed = set(Job.__dataclass_fields__) - {"id", "path", "created_at", "polled_at"}
    columns: dict[str, Any] = {}
    for name, value in fields.items():
        if name not in allowed:
            raise TypeError(f"Job has no field {name!r}")
        if name == "status":
            _check_status(value)
        if name in _JSON_FIELDS:
            columns[f"{name}_json"] = json.dumps(value or {}, sort_keys=True, default=str)
        else:
            columns[name] = value
    return columns


def get_job(job_id: str) -> Job | None:
    with connect() as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return Job.from_row(row) if row else None


def require_job(job_id: str) -> Job:
    """The job, or a KeyError that names the id (the CLI prints it)."""
    job = get_job(job_id)
    if job is None:
        raise KeyError(f"no job {job_id!r}; `legalft jobs list` shows the jobs")
    return job


def list_jobs(path: str | None = None, limit: int = 500) -> list[Job]:
    """Newest first."""
    query, args = "SELECT * FROM jobs", []
    if path:
        query += " WHERE path = ?"
        args.append(path)
    query += " ORDER BY created_at DESC, rowid DESC LIMIT ?"
    args.append(limit)
    with connect() as conn:
        return [Job.from_row(r) for r in conn.execute(query, args).fetchall()]


def update_job(job_id: str, **fields: Any) -> Job:
    """Set fields; stamps ``started_at``/``finished_at`` when the status first reaches running/terminal."""
    columns = _to_columns(fields)
    columns["updated_at"] = utc_now()
    status = fields.get("status")
    current = require_job(job_id)
    if status == "running" and not current.started_at and "started_at" not in fields:
        columns["started_at"] = columns["updated_at"]
    if status in TERMINAL_STATUSES and not current.finished_at and "finished_at" not in fields:
        columns["finished_at"] = columns["updated_at"]
    assignments = ", ".join(f"{name} = ?" for name in columns)
    with connect() as conn:
        conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*columns.values(), job_id])
    return _saved(require_job(job_id))


def close_job(job_id: str, reason: str) -> Job:
    """Mark a job that cannot be followed any more as failed with ``reason`` (a job that ended is kept)."""
    job = require_job(job_id)
    if job.is_terminal:
        return job
    return update_job(job_id, status="failed", error=reason)


def claim_poll(job_id: str, interval: float) -> bool:
    """Whether the caller should ask the job's service now: True for at most one caller per
    ``interval`` seconds, whichever process or browser tab asks (an atomic update in SQLite)."""
    now = time.time()
    with connect() as conn:
        cursor = conn.execute(
            "UPDATE jobs SET polled_at = ? WHERE id = ? AND (polled_at IS NULL OR polled_at <= ?)",
            (now, job_id, now - interval))
    return cursor.rowcount == 1


# --- saved records: the managed path's counterpart of a run folder -----------------------------------

def records_dir() -> Path:
    """``LEGALFT_HOME/managed``: one JSON file per managed job, so the index can be rebuilt from disk
    (a local job's run folder plays that part for the Cloud path)."""
    return subdir("managed")


def _saved(job: Job) -> Job:
    if job.path == "token_factory":
        record = {k: v for k, v in asdict(job).items() if k != "polled_at"}
        target = records_dir() / f"{job.id}.json"
        temporary = target.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(record, indent=1, sort_keys=True, default=str), encoding="utf-8")
        os.replace(temporary, target)
    return job


def restore_job(record: dict[str, Any]) -> Job:
    """Insert a job row from a saved record (``legalft doctor``); an existing row is left alone."""
    fields = {k: v for k, v in record.items() if k in Job.__dataclass_fields__ and k != "polled_at"}
    columns = {"id": fields.pop("id"), "path": fields.pop("path"), "created_at": fields.pop("created_at"),
               **_to_columns({k: v for k, v in fields.items() if k != "updated_at"}),
               "updated_at": record.get("updated_at") or utc_now()}
    names, marks = ", ".join(columns), ", ".join("?" for _ in columns)
    with connect() as conn:
        conn.execute(f"INSERT OR IGNORE INTO jobs ({names}) VALUES ({marks})", list(columns.values()))
    return require_job(columns["id"])


def delete_job(job_id: str) -> None:
    with connect() as conn:
        conn.execute("DELETE FROM jobs WHERE id = ?", (job_id,))


def add_events(job_id: str, events: Iterable[dict[str, Any]]) -> int:
    """Record events, skipping ones already recorded (same ``remote_id``). Returns how many were new."""
    added = 0
    with connect() as conn:
        for event in events:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO job_events (job_id, remote_id, created_at, level, message)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    job_id,
                    event.get("remote_id"),
                    event.get("created_at") or utc_now(),
                    event.get("level") or "info",
                    event["message"],
                ),
            )
            added += cursor.rowcount
    return added


def list_events(job_id: str) -> list[dict[str, Any]]:
    """Oldest first."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT remote_id, created_at, level, message FROM job_events"
            " WHERE job_id = ? ORDER BY created_at, id",
            (job_id,),
        ).fetchall()
    return [dict(r) for r in rows]


def upsert_checkpoint(
    job_id: str, checkpoint_id: str, *, step: int | None, metrics: dict[str, Any], created_at: str | None = None
) -> None:
    with connect() as conn:
        conn.execute(
            "INSERT INTO job_checkpoints (job_id, checkpoint_id, step, created_at, metrics_json)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, checkpoint_id) DO UPDATE SET"
            " step = excluded.step, created_at = excluded.created_at, metrics_json = excluded.metrics_json",
            (job_id, checkpoint_id, step, created_at, json.dumps(metrics, sort_keys=True)),
        )


def list_checkpoints(job_id: str) -> list[dict[str, Any]]:
    """Ordered by step."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT checkpoint_id, step, created_at, metrics_json FROM job_checkpoints"
            " WHERE job_id = ? ORDER BY step, checkpoint_id",
            (job_id,),
        ).fetchall()
    return [
        {"checkpoint_id": r["checkpoint_id"], "step": r["step"], "created_at": r["created_at"],
         "metrics": json.loads(r["metrics_json"])}
        for r in rows
    ]
