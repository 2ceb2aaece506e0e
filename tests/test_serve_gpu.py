"""vLLM on a GPU: the reference serving path, merged and as an unmerged LoRA adapter beside its base.

Runs only where CUDA is present (the ``gpu`` marker) and vLLM's environment is installed
(``python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install -r requirements-gpu.lock``).
The smoke model is built with 64-wide attention heads, which vLLM's kernels support.
"""

from __future__ import annotations

import pytest

from legalft import chat, serve

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

QUESTION = "What does section 1 of the Interpretation Act 1978 say about gender?"
# Small, but with a head size vLLM's attention kernels take (256 / 4 = 64).
SPEC = {"hidden_size": 256, "intermediate_size": 512, "num_attention_heads": 4, "num_key_value_heads": 2}
# A test shares the GPU; eager mode skips CUDA-graph capture, which only costs start-up time here.
GPU_CONFIG = {"kind": "vllm", "max_model_len": 1024, "gpu_memory_utilization": 0.30, "extra_args": ("--enforce-eager",)}


@pytest.fixture(scope="module")
def vllm_ready():
    try:
        return serve.find_vllm()
    except serve.ServeError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def smoke_dirs(tmp_path_factory):
    from legalft.train.smoke import SmokeModelSpec, build_smoke_model

    root = tmp_path_factory.mktemp("gpu-smoke")
    model = build_smoke_model(root / "model", SmokeModelSpec(**SPEC))
    return root, model


def _ask(endpoint, **kwargs) -> chat.ChatReply:
    return chat.chat(endpoint, chat.build_messages(QUESTION), max_tokens=24, temperature=0.0, **kwargs)


def test_vllm_serves_a_merged_model(vllm_ready, smoke_dirs):
    _, model = smoke_dirs
    endpoint = serve.start_server(model, timeout=600, **GPU_CONFIG)
    try:
        assert endpoint.status == "active", endpoint.details.get("error")
        assert endpoint.model == serve.DEFAULT_SERVED_NAME
        assert "--chat-template-content-format" in endpoint.details["command"]
        whole = _ask(endpoint)
        assert whole.text and 1 <= whole.usage["completion_tokens"] <= 24
        streamed = _ask(endpoint, stream=True)
        assert streamed.text == whole.text and streamed.usage == whole.usage  # usage arrives via stream_options
    finally:
        serve.stop_server(endpoint)
    assert serve.check_health(endpoint).status in ("stopped", "failed", "unreachable")


def test_vllm_serves_an_adapter_unmerged_with_its_base_beside_it(vllm_ready, smoke_dirs):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, model = smoke_dirs
    adapter = root / "adapter"
    # Non-zero LoRA weights, so the adapter's answers differ from the base model's.
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model),
                                LoraConfig(r=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(adapter)
    AutoTokenizer.from_pretrained(model).save_pretrained(adapter)

    endpoint = serve.start_server(adapter, timeout=600, **GPU_CONFIG)
    try:
        assert endpoint.status == "active", endpoint.details.get("error")
        assert "--enable-lora" in endpoint.details["command"]
        base = next(e for e in serve.list_servers() if e.model == serve.BASE_SERVED_NAME)
        assert base.status == "active" and base.details["pid"] == endpoint.details["pid"]
        assert _ask(endpoint).text != _ask(base).text
    finally:
        serve.stop_server(endpoint)
    assert {e.status for e in serve.list_servers()} == {"stopped"}  # the base went with it
