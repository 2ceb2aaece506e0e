"""``legalft doctor``: find a damaged or missing job index and rebuild it from what is on disk.

The run folder (``runs/<id>/``) is a local job's contract and the saved record
(``managed/<id>.json``) a managed job's; the database is only their index. So when the database is
truncated, half-written or not a database at all, nothing is lost: ``repair()`` moves the damaged
file aside (never deletes it), creates a fresh one and re-indexes every job from disk.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legalft.db import connect, db_path
from legalft.errors import IndexDamaged
from legalft.home import home_dir
from legalft.jobs import restore_job, utc_now

log = logging.getLogger(__name__)


@dataclass
class DoctorReport:
    """What ``check`` found; ``ok`` when the index can be read and knows every job on disk."""

    index: str
    """``ok``, ``missing`` (no database yet), ``damaged`` (cannot be read)."""
    detail: str | None = None
    unindexed_runs: list[str] = field(default_factory=list)
    unindexed_managed: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    damaged_copy: str | None = None

    @property
    def ok(self) -> bool:
        return self.index != "damaged" and not self.unindexed_runs and not self.unindexed_managed

    def summary(self) -> str:
        if self.ok:
            return "the job index is sound and knows every run folder and managed record"
        parts = []
        if self.index == "damaged":
            parts.append(f"the job index cannot be read ({self.detail})")
        if self.unindexed_runs:
            parts.append(f"{len(self.unindexed_runs)} run folder(s) missing from the index")
        if self.unindexed_managed:
            parts.append(f"{len(self.unindexed_managed)} managed job record(s) missing from the index")
        return "; ".join(parts) + ": `legalft doctor --repair` (or Rebuild on the Home page) restores them"


def _runs_on_disk() -> dict[str, Path]:
    root = home_dir() / "runs"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "config.yaml").is_file()}


def _records_on_disk() -> dict[str, Path]:
    root = home_dir() / "managed"
    if not root.is_dir():
        return {}
    return {p.stem: p for p in sorted(root.glob("*.json"))}


def check() -> DoctorReport:
    """Read-only: is the index readable, and does it know every job on disk? Cheap (one query)."""
    path = db_path()
    runs, records = _runs_on_disk(), _records_on_disk()
    if not path.exists() or path.stat().st_size == 0:
        report = DoctorReport(index="missing")
        known: set[str] = set()
    else:
        try:
            with connect() as conn:
                known = {r[0] for r in conn.execute("SELECT id FROM jobs")}
        except (IndexDamaged, sqlite3.DatabaseError) as exc:
            return DoctorReport(index="damaged", detail=str(exc).split(";")[0], unindexed_runs=list(runs),
                                unindexed_managed=list(records))
        report = DoctorReport(index="ok")
    report.unindexed_runs = [r for r in runs if r not in known]
    report.unindexed_managed = [r for r in records if r not in known]
    return report


def _set_aside(path: Path) -> Path:
    """Move the damaged database (and its WAL files) beside itself, under a dated name."""
    stamp = utc_now().replace(":", "").replace("+0000", "Z")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            part.rename(Path(str(target) + suffix))
    return target


def _local_record(run_dir: Path) -> dict[str, Any]:
    """A job row rebuilt from a run folder: config, launch record and last status."""
    import yaml

    from legalft.train.rundir import read_json, read_status

    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    status = read_status(run_dir)
    launch = read_json(run_dir / "run.json")
    state = status.get("state") or "failed"
    if state not in ("validating_files", "queued", "running", "succeeded", "failed", "cancelled"):
        state = "failed"
    created = launch.get("created_at") or status.get("started_at") or utc_now()
    return {
        "id": run_dir.name, "path": "local", "status": state, "created_at": created,
        "updated_at": utc_now(), "name": config.get("name"), "base_model": config.get("base_model"),
        "dataset_path": config.get("train_file"), "config": config, "run_dir": str(run_dir),
        "error": status.get("error"), "started_at": status.get("started_at"),
        "finished_at": status.get("finished_at"),
    }


def repair() -> DoctorReport:
    """Rebuild the index: set a damaged database aside, then index every job found on disk.

    Local runs are then refreshed from their folders (a run whose process is gone is marked as
    such). Datasets, endpoints and price overrides are not on disk elsewhere: after a damaged
    index they must be registered again (the files themselves stay under ``datasets/``).
    """
    report = check()
    if report.index == "damaged":
        report.damaged_copy = str(_set_aside(db_path()))
        log.warning("moved the damaged index to %s", report.damaged_copy)
    runs, records = _runs_on_disk(), _records_on_disk()
    for job_id in report.unindexed_runs:
        try:
            restore_job(_local_record(runs[job_id]))
            report.restored.append(job_id)
        except (OSError, ValueError, TypeError) as exc:
            log.warning("cannot re-index run folder %s: %s", runs[job_id], exc)
    for job_id in report.unindexed_managed:
        try:
            restore_job(json.loads(records[job_id].read_text(encoding="utf-8")))
            report.restored.append(job_id)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.warning("cannot re-index managed record %s: %s", records[job_id], exc)
    if report.unindexed_runs:
        from legalft.train.launch import reconcile_jobs

        reconcile_jobs()
    after = check()
    after.restored, after.damaged_copy = report.restored, report.damaged_copy
    return after

