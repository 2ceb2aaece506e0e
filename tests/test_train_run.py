"""Real training on the offline smoke model: a run finishes, cancel, kill -9 and resume, merge and parity.

Each run is a detached process, as in the app. The smoke model (2 layers, hidden 64) is built once.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from legalft.cli import main as cli_main
from legalft.jobs import get_job, list_checkpoints
from legalft.train import (
    TrainConfig,
    build_smoke_model,
    cancel_job,
    find_checkpoints,
    load_recipe,
    merge_run,
    preflight,
    read_metrics,
    read_status,
    reconcile_jobs,
    refresh_job,
    resume_job,
    start_training,
    wait_for_job,
)

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    return build_smoke_model(tmp_path_factory.mktemp("smoke") / "model")


def _reference_slice(tmp_path_factory, start: int, stop: int) -> Path:
    lines = (ROOT / "data" / "legislation_qa_clean.jsonl").read_text(encoding="utf-8").splitlines()[start:stop]
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    """Records 2-33 of the reference set (record 1 is the known malformed one)."""
    return _reference_slice(tmp_path_factory, 1, 33)


@pytest.fixture(scope="module")
def validation_file(tmp_path_factory) -> Path:
    return _reference_slice(tmp_path_factory, 33, 41)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, smoke_dir, train_file, validation_file):
    """One complete run started through the CLI, shared by the tests that only read it."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGALFT_HOME", str(home))
        code = cli_main(["train", "--recipe", "smoke", "--model", str(smoke_dir), "--dataset", str(train_file),
                         "--validation", str(validation_file), "--set", "sft.num_train_epochs=2", "--wait"])
        job = sorted((home / "runs").iterdir())[-1].name
    return {"home": home, "job_id": job, "exit_code": code}


def _long_config(smoke_dir: Path, steps: int = 60) -> TrainConfig:
    """Enough one-record steps that a cancel or a kill lands mid-run, with frequent checkpoints."""
    return load_recipe("smoke").with_overrides({
        "base_model": str(smoke_dir), "sft.max_steps": steps, "sft.per_device_train_batch_size": 1,
        "sft.max_length": 64, "sft.save_steps": 5, "sft.learning_rate": 1e-3,
    })


def _wait_for_checkpoint(run_dir: Path, step: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(s >= step for s, _ in find_checkpoints(run_dir)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} within {timeout} s; status {read_status(run_dir)}")


def _assert_metrics_continue(run_dir: Path, resumed_from: int, total: int) -> None:
    rows = [r for r in read_metrics(run_dir) if r["kind"] == "train"]
    steps = [r["step"] for r in rows]
    assert steps == list(range(1, total + 1)), steps  # one row per step, none repeated or missing
    tokens = [r["tokens_seen"] for r in rows]
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens)  # the token count continues too
    assert read_status(run_dir)["resumed_from_step"] == resumed_from


def test_a_run_finishes_with_metrics_adapter_and_index(finished_run, monkeypatch):
    monkeypatch.setenv("LEGALFT_HOME", str(finished_run["home"]))
    assert finished_run["exit_code"] == 0
    job = get_job(finished_run["job_id"])
    assert job.status == "succeeded" and job.error is None
    run_dir = Path(job.run_dir)
    rows = [r for r in read_metrics(run_dir) if r["kind"] == "train"]
    assert [r["step"] for r in rows] == list(range(1, 17))  # 32 records, batch 4, 2 epochs
    evals = [r for r in read_metrics(run_dir) if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [4, 8, 12, 16]  # at each checkpoint
    assert all(r["eval_loss"] > 0 for r in evals) and job.progress["eval_loss"] == evals[-1]["eval_loss"]
    for key in ("loss", "learning_rate", "grad_norm", "epoch", "tokens_seen", "tokens_per_second",
                "mean_token_accuracy"):
        assert all(key in r for r in rows), key
    losses = [r["loss"] for r in rows]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.1  # it learns
    adapter = run_dir / "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "chat_template.jinja"):
        assert (adapter / name).exists(), name
    status = read_status(run_dir)
    assert status["state"] == "succeeded" and status["step"] == status["total_steps"] == 16
    assert job.progress["step"] == 16 and job.output["adapter"] == str(adapter)
    assert [c["step"] for c in list_checkpoints(job.id)] == [s for s, _ in find_checkpoints(run_dir)]
    assert (run_dir / "config.yaml").exists() and TrainConfig.load(run_dir / "config.yaml").base_model


def test_merge_matches_the_adapter_and_a_second_merge_is_a_no_op(finished_run, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("LEGALFT_HOME", str(finished_run["home"]))
    job_id = finished_run["job_id"]
    report = merge_run(job_id)
    assert not report.already_merged and report.parity_ok is True and report.dtype == "fp32"
    assert len(report.parity) == 3 and all(c["match"] for c in report.parity)
    run_dir = Path(get_job(job_id).run_dir)
    record = json.loads((run_dir / "merge.json").read_text())
    assert record["parity"]["match"] is True and record["dtype"] == "fp32"
    merged = AutoModelForCausalLM.from_pretrained(report.merged_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert AutoTokenizer.from_pretrained(report.merged_dir).chat_template  # the template travels with it
    job = get_job(job_id)
    assert job.output["merged"] == report.merged_dir and job.output["parity_ok"] is True

    again = merge_run(job_id)
    assert again.already_merged and "already merged" in again.message and again.parity_ok is True


def test_merge_reads_the_base_model_from_the_run(finished_run, monkeypatch, tmp_path):
    monkeypatch.setenv("LEGALFT_HOME", str(finished_run["home"]))
    merge_run(finished_run["job_id"])  # a no-op when another test merged it first
    run_dir = Path(get_job(finished_run["job_id"]).run_dir)
    config = TrainConfig.load(run_dir / "config.yaml")
    assert Path(config.base_model).is_dir()
    assert json.loads((run_dir / "merge.json").read_text())["base_path"] == str(Path(config.base_model).resolve())


def test_cancel_stops_the_process_group_and_resume_continues(smoke_dir, train_file):
    job = start_training(_long_config(smoke_dir), train_file, check=False)
    run_dir = Path(job.run_dir)
    _wait_for_checkpoint(run_dir, 5)
    pid = json.loads((run_dir / "run.json").read_text())["attempts"][-1]["pid"]
    job = cancel_job(job.id)
    assert job.status == "cancelled" and job.finished_at
    assert read_status(run_dir)["state"] == "cancelled"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert cancel_job(job.id).status == "cancelled"  # cancelling again changes nothing

    resumed_from = find_checkpoints(run_dir)[-1][0]
    job = resume_job(job.id)
    assert job.status in ("queued", "running")
    job = wait_for_job(job.id, poll_seconds=0.5, timeout=300)
    assert job.status == "succeeded", job.error
    _assert_metrics_continue(run_dir, resumed_from, 60)
    assert "resuming from checkpoint-" in (run_dir / "train.log").read_text()


def test_kill_9_is_reconciled_to_failed_and_resume_continues_from_the_checkpoint(smoke_dir, train_file):
    job = start_training(_long_config(smoke_dir), train_file, check=False)
    run_dir = Path(job.run_dir)
    _wait_for_checkpoint(run_dir, 5)
    pid = json.loads((run_dir / "run.json").read_text())["attempts"][-1]["pid"]
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while refresh_job(job.id).status == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    reconciled = get_job(job.id)
    assert reconciled.status == "failed"
    assert "ended without a final status" in reconciled.error and "Last log lines" in reconciled.error
    assert reconcile_jobs() == []  # nothing left to reconcile

    resumed_from = find_checkpoints(run_dir)[-1][0]
    assert 5 <= resumed_from < 60
    job = resume_job(job.id)
    job = wait_for_job(job.id, poll_seconds=0.5, timeout=300)
    assert job.status == "succeeded", job.error
    _assert_metrics_continue(run_dir, resumed_from, 60)
    attempts = json.loads((run_dir / "run.json").read_text())["attempts"]
    assert [a["resumed_from_step"] for a in attempts] == [None, resumed_from]


def test_an_unreadable_dataset_fails_the_job_and_points_to_the_dataset_page(smoke_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "question", "content": "hi"}]}\n', encoding="utf-8")
    config = load_recipe("smoke").with_overrides({"base_model": str(smoke_dir)})
    with pytest.raises(ValueError, match="line 1: message 1 has role 'question'"):
        start_training(config, bad)  # the preflight catches it before anything starts
    job = start_training(config, bad, check=False)  # and the training process says the same
    job = wait_for_job(job.id, poll_seconds=0.5, timeout=120)
    assert job.status == "failed"
    assert "line 1: message 1 has role 'question'" in job.error and "Dataset page" in job.error


def test_a_template_without_generation_markers_is_caught_up_front(smoke_dir, train_file):
    plain = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    config = load_recipe("smoke").with_overrides({"base_model": str(smoke_dir), "chat_template": plain,
                                                  "train_file": str(train_file)})
    report = preflight(config)
    assert report.template is not None and not report.template.supports_assistant_only_loss
    [problem] = report.problems
    assert "{% generation %}" in problem and "sft.assistant_only_loss: false" in problem
    whole_sequence = config.with_overrides({"sft.assistant_only_loss": False})
    assert preflight(whole_sequence).ok


def test_an_unreachable_model_is_caught_up_front(train_file):
    config = load_recipe("smoke").with_overrides({"base_model": "nobody-here/no-such-model",
                                                  "train_file": str(train_file)})
    report = preflight(config)
    assert any("cannot load the base model 'nobody-here/no-such-model'" in p and "Check the spelling" in p
               and "--model" not in p and "Error" not in p for p in report.problems)
    missing = preflight(config.with_overrides({"base_model": "/no/such/folder"}))
    assert any("does not exist" in p for p in missing.problems)


@pytest.mark.gpu
def test_a_smoke_run_on_the_gpu_reports_gpu_memory(smoke_dir, train_file):
    config = load_recipe("smoke").with_overrides({"base_model": str(smoke_dir), "precision": "auto"})
    job = wait_for_job(start_training(config, train_file).id, poll_seconds=0.5, timeout=300)
    assert job.status == "succeeded", job.error
    assert job.progress["device"] == "cuda" and job.progress["precision"] in ("bf16", "fp16")
    assert all(r.get("gpu_memory_gib", 0) > 0 for r in read_metrics(job.run_dir))
    assert merge_run(job.id).parity_ok is not None
