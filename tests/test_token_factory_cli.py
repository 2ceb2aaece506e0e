"""`legalft tf ...` against the local stand-in, and the key never landing anywhere."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from token_factory_server import start_server

from legalft import managed as tf
from legalft.cli import main
from legalft.errors import ServiceError
from legalft.jobs import get_job, list_jobs

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_QA = ROOT / "data" / "legislation_qa_clean.jsonl"
FAKE_KEY = "nbk-LEAKCHECK-7f3a9c21e5d4b8a6"



def train_file(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"What does section {i} of the Example Act 2000 provide?"},
        {"role": "assistant", "content": f"Section {i} provides for item {i}."}]}) + "\n" for i in range(n)))
    return path


def launch_and_deploy(tmp_path: Path, capsys) -> tuple[str, str]:
    """Runs launch --wait and deploy --wait through the CLI; returns (job id, deployed model)."""
    code = main(["tf", "launch", "--dataset", str(REFERENCE_QA), "--validation", str(train_file(tmp_path)),
                 "--epochs", "2", "--lora-r", "8", "--suffix", "uk-legal", "--wait", "--poll", "0.05"])
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = next(line.split()[1] for line in out.splitlines() if line.startswith("launched "))
    code = main(["tf", "deploy", job_id, "--name", "uk-legal", "--wait", "--poll", "0.05"])
    out = capsys.readouterr().out
    assert code == 0, out
    model = next(line.split(": ")[0] for line in out.splitlines() if line.endswith(": active"))
    return job_id, model


def test_cli_launch_wait_status_deploy_chat_models(standin, tmp_path, capsys):
    code = main(["tf", "launch", "--dataset", str(REFERENCE_QA), "--epochs", "2", "--wait", "--poll", "0.05"])
    out = capsys.readouterr().out
    assert code == 0
    assert "training: 148 records read, 148 kept" in out and "estimated training cost: $" in out
    assert "(100%)" in out  # the upload progress
    assert "status: succeeded (100%)" in out and "Epoch 2/2 completed" in out
    assert out.rstrip().endswith("final status: succeeded")
    [job] = list_jobs()
    assert job.config["hyperparameters"]["n_epochs"] == 2 and job.actual_cost > 0

    assert main(["tf", "status", job.id]) == 0
    out = capsys.readouterr().out
    assert f"{job.id}  succeeded" in out and "checkpoints:" in out and "train_loss" in out
    assert "The job has successfully completed" in out and f"cost ${job.actual_cost:.4f}" in out

    assert main(["tf", "cancel", job.id]) == 0
    assert "had already ended (succeeded); nothing to cancel" in capsys.readouterr().out

    assert main(["tf", "deploy", job.id, "--name", "uk-legal", "--wait", "--poll", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:uk-legal-" in out and ": active" in out
    assert "smoke test:" in out and "Interpretation Act 1978" in out
    model = next(line.split(": ")[0] for line in out.splitlines() if line.endswith(": active"))

    assert main(["tf", "chat", model, "What is a statutory instrument?"]) == 0
    assert f"(answered by {model})" in capsys.readouterr().out
    assert main(["tf", "chat", model, "Same, whole?", "--no-stream"]) == 0
    assert "Interpretation Act 1978" in capsys.readouterr().out

    assert main(["tf", "models"]) == 0
    out = capsys.readouterr().out
    assert "meta-llama/Llama-3.1-8B-Instruct" in out and "deploy as meta-llama/Meta-Llama-3.1-8B-Instruct" in out
    assert f"{model}  active" in out
    assert main(["tf", "models", "--delete", model]) == 0
    assert main(["tf", "models"]) == 0
    assert "no deployed models" in capsys.readouterr().out


def test_cli_launch_refuses_a_dataset_the_service_would_refuse(standin, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    assert main(["tf", "launch", "--dataset", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "error: no records are left after cleaning" in captured.out
    assert "nothing was uploaded" in captured.err and list_jobs() == []


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "0"], "epochs must be a whole number of at least 1"),
    (["--learning-rate", "0"], "learning rate must be greater than 0"),
    (["--lora-r", "0"], "LoRA rank must be a positive whole number"),
    (["--lora-dropout", "1"], "LoRA dropout must be at least 0 and below 1"),
    (["--suffix", "x" * 65], "the service allows 64"),
])
def test_cli_launch_rejects_senseless_values(argv, message, tmp_path, capsys):
    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_without_a_key_says_how_to_set_one(tmp_path, capsys):
    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path))]) == 1
    assert "no Nebius API key: set NEBIUS_API_KEY" in capsys.readouterr().err
    assert main(["tf", "models"]) == 0  # the shipped catalogue still shows
    out = capsys.readouterr().out
    assert "showing the shipped catalogue only" in out and "meta-llama/Llama-3.3-70B-Instruct" in out


def test_cli_unknown_job_is_a_usage_error(standin, capsys):
    assert main(["tf", "status", "tf-nope"]) == 2
    assert "no job 'tf-nope'" in capsys.readouterr().err


@pytest.mark.slow  # the SDK retries a refused connection with backoff before giving up
def test_cli_status_offline_shows_the_recorded_job(standin, tmp_path, capsys):
    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), "--epochs", "1", "--wait",
                 "--poll", "0.05"]) == 0
    [job] = list_jobs()
    capsys.readouterr()
    standin.shutdown()
    standin.server_close()
    assert main(["tf", "status", job.id]) == 1
    captured = capsys.readouterr()
    assert "cannot reach 127.0.0.1" in captured.err and "showing what was recorded locally" in captured.err
    assert f"{job.id}  succeeded" in captured.out
    assert get_job(job.id) == job


def test_cli_deploy_error_exits_nonzero_with_the_reason(standin, tmp_path, capsys):
    import urllib.request

    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), "--epochs", "1", "--wait",
                 "--poll", "0.05"]) == 0
    [job] = list_jobs()
    urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{standin.server_address[1]}/_control", method="POST",
        data=json.dumps({"deploy_error": "quota exceeded"}).encode()))
    assert main(["tf", "deploy", job.id, "--name", "x", "--wait", "--poll", "0.05"]) == 1
    assert "the deployment failed: quota exceeded" in capsys.readouterr().err


def test_the_key_never_lands_in_files_logs_or_messages(monkeypatch, tmp_path, capsys, caplog, legalft_home):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPENAI_LOG", "debug")
    server = start_server(api_key=FAKE_KEY, phase_seconds=0.05, deploy_seconds=0.05)
    other = start_server(api_key="a-different-key")  # rejects FAKE_KEY: the 401 path
    monkeypatch.setenv(tf.URL_ENV, server.base_url)
    monkeypatch.setenv(tf.KEY_ENV, FAKE_KEY)
    messages: list[str] = []
    try:
        job_id, model = launch_and_deploy(tmp_path, capsys)
        assert main(["tf", "status", job_id]) == 0
        assert main(["tf", "chat", model, "What does the Act say?"]) == 0
        assert main(["tf", "models"]) == 0
        # Error paths carry the key in their requests; their messages must not carry it back.
        monkeypatch.setenv(tf.URL_ENV, other.base_url)
        assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), "--epochs", "1"]) == 1
        for client in (tf.TokenFactoryClient(base_url=other.base_url, max_retries=0),
                       tf.TokenFactoryClient(base_url="http://127.0.0.1:9/v1", max_retries=0)):
            with pytest.raises(ServiceError) as caught:
                client.list_served_models()
            messages.append(str(caught.value))
            assert FAKE_KEY not in repr(client)
    finally:
        server.shutdown()
        other.shutdown()
    captured = capsys.readouterr()
    assert "the key was rejected" in captured.err and any("the key was rejected" in m for m in messages)
    assert any(r.name.startswith("openai") for r in caplog.records)  # the SDK's debug logs were captured

    files = [p for p in legalft_home.rglob("*") if p.is_file()]
    assert any(p.name == "legalft.db" for p in files) and any(p.suffix == ".jsonl" for p in files)
    leaks = [str(p) for p in files if FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert FAKE_KEY not in logged
    assert FAKE_KEY not in captured.out + captured.err + "\n".join(messages)
    # Nor a recognisable piece of it.
    assert "LEAKCHECK" not in logged + captured.out + captured.err


def test_cli_and_library_import_without_the_sdk():
    script = ("import sys, legalft.cli.tf, legalft.managed; "
              "from legalft.cli import build_parser; build_parser(); "
              "print(sorted(m for m in ('openai', 'httpx2', 'torch', 'streamlit') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_continues_from_a_checkpoint_imports_one_and_refuses_an_undeployable_adapter(standin, tmp_path, capsys):
    from legalft.jobs import list_checkpoints

    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), "--epochs", "1", "--wait",
                 "--poll", "0.05", "--tag", "uk"]) == 0
    first = list_jobs()[0]
    checkpoint = list_checkpoints(first.id)[-1]["checkpoint_id"]
    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), "--epochs", "1",
                 "--from-checkpoint", f"{first.remote_id}:{checkpoint}"]) == 0
    assert list_jobs()[0].config["from_checkpoint"] == f"{first.remote_id}:{checkpoint}"
    capsys.readouterr()
    assert main(["tf", "import", first.id]) == 0
    out = capsys.readouterr().out
    assert "downloaded 2 files" in out and "legalft serve start" in out
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "someone/tiny-model"}))
    assert main(["tf", "deploy-adapter", str(adapter), "--name", "x"]) == 2
    assert "is not a model the service deploys adapters for" in capsys.readouterr().err
    assert main(["tf", "launch", "--dataset", str(train_file(tmp_path)), "--epochs", "50"]) == 2
    assert "epochs must be from 1 to 20 (the service's limit)" in capsys.readouterr().err
