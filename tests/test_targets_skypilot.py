"""The SkyPilot target. The real SkyPilot (in .venv-sky) validates every task this product writes;
the one call that would provision a cloud GPU goes to a strict stand-in behind the same process
boundary (tests/skypilot_standin.py), which hands out the test sshd as the cluster."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from legalft.errors import ServiceError
from legalft.polling import poll_until
from legalft.targets import parse_target
from legalft.targets.follow import read_sync
from legalft.targets.skypilot import SkyPilotTarget, call_adapter, cluster_name, sky_python
from legalft.train import load_recipe, refresh_job, start_training
from legalft.train.smoke import build_smoke_model
from tests.conftest import REFERENCE_QA, ROOT, missing
from tests.sshd import Sshd, sshd_path

SECRET = "hf_sky_secret_value_0a1b2c3d4e"
needs_sky = missing(not sky_python().exists(), "SkyPilot is not installed: `make sky` "
                               "(CI installs it)")
INFO = {"root": "/home/ubuntu/legalft", "remote_run": "/home/ubuntu/legalft/runs/run-1",
        "python": "/home/ubuntu/legalft/venv/bin/python"}


def _tasks(target: SkyPilotTarget) -> list[dict]:
    return [target.provision_task("run-20261201-1"), target.train_task("run-20261201-1", INFO)]


def test_the_cluster_has_autostop_waiting_for_jobs_and_autodown_where_it_cannot_stop():
    on_demand = SkyPilotTarget(infra="nebius/eu-north1", accelerators="H100:1")
    task = on_demand.provision_task("run-20261201-1")
    assert task["resources"]["autostop"] == {"idle_minutes": 10, "down": False, "wait_for": "jobs"}
    assert task["resources"]["infra"] == "nebius/eu-north1" and task["resources"]["accelerators"] == "H100:1"
    assert SkyPilotTarget(infra="nebius/eu-north1", use_spot=True).provision_task("r")["resources"]["autostop"][
        "down"] is True
    assert SkyPilotTarget(infra="kubernetes/my-ctx").provision_task("r")["resources"]["autostop"]["down"] is True
    assert cluster_name("run-20261201-230349-11364B") == "legalft-run-20261201-230349-11364b"


def test_secrets_are_named_in_the_task_never_written(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    task = SkyPilotTarget(infra="nebius/eu-north1").train_task("run-1", INFO)
    assert task["secrets"] == {"HF_TOKEN": None} and SECRET not in json.dumps(task)
    assert "legalft.targets.probe run run-1" in task["run"]


def test_bad_settings_are_refused_before_anything_runs():
    with pytest.raises(Exception, match="H100:1 or H200:8"):
        parse_target("skypilot:nebius/eu-north1", accelerators="two H100s")
    with pytest.raises(Exception, match="needs an infra"):
        parse_target("skypilot:")


@needs_sky
def test_the_real_skypilot_validates_the_tasks_and_catches_schema_errors():
    target = SkyPilotTarget(infra="nebius/eu-north1", accelerators="H200:8", use_spot=True, idle_minutes=30)
    assert call_adapter({"op": "validate", "tasks": _tasks(target)}, timeout=300)["ok"]
    serving = target.serve_task("run-1", INFO, "python -m legalft.targets.serve_host . --idle-minutes 30")
    assert call_adapter({"op": "validate", "tasks": [serving]}, timeout=300)["ok"]
    broken = _tasks(target)[0]
    broken["resources"]["autostop"]["wait_for"] = "ssh-sessions"
    with pytest.raises(ServiceError, match="wait_for"):
        call_adapter({"op": "validate", "tasks": [broken]}, timeout=300)
    typo = {**_tasks(target)[1], "runn": "echo"}
    with pytest.raises(ServiceError, match="did you mean 'run'"):
        call_adapter({"op": "validate", "tasks": [typo]}, timeout=300)


def test_check_says_what_is_missing_and_which_credentials(monkeypatch, tmp_path):
    monkeypatch.setenv("LEGALFT_SKY_PYTHON", str(tmp_path / "no-venv" / "python"))
    check = SkyPilotTarget(infra="nebius/eu-north1").check()
    assert not check.ok and "make sky" in check.problems[0]
    assert check.facts["gpus"][0]["memory_gib"] == 80.0  # the memory estimate uses the remote GPU


# --- the lifecycle, over the stand-in and a real sshd ------------------------------------------------

@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not sshd_path() and not os.environ.get("CI"):
        pytest.skip("needs openssh-server (make test installs it with apt when root)")
    server = Sshd(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def standin(sshd, tmp_path, monkeypatch):
    folder = tmp_path / "sky-standin"
    monkeypatch.setenv("LEGALFT_SKY_ADAPTER", shlex.join([sys.executable, str(ROOT / "tests" / "skypilot_standin.py")]))
    monkeypatch.setenv("LEGALFT_SKY_STANDIN_DIR", str(folder))
    for name, value in sshd.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    return folder


def _requests(folder: Path) -> list[dict]:
    path = folder / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _train_file(tmp_path: Path) -> Path:
    lines = REFERENCE_QA.read_text(encoding="utf-8").splitlines()[1:21]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow
def test_launch_trains_pulls_and_releases_the_cluster(standin, tmp_path, legalft_home):
    smoke = build_smoke_model(tmp_path / "smoke")
    config = load_recipe("smoke").with_overrides({"base_model": str(smoke), "sft.max_steps": 6,
                                                  "sft.max_length": 64})
    target = SkyPilotTarget(infra="nebius/eu-north1", accelerators="H100:1", remote_root=str(tmp_path / "cluster"),
                            remote_python=sys.executable, hourly_rate=2.95)
    job = start_training(config, _train_file(tmp_path), target=target, check=False)
    done = poll_until(lambda: refresh_job(job.id), lambda j: j.is_terminal, interval=0.5, timeout=400)
    assert done.status == "succeeded", done.error
    run_dir = Path(done.run_dir)
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    ops = [r["op"] for r in _requests(standin)]
    assert ops == ["launch", "exec", "cost_report", "down"], ops  # SkyPilot only at lifecycle transitions
    sync = read_sync(run_dir)
    assert "nothing is billing" in sync["after"]
    assert {"provision", "setup", "train"} <= set(sync["phases"])
    assert done.actual_cost is not None and done.output["remote_cost"]["basis"] == "provider's cost report"
    state = json.loads((standin / "state.json").read_text())
    assert state["clusters"][cluster_name(job.id)]["status"] == "TERMINATED"
    for path in [*legalft_home.rglob("*"), *standin.rglob("*")]:
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
@pytest.mark.parametrize("step", ["launch", "exec"])
def test_a_launch_that_fails_before_training_tears_the_cluster_down(standin, tmp_path, monkeypatch, step):
    monkeypatch.setenv("LEGALFT_SKY_STANDIN_FAIL", step)
    config = load_recipe("smoke").with_overrides({"sft.max_steps": 2})
    target = SkyPilotTarget(infra="nebius/eu-north1", remote_root=str(tmp_path / "cluster"),
                            remote_python=sys.executable)
    job = start_training(config, _train_file(tmp_path), target=target, check=False)
    done = poll_until(lambda: refresh_job(job.id), lambda j: j.is_terminal, interval=0.5, timeout=300)
    assert done.status == "failed" and "could not start the run" in done.error
    assert "torn down" in done.error
    ops = [r["op"] for r in _requests(standin)]
    assert ops[-1] == "down", ops
    state = json.loads((standin / "state.json").read_text())
    assert state["clusters"][cluster_name(job.id)]["status"] == "TERMINATED"


@pytest.mark.slow
def test_serve_there_runs_as_a_job_so_autostop_releases_the_cluster_after_it(standin, tmp_path, legalft_home):
    """``after: serve``: the server is the cluster's second job (autostop ``wait_for: jobs`` keeps the
    cluster while it serves and releases it after); it is reached through a tunnel, answers, and
    stops by itself when nobody asks; the product does not down a cluster that serves."""
    from legalft import chat, serve

    smoke = build_smoke_model(tmp_path / "smoke")
    config = load_recipe("smoke").with_overrides({"base_model": str(smoke), "sft.max_steps": 4,
                                                  "sft.max_length": 64})
    target = SkyPilotTarget(infra="nebius/eu-north1", accelerators="H100:1", remote_root=str(tmp_path / "cluster"),
                            remote_python=sys.executable, hourly_rate=2.95, after="serve", serve_idle_minutes=0.3)
    job = start_training(config, _train_file(tmp_path), target=target, check=False)
    done = poll_until(lambda: refresh_job(job.id), lambda j: j.is_terminal, interval=0.5, timeout=400)
    assert done.status == "succeeded", done.error
    note = read_sync(Path(done.run_dir))["after"]
    assert "through an SSH tunnel" in note and "released by SkyPilot 10 minutes after the server stops" in note, note
    requests = _requests(standin)
    assert [r["op"] for r in requests] == ["launch", "exec", "exec"]  # no down while it serves
    assert "legalft.targets.serve_host" in requests[-1]["request"]["task"]["run"]
    [endpoint] = [e for e in serve.list_servers() if e.job_id == job.id]
    assert endpoint.status == "active"
    assert chat.chat(endpoint, chat.build_messages("What is theft?"), max_tokens=6).text.strip()
    ended = poll_until(lambda: [e for e in serve.list_servers() if e.job_id == job.id],
                       lambda es: es[0].status != "active", interval=1.0, timeout=120)
    assert ended[0].status == "stopped" and "nobody used it" in ended[0].details["stopped_reason"]
    # The serve job ended, so SkyPilot's autostop (wait_for: jobs) releases the cluster: no job keeps it.
    state = json.loads((standin / "state.json").read_text())
    assert state["clusters"][cluster_name(job.id)]["task"]["resources"]["autostop"]["wait_for"] == "jobs"
