"""The SQLite state: migrations, the job store shared by both paths, endpoints, dataset registry."""

from __future__ import annotations

import sqlite3

import pytest

from legalft import db, endpoints, jobs
from legalft.data.registry import get_dataset, list_datasets, register_dataset
from legalft.data.sanitize import sanitize_file
from tests.conftest import REFERENCE_QA


def test_home_and_migrations(legalft_home):
    with db.connect() as conn:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert version == len(db.MIGRATIONS)
    assert {"datasets", "jobs", "job_events", "job_checkpoints", "endpoints", "price_overrides"} <= tables
    assert db.db_path().parent == legalft_home
    with db.connect() as conn:  # idempotent
        assert conn.execute("PRAGMA user_version").fetchone()[0] == version


def test_job_lifecycle_and_status_vocabulary():
    job = jobs.create_job("local", base_model="tiny", config={"epochs": 1}, run_dir="/tmp/x")
    assert job.status == "queued" and job.config == {"epochs": 1} and job.id.startswith("run-")
    running = jobs.update_job(job.id, status="running", progress={"step": 1, "total": 4})
    assert running.started_at and running.progress["step"] == 1 and not running.is_terminal
    done = jobs.update_job(job.id, status="succeeded")
    assert done.finished_at and done.is_terminal
    with pytest.raises(ValueError, match="unknown job status"):
        jobs.update_job(job.id, status="exploded")
    with pytest.raises(ValueError):
        jobs.create_job("somewhere")
    with pytest.raises(sqlite3.IntegrityError):  # the database enforces the vocabulary too
        with db.connect() as conn:
            conn.execute("UPDATE jobs SET status = 'bogus' WHERE id = ?", (job.id,))
    tf = jobs.create_job("token_factory", status="validating_files", remote_id="ftjob-1")
    assert [j.id for j in jobs.list_jobs()][:2] == [tf.id, job.id]
    assert [j.id for j in jobs.list_jobs(path="local")] == [job.id]


def test_events_deduplicated_and_checkpoints_ordered():
    job = jobs.create_job("token_factory")
    events = [{"remote_id": "e1", "message": "queued", "created_at": "2026-01-01T00:00:01"},
              {"remote_id": "e2", "message": "running", "created_at": "2026-01-01T00:00:02"}]
    assert jobs.add_events(job.id, events) == 2
    assert jobs.add_events(job.id, events) == 0
    assert [e["message"] for e in jobs.list_events(job.id)] == ["queued", "running"]
    jobs.upsert_checkpoint(job.id, "ftckpt_2", step=20, metrics={"train_loss": 1.0})
    jobs.upsert_checkpoint(job.id, "ftckpt_1", step=10, metrics={"train_loss": 2.0})
    jobs.upsert_checkpoint(job.id, "ftckpt_2", step=20, metrics={"train_loss": 0.9})
    points = jobs.list_checkpoints(job.id)
    assert [p["step"] for p in points] == [10, 20] and points[1]["metrics"]["train_loss"] == 0.9


def test_endpoints_upsert():
    first = endpoints.save_endpoint(kind="token_factory", name="a", base_url="http://x/v1", model="m1", status="validating")
    again = endpoints.save_endpoint(kind="token_factory", name="a", base_url="http://x/v1", model="m1", status="active")
    assert first.id == again.id and again.status == "active"
    assert len(endpoints.list_endpoints()) == 1
    endpoints.delete_endpoint(first.id)
    assert endpoints.list_endpoints() == []


def test_dataset_registry_copies_and_dedupes(tmp_path, legalft_home):
    clean = tmp_path / "clean.jsonl"
    report = sanitize_file(REFERENCE_QA, clean)
    ds = register_dataset(clean, "reference.jsonl", report.to_dict())
    assert ds.kept_records == 148 and ds.repaired_records == 0  # line 1's repair is doubtful, not counted as repaired
    assert ds.path.startswith(str(legalft_home)) and open(ds.path, "rb").read() == clean.read_bytes()
    assert register_dataset(clean, "again").id == ds.id
    assert [d.id for d in list_datasets()] == [ds.id] and get_dataset(ds.id).name == "reference.jsonl"
