"""State that survives what real machines do: concurrent first runs, two resumes at once, a home
that cannot be written, a damaged index, a managed job the service has forgotten."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from filelock import FileLock

from legalft import db, doctor, jobs
from legalft import managed as tf
from legalft.errors import HomeNotWritable, IndexDamaged, JobBusy, NotFound
from legalft.train import cancel_job, load_recipe, resume_job, start_training
from legalft.train.rundir import LAUNCH_LOCK_FILE, TRAIN_LOCK_FILE, read_status
from legalft.train.smoke import build_smoke_model
from tests.conftest import REFERENCE_QA, ROOT


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a fresh process."""
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "legalft", *args], capture_output=True, text=True, cwd=ROOT,
                          env=full_env, timeout=120)


def test_ten_first_runs_at_once_on_a_fresh_home_all_work(tmp_path):
    home = tmp_path / "fresh"
    env = {"LEGALFT_HOME": str(home)}
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: cli("jobs", "list", env=env), range(10)))
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr and "already exists" not in result.stderr
    with _connect_at(home) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(db.MIGRATIONS)


class _connect_at:
    def __init__(self, home: Path):
        self.home = home

    def __enter__(self):
        self.patch = pytest.MonkeyPatch()
        self.patch.setenv("LEGALFT_HOME", str(self.home))
        self.context = db.connect()
        return self.context.__enter__()

    def __exit__(self, *exc):
        self.context.__exit__(*exc)
        self.patch.undo()


@pytest.fixture
def unwritable_home(tmp_path):
    """A home with a database in it that cannot be written: a read-only bind mount as root (root
    ignores file modes), read-only modes otherwise."""
    home = tmp_path / "readonly-home"
    with _connect_at(home):
        pass
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(home), str(home)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(home)], check=True)
            yield home
        finally:
            subprocess.run(["umount", str(home)], check=True)
    else:
        (home / "legalft.db").chmod(0o444)
        home.chmod(0o555)
        yield home
        home.chmod(0o755)


SCENARIO = ["cost", "scenario", "--queries-per-day", "500", "--input-tokens", "800", "--output-tokens", "400"]


@pytest.mark.parametrize("command", [["jobs", "list"], ["serve", "list"], SCENARIO,
                                     ["train", "--recipe", "smoke", "--dataset", str(REFERENCE_QA)]])
def test_an_unwritable_home_is_one_clear_line(unwritable_home, command):
    result = cli(*command, env={"LEGALFT_HOME": str(unwritable_home)})
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "LEGALFT_HOME" in result.stderr and str(unwritable_home) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_home_that_cannot_be_created_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LEGALFT_HOME", str(blocker / "home"))
    with pytest.raises(HomeNotWritable, match="set LEGALFT_HOME to a folder you can write"):
        jobs.list_jobs()


def _fake_run(home: Path, job_id: str, state: str) -> Path:
    """A run folder as the training process leaves it (config, launch record, status)."""
    run = home / "runs" / job_id
    run.mkdir(parents=True)
    config = load_recipe("smoke").with_overrides({"train_file": str(REFERENCE_QA), "name": job_id})
    config.save(run / "config.yaml")
    (run / "run.json").write_text(json.dumps({"job_id": job_id, "created_at": "2026-11-30T10:00:00+00:00",
                                              "attempts": []}))
    (run / "status.json").write_text(json.dumps({"state": state, "phase": "done", "error": None,
                                                 "finished_at": "2026-11-30T10:05:00+00:00"}))
    return run


@pytest.mark.parametrize("damage", ["truncated", "garbage", "half"])
def test_a_damaged_index_is_detected_and_rebuilt_from_the_run_folders(legalft_home, damage, standin):
    for job_id, state in (("run-a", "succeeded"), ("run-b", "failed"), ("run-c", "cancelled")):
        _fake_run(legalft_home, job_id, state)
        jobs.restore_job(doctor._local_record(legalft_home / "runs" / job_id))
    managed = jobs.create_job("token_factory", status="running", remote_id="ftjob-x", base_model="m",
                              remote={"base_url": standin.base_url})
    path = db.db_path()
    data = path.read_bytes() if path.exists() else b""
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    if damage == "truncated":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"this is not a database at all" * 100)
    else:
        path.write_bytes(data[: len(data) // 2] or b"SQLite format 3\x00" + b"\x00" * 50)

    found = doctor.check()
    assert not found.ok and {"run-a", "run-b", "run-c"} <= set(found.unindexed_runs)
    assert managed.id in found.unindexed_managed
    if damage == "garbage":
        assert found.index == "damaged"
        result = cli("jobs", "list", env={"LEGALFT_HOME": str(legalft_home)})
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "legalft doctor --repair" in result.stderr
        with pytest.raises(IndexDamaged):
            jobs.list_jobs()

    result = cli("doctor", "--repair", env={"LEGALFT_HOME": str(legalft_home)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "re-indexed 4 job(s)" in result.stdout
    restored = {j.id: j for j in jobs.list_jobs()}
    assert {k: restored[k].status for k in ("run-a", "run-b", "run-c")} == {
        "run-a": "succeeded", "run-b": "failed", "run-c": "cancelled"}
    assert restored[managed.id].remote_id == "ftjob-x" and restored[managed.id].status == "running"
    assert doctor.check().ok
    if damage == "garbage":
        assert list(legalft_home.glob("legalft.db.damaged-*"))  # kept aside, never deleted


def test_a_managed_job_the_service_forgot_can_be_closed(standin):
    job = jobs.create_job("token_factory", status="queued", remote_id="ftjob-forgotten", base_model="m",
                          remote={"base_url": standin.base_url})
    with pytest.raises(NotFound):
        tf.sync_job(job.id)
    assert "ftjob-forgotten" in jobs.get_job(job.id).progress["remote_missing"]
    closed = tf.cancel_job(job.id)  # a cancel meets the same 404: closed, with the reason
    assert closed.status == "failed" and "no longer knows job ftjob-forgotten" in closed.error

    other = jobs.create_job("token_factory", status="running", remote_id="ftjob-gone", base_model="m",
                            remote={"base_url": standin.base_url})
    result = cli("jobs", "close", other.id, env={"LEGALFT_HOME": os.environ["LEGALFT_HOME"]})
    assert result.returncode == 0, result.stderr
    assert jobs.get_job(other.id).status == "failed"


def test_the_managed_api_is_polled_once_per_interval_whoever_asks(standin):
    job = jobs.create_job("token_factory", status="queued", remote_id=None, base_model="m")
    assert jobs.claim_poll(job.id, 10) is True
    assert [jobs.claim_poll(job.id, 10) for _ in range(5)] == [False] * 5  # five more tabs, no calls
    assert jobs.claim_poll(job.id, 0) is True  # once the interval has passed, the next asker polls


def test_five_monitor_tabs_refreshing_ask_the_service_once(standin, tmp_path):
    from legalft import monitor
    from tests.managed import control

    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(REFERENCE_QA.read_text(encoding="utf-8").splitlines()[1:21]) + "\n")
    job = tf.launch_job(data, tf.LaunchConfig(n_epochs=1))
    for _ in range(5):  # five tabs, each fragment refreshing within the same interval
        assert monitor.view(job.id).job.id == job.id
    retrieves = [r for r in control(standin, path="/_control/requests")
                 if r["method"] == "GET" and r["path"].rstrip("/").endswith(f"/fine_tuning/jobs/{job.remote_id}")]
    assert len(retrieves) == 1, retrieves


def test_a_second_trainer_of_one_run_folder_exits_before_writing(legalft_home):
    run = _fake_run(legalft_home, "run-locked", "running")
    before = (run / "status.json").read_bytes()
    with FileLock(run / TRAIN_LOCK_FILE, timeout=0):
        result = subprocess.run([sys.executable, "-m", "legalft.train", str(run)], capture_output=True, text=True,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 3 and "already writing" in result.stderr
    assert (run / "status.json").read_bytes() == before


def test_a_resume_while_another_starts_the_job_is_refused(legalft_home):
    run = _fake_run(legalft_home, "run-busy", "cancelled")
    jobs.restore_job(doctor._local_record(run))
    with FileLock(run / LAUNCH_LOCK_FILE, timeout=0):
        with pytest.raises(JobBusy, match="being started by another command"):
            resume_job("run-busy")
    assert read_status(run)["state"] == "cancelled"  # nothing was started


@pytest.mark.slow
def test_two_resumes_at_once_start_one_trainer(tmp_path):
    smoke = build_smoke_model(tmp_path / "smoke")
    config = load_recipe("smoke").with_overrides({"base_model": str(smoke), "sft.max_steps": 400,
                                                  "sft.max_length": 64})
    job = start_training(config, REFERENCE_QA, check=False)
    cancel_job(job.id, grace_seconds=2)
    env = {"LEGALFT_HOME": os.environ["LEGALFT_HOME"]}
    try:
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(lambda _: cli("jobs", "resume", job.id, env=env), range(2)))
        codes = sorted(r.returncode for r in results)
        assert codes == [0, 1], [(r.returncode, r.stdout, r.stderr) for r in results]
        refused = next(r for r in results if r.returncode == 1)
        assert "Traceback" not in refused.stderr
        assert "another command" in refused.stderr or "cancel it first" in refused.stderr
        attempts = json.loads((Path(job.run_dir) / "run.json").read_text())["attempts"]
        assert len(attempts) == 2  # the first run and one resume, not two
    finally:
        cancel_job(job.id, grace_seconds=2)


def test_home_shows_a_damaged_index_and_rebuilds_it(legalft_home):
    from streamlit.testing.v1 import AppTest

    _fake_run(legalft_home, "run-home", "succeeded")
    db.db_path().write_bytes(b"garbage" * 200)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    assert not at.exception
    assert any("needs attention" in w.value for w in at.warning)
    at.button(key="home_rebuild_index").click().run()
    assert not at.exception
    assert any("Re-indexed 1 job(s)" in s.value for s in at.success)
    assert [j.id for j in jobs.list_jobs()] == ["run-home"]
