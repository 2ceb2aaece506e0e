"""Models that move: an unmerged adapter served on the CPU, a managed checkpoint brought home and
served, a local adapter deployed to the managed stand-in. Real PEFT adapters on the smoke model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from test_token_factory import launched

from legalft import chat, models, serve
from legalft import managed as tf
from legalft.cli import main
from legalft.errors import UsageError
from legalft.jobs import list_checkpoints

QUESTION = "What does section 1 of the Interpretation Act 1978 say?"


@pytest.fixture(scope="module")
def smoke_adapter(tmp_path_factory):
    """The smoke model and a LoRA adapter on it with non-zero weights, saved as a run saves one."""
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    from legalft.train.smoke import build_smoke_model

    root = tmp_path_factory.mktemp("adapter")
    base = build_smoke_model(root / "base")
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                                  init_lora_weights=False))
    adapter = root / "run" / "adapter"
    peft_model.save_pretrained(str(adapter))
    transformers.AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(adapter))
    return base, adapter


def digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def logits(model_dir_or_model, text: str = QUESTION):
    import torch
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir_or_model[0]))
    with torch.no_grad():
        return model_dir_or_model[1](**tokenizer(text, return_tensors="pt")).logits


def test_merged_for_serving_behaves_like_adapter_on_base_and_is_built_once(smoke_adapter):
    import torch
    import transformers
    from peft import PeftModel

    base, adapter = smoke_adapter
    before = digest(adapter)
    merged_dir = models.merged_for_serving(adapter)
    assert merged_dir.parent.name == "merged" and (merged_dir / "config.json").is_file()
    assert digest(adapter) == before  # the run's adapter is never written
    on_base = PeftModel.from_pretrained(
        transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32), str(adapter)).eval()
    merged = transformers.AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32).eval()
    plain = transformers.AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32).eval()
    expected = logits((adapter, on_base))
    assert torch.allclose(logits((merged_dir, merged)), expected, atol=1e-4)
    assert not torch.allclose(logits((base, plain)), expected, atol=1e-3)  # the adapter changes the model
    stamp = (merged_dir / "merged.json").stat().st_mtime_ns
    assert models.merged_for_serving(adapter) == merged_dir and (merged_dir / "merged.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_serve_start_of_an_unmerged_run_on_the_cpu(smoke_adapter, capsys):
    _, adapter = smoke_adapter
    run_dir = adapter.parent  # a finished, unmerged run: adapter/ and no merged/
    assert main(["serve", "start", str(run_dir), "--name", "unmerged", "--timeout", "240"]) == 0
    endpoint = chat.resolve_endpoint("unmerged")
    try:
        assert endpoint.status == "active", endpoint.details.get("error")
        assert Path(endpoint.model).parent.name == "merged"  # served from the merge cache
        reply = chat.chat(endpoint, chat.build_messages(QUESTION), max_tokens=8, temperature=0)
        assert reply.usage["completion_tokens"] >= 1
    finally:
        serve.stop_server(endpoint)


@pytest.mark.slow
def test_managed_checkpoint_downloaded_and_served_locally(smoke_adapter, standin, tmp_path):
    _, adapter = smoke_adapter
    standin.state.checkpoint_files = {p.name: p.read_bytes() for p in adapter.iterdir() if p.is_file()}
    job = tf.wait_for_job(launched(standin, tmp_path, epochs=1), poll_seconds=0.05)
    imported = models.import_checkpoint(job.id)
    assert imported.checkpoint_id == list_checkpoints(job.id)[-1]["checkpoint_id"]
    for name in standin.state.checkpoint_files:
        assert (imported.path / name).read_bytes() == (adapter / name).read_bytes()
    assert models.import_checkpoint(job.id).already_there
    assert [m["job_id"] for m in models.list_local_models()] == [job.id]
    endpoint = serve.start_server(imported.path, timeout=240, name="from-managed")
    try:
        assert endpoint.status == "active", endpoint.details.get("error")
        reply = chat.chat(endpoint, chat.build_messages(QUESTION), max_tokens=8, temperature=0)
        assert reply.usage["completion_tokens"] >= 1
    finally:
        serve.stop_server(endpoint)


def test_local_adapter_deployed_to_the_managed_service(smoke_adapter, standin, tmp_path):
    _, adapter = smoke_adapter
    with pytest.raises(UsageError, match="is not a model the service deploys adapters for"):
        models.deploy_adapter(adapter, name="uk-legal")  # the smoke base is no catalogue model
    requests = [r for r in _requests(standin) if r["path"] == "/v1/files"]
    assert requests == []  # refused before any upload
    llama = tmp_path / "llama-adapter"
    llama.mkdir()
    for path in adapter.iterdir():
        if path.is_file():
            (llama / path.name).write_bytes(path.read_bytes())
    config = json.loads((llama / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B-Instruct"
    (llama / "adapter_config.json").write_text(json.dumps(config))
    endpoint = models.deploy_adapter(llama, name="uk-legal")
    assert endpoint.model.startswith("meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:uk-legal-")
    source = endpoint.details["source"]
    assert standin.state.files[source]["purpose"] == "user_data"
    endpoint = tf.poll_deployment(endpoint.model, wait=True, poll_seconds=0.05)
    assert endpoint.status == "active"
    assert "Interpretation Act 1978" in tf.smoke_test(endpoint.model).text


def _requests(server):
    from test_token_factory import control

    return control(server, path="/_control/requests")
