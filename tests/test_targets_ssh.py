"""The Cloud path on a remote GPU host over SSH, for real: a real OpenSSH server on 127.0.0.1 (this
machine plays the GPU VM), the system ssh and rsync clients, real training of the smoke model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from legalft import monitor
from legalft.jobs import get_job
from legalft.polling import poll_until
from legalft.targets import parse_target
from legalft.targets.follow import read_sync, run_cost
from legalft.train import cancel_job, load_recipe, read_metrics, refresh_job, resume_job, start_training
from legalft.train.smoke import build_smoke_model
from tests.conftest import REFERENCE_QA, ROOT, missing
from tests.sshd import ALIAS, Sshd, sshd_path

pytestmark = [pytest.mark.slow, missing(not sshd_path(), "needs openssh-server (make test "
                                                   "installs it with apt when root)")]

SECRET = "hf_test_secret_value_9f8e7d6c5b4a"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    return build_smoke_model(tmp_path_factory.mktemp("smoke") / "model")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    """Records 2-33 of the reference set (record 1 is the known malformed one)."""
    lines = REFERENCE_QA.read_text(encoding="utf-8").splitlines()[1:33]
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def remote(sshd, tmp_path, monkeypatch):
    """The SSH target on the test sshd, with its own remote root, driven through LEGALFT_SSH_CONFIG."""
    if sshd.process is None or sshd.process.poll() is not None:  # a test that stopped it failed before restarting
        sshd.start()
    for name, value in sshd.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    root = tmp_path / "gpu-host"
    return parse_target(f"ssh:{ALIAS}", remote_root=str(root), remote_python=sys.executable), root


def _config(smoke_dir: Path, steps: int):
    return load_recipe("smoke").with_overrides({
        "base_model": str(smoke_dir), "sft.max_steps": steps, "sft.per_device_train_batch_size": 1,
        "sft.max_length": 64, "sft.save_steps": 5, "sft.learning_rate": 1e-3, "sft.seed": 7,
    })


def _wait(job_id: str, done, timeout: float = 300):
    """Refresh until ``done`` (or the job ended: a failure shows at once, with its reason)."""
    job = poll_until(lambda: refresh_job(job_id), lambda j: done(j) or j.is_terminal, interval=0.5, timeout=timeout)
    assert done(job), (job.status, job.error)
    return job


def _losses(run_dir) -> list[tuple[int, float]]:
    return [(r["step"], round(r["loss"], 6)) for r in read_metrics(run_dir) if r.get("kind") == "train"]


def _remote_pid(root: Path, job_id: str) -> int:
    return json.loads((root / "runs" / job_id / "run.json").read_text())["attempts"][-1]["pid"]


def test_check_reports_the_host_and_a_missing_one(remote, monkeypatch):
    target, _ = remote
    check = target.check()
    assert check.ok, check.problems
    assert check.facts["python"] and "torch" in check.facts
    assert any("keeps billing" in w for w in check.warnings)  # the owner's VM is never stopped by us
    result = subprocess.run([sys.executable, "-m", "legalft", "targets", "check", f"ssh:{ALIAS}",
                             "--remote-root", str(remote[1]), "--remote-python", sys.executable],
                            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    missing = parse_target("ssh:nobody@127.0.0.1:1", remote_root="/tmp/x").check()
    assert not missing.ok and "cannot reach" in missing.problems[0]


def test_a_run_over_ssh_survives_the_host_vanishing_and_matches_a_local_run(remote, sshd, smoke_dir, train_file, legalft_home):
    target, root = remote
    steps = 300  # still training when the host vanishes, on a fast machine too
    job = start_training(_config(smoke_dir, steps), train_file, target=target, check=False)
    run_dir = Path(job.run_dir)
    assert job.status == "queued" and job.remote["target"]["host"] == ALIAS

    # Training runs there; the mirror follows here.
    _wait(job.id, lambda j: (j.progress.get("step") or 0) >= 3, timeout=240)
    sshd.stop()  # the host vanishes mid-run
    poll_until(lambda: read_sync(run_dir), lambda s: s.get("reachable") is False, interval=0.5, timeout=60)
    view = monitor.view(job.id)
    assert view.job.status in ("queued", "running"), view.job.error  # not failed: the last copy, with a warning
    assert view.sync_warning and "Cannot reach the GPU host" in view.sync_warning
    sshd.start()  # the host is back: the follower catches up by itself
    done = _wait(job.id, lambda j: j.is_terminal, timeout=300)
    assert done.status == "succeeded", done.error
    assert read_sync(run_dir)["reachable"] is True
    assert (run_dir / "adapter" / "adapter_config.json").is_file()  # the adapter came back
    assert done.output.get("adapter") == str(run_dir / "adapter")
    remote_rows = _losses(run_dir)
    assert [s for s, _ in remote_rows] == list(range(1, steps + 1))

    # The same config trained here gives the same losses, step by step.
    local = start_training(_config(smoke_dir, steps), train_file, check=False)
    local_done = _wait(local.id, lambda j: j.is_terminal, timeout=300)
    assert local_done.status == "succeeded", local_done.error
    assert _losses(local_done.run_dir) == remote_rows

    cost = run_cost(run_dir)
    assert cost["minutes"]["train"] > 0 and cost["basis"] == "no rate known for this host"
    assert "keeps billing" in read_sync(run_dir)["after"]

    # The secret went to the trainer's environment only: no file on either side holds it.
    for folder in (legalft_home, root):
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert SECRET.encode() not in path.read_bytes(), path


def test_the_pull_replaces_a_mirror_of_the_same_size_and_second(remote, tmp_path):
    """The follower's mirror can differ from the trainer's file yet match its size and mtime second
    (how the CI run lost step 60): rsync's quick check would keep the mirror; the pull compares contents."""
    target, root = remote
    remote_run, here = root / "runs" / "job1", tmp_path / "here"
    remote_run.mkdir(parents=True)
    here.mkdir()
    (remote_run / "metrics.jsonl").write_text('{"step": 60}\n{"step": 61}\n')
    (here / "metrics.jsonl").write_text('{"step": 60}\n"step": 61}\n\n')  # read from inside a line
    assert (here / "metrics.jsonl").stat().st_size == (remote_run / "metrics.jsonl").stat().st_size
    for name, text in (("train.log", "log\n"), ("status.json", '{"state": "succeeded"}')):
        (remote_run / name).write_text(text)
    stamp = (remote_run / "metrics.jsonl").stat().st_mtime
    os.utime(here / "metrics.jsonl", (stamp, stamp))
    target.pull({"remote_run": str(remote_run)}, here)
    assert (here / "metrics.jsonl").read_text() == '{"step": 60}\n{"step": 61}\n'
    assert json.loads((here / "status.json").read_text())["state"] == "succeeded"


def test_kill_9_there_is_a_failed_run_here_and_resume_continues(remote, smoke_dir, train_file):
    target, root = remote
    steps = 200  # long enough that the trainer still runs when the kill comes, on a fast machine too
    job = start_training(_config(smoke_dir, steps), train_file, target=target, check=False)
    run_dir = Path(job.run_dir)
    _wait(job.id, lambda j: (j.progress.get("last_checkpoint_step") or 0) >= 5, timeout=240)
    os.killpg(_remote_pid(root, job.id), signal.SIGKILL)
    failed = _wait(job.id, lambda j: j.is_terminal, timeout=120)
    assert failed.status == "failed" and "ended without a final status" in failed.error

    resumed = resume_job(job.id)
    assert resumed.status == "queued"
    done = _wait(job.id, lambda j: j.is_terminal, timeout=300)
    assert done.status == "succeeded", done.error
    assert [r["step"] for r in read_metrics(run_dir) if r["kind"] == "train"] == list(range(1, steps + 1))
    attempts = json.loads((root / "runs" / job.id / "run.json").read_text())["attempts"]
    assert len(attempts) == 2 and attempts[1]["resumed_from_step"] >= 5


def test_cancel_stops_the_remote_trainer(remote, smoke_dir, train_file):
    target, root = remote
    job = start_training(_config(smoke_dir, 400), train_file, target=target, check=False)
    _wait(job.id, lambda j: (j.progress.get("step") or 0) >= 2, timeout=240)
    pid = _remote_pid(root, job.id)
    cancelled = cancel_job(job.id)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the remote trainer still runs after cancel")
    assert get_job(job.id).status == "cancelled"


def test_the_train_page_checks_the_ssh_target_and_launches_there(remote, sshd, smoke_dir, train_file, tmp_path):
    from streamlit.testing.v1 import AppTest

    from legalft.data.registry import register_dataset
    from legalft.jobs import list_jobs

    target, root = remote
    register_dataset(train_file, "slice.jsonl")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("views/train.py")
    at.run()
    at.radio(key="train_where").set_value("My GPU VM (SSH)").run()
    at.text_input(key="train_ssh_host").input(ALIAS)
    at.text_input(key="train_ssh_root").input(str(root))
    at.text_input(key="train_ssh_python").input(sys.executable).run()
    at.text_input(key="train_base_model").input(str(smoke_dir)).run()
    at.button(key="train_check_target").click().run()
    assert not at.exception, at.exception
    assert any("is ready" in s.value for s in at.success), [e.value for e in at.error]
    assert any("keeps billing" in w.value for w in at.warning)
    at.button(key="train_launch").click().run()
    assert not at.exception, at.exception
    job = list_jobs()[0]
    assert job.remote["target"]["host"] == ALIAS and job.remote["target"]["remote_root"] == str(root)
    done = _wait(job.id, lambda j: j.is_terminal, timeout=400)
    assert done.status == "succeeded", done.error
    assert (Path(done.run_dir) / "adapter").is_dir()


def test_merge_on_the_gpu_host_brings_the_merged_model_back(sshd, smoke_dir, train_file, tmp_path, monkeypatch):
    for name, value in sshd.env().items():
        monkeypatch.setenv(name, value)
    target = parse_target(f"ssh:{ALIAS}", remote_root=str(tmp_path / "gpu-host"), remote_python=sys.executable,
                          after="merge")
    job = start_training(_config(smoke_dir, 6), train_file, target=target, check=False)
    done = _wait(job.id, lambda j: j.is_terminal, timeout=400)
    assert done.status == "succeeded", done.error
    run_dir = Path(done.run_dir)
    assert (run_dir / "merged" / "config.json").is_file()
    assert json.loads((run_dir / "merge.json").read_text())["parity"]["match"] is True
    assert done.output.get("merged") and done.output.get("parity_ok") is True
    assert read_sync(run_dir)["phases"]["merge"] > 0


def test_serve_there_chat_through_the_tunnel_and_the_server_stops_when_idle(remote, smoke_dir, train_file, legalft_home,
                                                                              monkeypatch):
    """``after: serve``: the model is served on the host (127.0.0.1 there), reached through an SSH
    tunnel registered as an endpoint; a chat answers; with nobody asking, the server stops by itself
    and the endpoint says so; the secret lands on neither side's disk."""
    from legalft import chat, serve

    _, root = remote
    target = parse_target(f"ssh:{ALIAS}", remote_root=str(root), remote_python=sys.executable, after="serve",
                          serve_idle_minutes=0.3)
    job = start_training(_config(smoke_dir, 4), train_file, target=target, check=False)
    done = _wait(job.id, lambda j: j.is_terminal, timeout=400)
    assert done.status == "succeeded", done.error
    # The follower serves after the pull (the job reads succeeded as soon as training did).
    note = poll_until(lambda: read_sync(Path(done.run_dir)).get("after"), bool, interval=0.5, timeout=300)
    assert "through an SSH tunnel" in note and "keeps billing" in note, note
    [endpoint] = [e for e in serve.list_servers() if e.job_id == job.id]
    assert endpoint.status == "active" and endpoint.base_url.startswith("http://127.0.0.1:")
    assert endpoint.details["remote"]["host"] == ALIAS
    answer = chat.chat(endpoint, chat.build_messages("What does section 1 of the Theft Act 1968 say?"), max_tokens=8)
    assert answer.text.strip()
    # Nobody asks again: after 0.3 idle minutes the server there stops, the tunnel ends with it.
    remote_run = root / "runs" / job.id
    stopped = poll_until(lambda: serve.list_servers(), lambda es: all(e.status == "stopped" for e in es
                                                                     if e.job_id == job.id),
                         interval=1.0, timeout=120)
    [endpoint] = [e for e in stopped if e.job_id == job.id]
    assert endpoint.status == "stopped", endpoint.details
    assert "nobody used it for 0.3 minutes" in endpoint.details["stopped_reason"]
    state = json.loads((remote_run / "serve.json").read_text())
    assert state["state"] == "stopped" and not psutil.pid_exists(state["server_pid"])
    for folder in (root, legalft_home):
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                assert SECRET.encode() not in path.read_bytes(), path
