"""Serve and chat without a model: echo stripping, settings, keys, server command lines, the legal API's guards.

Everything here runs in well under a second a test; the real model server is in test_serve_chat.py.
"""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from legalft import chat, serve
from legalft.api import ApiConfigError, ApiSettings, create_app, parse_origins
from legalft.cli import main
from legalft.endpoints import save_endpoint
from legalft.errors import ServiceError
from legalft.jobs import create_job

TOKEN = "t" * 32
QUESTION = "What does section 1 of the Interpretation Act 1978 say about gender?"


# --- echo stripping -------------------------------------------------------------------------------


@pytest.mark.parametrize("answer, expected", [
    (f"{QUESTION}\n\nWords importing the masculine gender include the feminine.",
     "Words importing the masculine gender include the feminine."),
    (f"{chat.DEFAULT_SYSTEM_PROMPT}\n{QUESTION}\nAnswer: Words importing the masculine gender include the feminine.",
     "Words importing the masculine gender include the feminine."),
    (f"Question: {QUESTION.upper()}\nAnswer: It provides a rule of construction.", "It provides a rule of construction."),
    ("assistant\nSection 6 applies.", "Section 6 applies."),
    (f'"{QUESTION}" Section 6(a) says so.', "Section 6(a) says so."),
    ("Section 6 of the Act says so.", "Section 6 of the Act says so."),
])
def test_clean_answer_strips_echoes(answer, expected):
    assert chat.clean_answer(answer, QUESTION, chat.DEFAULT_SYSTEM_PROMPT) == expected


def test_clean_answer_keeps_answers_that_only_start_like_the_question():
    # "hi" is the whole question, but "Hi there" is an answer, not an echo.
    assert chat.clean_answer("Hi there, how can I help?", "hi") == "Hi there, how can I help?"
    assert chat.clean_answer("What does section 1 say is a question often asked.", "What does section 1 say") == \
        "What does section 1 say is a question often asked."
    assert chat.clean_answer("", QUESTION) == ""
    assert chat.clean_answer(QUESTION, QUESTION) == ""  # an answer that is only the echo says nothing


def _feed(pieces: list[str], question: str, system: str | None = None) -> tuple[list[str], str]:
    echo = chat.EchoFilter(question, system)
    out = [echo.feed(p) for p in pieces]
    return out, "".join(out) + echo.finish()


def test_echo_filter_matches_clean_answer_piece_by_piece():
    answer = f"{chat.DEFAULT_SYSTEM_PROMPT}\n{QUESTION}\nAnswer: Words importing the masculine gender include females."
    pieces = [answer[i:i + 3] for i in range(0, len(answer), 3)]
    out, text = _feed(pieces, QUESTION, chat.DEFAULT_SYSTEM_PROMPT)
    assert text == chat.clean_answer(answer, QUESTION, chat.DEFAULT_SYSTEM_PROMPT)
    assert text == "Words importing the masculine gender include females."
    assert not any(out[: len(chat.DEFAULT_SYSTEM_PROMPT) // 3])  # nothing of the echo leaked out early


def test_echo_filter_lets_a_real_answer_through_at_once():
    out, text = _feed(["Section", " 6", " provides", " that"], QUESTION)
    assert out[0] == "Section" and out[1:] == [" 6", " provides", " that"]
    assert text == "Section 6 provides that"
    # A stream that ends while it still looks like an echo gives back what it held.
    out, text = _feed(["What", " does"], QUESTION)
    assert out == ["", ""] and text == "What does"


# --- settings, messages, endpoints and keys -------------------------------------------------------


def test_settings_limits_and_defaults():
    settings = chat.ChatSettings()
    assert settings.request_fields() == {"max_tokens": 1024, "temperature": 0.3, "frequency_penalty": 0.35,
                                         "presence_penalty": 0.15}
    for bad in ({"max_tokens": 0}, {"max_tokens": 4097}, {"temperature": -0.1}, {"temperature": 2.5},
                {"frequency_penalty": 3}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            chat.ChatSettings(**bad)


def test_build_messages():
    history = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
               {"role": "system", "content": "ignored: the system prompt is given separately"}]
    messages = chat.build_messages("q2", "be brief", history=history)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[0]["content"] == "be brief" and messages[-1]["content"] == "q2"
    assert chat.build_messages("q", None) == [{"role": "user", "content": "q"}]
    with pytest.raises(ValueError, match="empty"):
        chat.build_messages("  ")


def _endpoint(kind="local", model="/models/m", base_url="http://127.0.0.1:9/v1", **details):
    return save_endpoint(kind=kind, name=f"{kind}-{model}", base_url=base_url, model=model, status="active",
                         details=details)


def test_resolve_endpoint_by_id_name_or_model():
    first = _endpoint(model="/models/a")
    second = _endpoint(kind="vllm", model="legal-lora")
    assert chat.resolve_endpoint(str(first.id)).id == first.id
    assert chat.resolve_endpoint("vllm-legal-lora").id == second.id
    assert chat.resolve_endpoint("legal-lora").id == second.id
    with pytest.raises(ServiceError, match="legalft serve start smoke") as info:
        chat.resolve_endpoint("nope")
    assert info.value.kind == "not_found"


def test_keys_come_from_the_environment_named_for_the_kind(monkeypatch):
    local = _endpoint()
    assert chat.api_key_for(local) == chat.NO_KEY
    managed = _endpoint(kind="token_factory", model="llama-LoRa:x", base_url="https://example.invalid/v1/")
    with pytest.raises(ServiceError, match="NEBIUS_API_KEY") as info:
        chat.api_key_for(managed)
    assert info.value.kind == "no_key"
    monkeypatch.setenv("NEBIUS_API_KEY", "nebius-key")
    assert chat.api_key_for(managed) == "nebius-key"
    vllm = _endpoint(kind="vllm", model="m2", key_env="MY_VLLM_KEY")
    assert chat.api_key_for(vllm) == chat.NO_KEY
    monkeypatch.setenv("MY_VLLM_KEY", "vk")
    assert chat.api_key_for(vllm) == "vk"
    # The key is never written to the endpoints table.
    assert "nebius-key" not in json.dumps(managed.details) and "vk" not in json.dumps(vllm.details)


def test_chat_against_the_managed_stand_in_uses_the_same_client(monkeypatch):
    from token_factory_server import DEFAULT_KEY, start_server

    server = start_server()
    try:
        endpoint = _endpoint(kind="token_factory", model="meta-llama/Meta-Llama-3.1-8B-Instruct",
                             base_url=server.base_url)
        monkeypatch.setenv("NEBIUS_API_KEY", DEFAULT_KEY)
        reply = chat.chat(endpoint, chat.build_messages(QUESTION), max_tokens=64)
        assert "answered by meta-llama/Meta-Llama-3.1-8B-Instruct" in reply.text
        assert reply.usage["completion_tokens"] > 0
        with chat.stream_chat(endpoint, chat.build_messages(QUESTION), max_tokens=64) as pieces:
            streamed = "".join(pieces)
        assert streamed == reply.text == pieces.reply.text
        monkeypatch.setenv("NEBIUS_API_KEY", "wrong-key")
        with pytest.raises(ServiceError, match="rejected the key") as info:
            chat.chat(endpoint, chat.build_messages(QUESTION))
        assert info.value.kind == "auth" and "wrong-key" not in str(info.value)
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_server_is_a_plain_error():
    endpoint = _endpoint(base_url=f"http://127.0.0.1:{serve.free_port()}/v1")
    with pytest.raises(ServiceError, match="not running") as info:
        chat.chat(endpoint, chat.build_messages("q"))
    assert info.value.kind == "network"
    with pytest.raises(ServiceError, match="legalft serve start"):
        list(chat.stream_chat(endpoint, chat.build_messages("q")))


# --- server command lines -------------------------------------------------------------------------


def _model_dir(path: Path, template: bool = True) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    if template:
        (path / "chat_template.jinja").write_text("{{ messages }}")
    return path


def _adapter_dir(path: Path, base: str, rank: int = 16) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base, "r": rank}))
    (path / "chat_template.jinja").write_text("{{ messages }}")
    return path


def test_vllm_command_for_a_merged_model_uses_the_reference_flags(tmp_path):
    model = _model_dir(tmp_path / "run" / "merged")
    source = serve.resolve_target(tmp_path / "run")
    assert source.model == str(model.resolve()) and source.adapter_dir is None
    command = serve.vllm_command(source, serve.ServeConfig(kind="vllm"), 8100)
    assert command[:3] == ["vllm", "serve", str(model.resolve())]
    flags = dict(zip(command[3::2], command[4::2]))
    assert flags == {"--host": "127.0.0.1", "--port": "8100", "--served-model-name": "legal-lora",
                     "--dtype": "bfloat16", "--max-model-len": "4096", "--gpu-memory-utilization": "0.90",
                     "--chat-template": str(model.resolve() / "chat_template.jinja"),
                     "--chat-template-content-format": "string"}
    assert serve.served_models(source, serve.ServeConfig(kind="vllm")) == {"model": "legal-lora"}


def test_vllm_command_serves_an_adapter_unmerged_beside_its_base(tmp_path):
    base = _model_dir(tmp_path / "base", template=False)
    adapter = _adapter_dir(tmp_path / "run" / "adapter", str(base), rank=32)
    source = serve.resolve_target(tmp_path / "run")
    assert source.adapter_dir == str(adapter.resolve()) and source.model == str(base) and source.adapter_rank == 32
    config = serve.ServeConfig(kind="vllm", served_model_name="uk-legal", max_model_len=2048)
    command = serve.vllm_command(source, config, 8100, executable="/opt/vllm")
    assert command[:3] == ["/opt/vllm", "serve", str(base)]
    assert command[command.index("--served-model-name") + 1] == "legal-base"
    assert "--enable-lora" in command
    assert command[command.index("--lora-modules") + 1] == f"uk-legal={adapter.resolve()}"
    assert command[command.index("--max-lora-rank") + 1] == "32"  # above vLLM's default of 16
    assert command[command.index("--max-model-len") + 1] == "2048"
    assert command[command.index("--chat-template") + 1] == str(adapter.resolve() / "chat_template.jinja")
    assert serve.served_models(source, config) == {"model": "uk-legal", "base": "legal-base"}
    small = serve.vllm_command(serve.ModelSource(model=str(base), label="x", adapter_dir=str(adapter), adapter_rank=8),
                               config, 8100)
    assert "--max-lora-rank" not in small


def test_local_command_is_transformers_serve_pinned_to_the_folder(tmp_path):
    model = _model_dir(tmp_path / "m")
    source = serve.resolve_target(model)
    command = serve.transformers_command(source, serve.ServeConfig(), 8123)
    start = command.index("serve")
    assert command[start:start + 2] == ["serve", str(model.resolve())]
    flags = dict(zip(command[start + 2::2], command[start + 3::2]))
    assert flags == {"--host": "127.0.0.1", "--port": "8123", "--device": "auto", "--dtype": "auto",
                     "--log-level": "info"}
    assert serve.served_models(source, serve.ServeConfig()) == {"model": str(model.resolve())}


def test_serve_config_and_targets_reject_what_cannot_work(tmp_path):
    with pytest.raises(serve.ServeError, match="local .* or vllm"):
        serve.ServeConfig(kind="tgi")
    with pytest.raises(serve.ServeError, match="0.90"):
        serve.ServeConfig(kind="vllm", gpu_memory_utilization=1.5)
    with pytest.raises(serve.ServeError, match="port"):
        serve.ServeConfig(port=70000)
    (tmp_path / "empty").mkdir()
    with pytest.raises(serve.ServeError, match="no model to serve"):
        serve.resolve_target(tmp_path / "empty")
    with pytest.raises(serve.ServeError, match="neither a folder nor a job id"):
        serve.resolve_target(tmp_path / "missing")
    running = create_job("local", status="running", run_dir=str(tmp_path / "empty"))
    with pytest.raises(serve.ServeError, match="running"):
        serve.resolve_target(running.id)
    managed = create_job("token_factory", status="succeeded")
    with pytest.raises(serve.ServeError, match="Token Factory"):
        serve.resolve_target(managed.id)
    done = create_job("local", status="succeeded", run_dir=str(tmp_path / "run"), name="uk-run")
    _model_dir(tmp_path / "run" / "merged")
    source = serve.resolve_target(done.id)
    assert source.job_id == done.id and source.label == f"uk-run · {done.id}" and source.model.endswith("merged")
    with pytest.raises(serve.ServeError, match="vLLM only"):
        serve.start_server(source, serve.ServeConfig(served_model_name="x"))


def test_find_vllm_prefers_the_configured_executable_and_names_the_install(tmp_path, monkeypatch):
    fake = tmp_path / "vllm"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv(serve.VLLM_ENV, str(fake))
    assert serve.find_vllm() == str(fake)
    monkeypatch.delenv(serve.VLLM_ENV)
    monkeypatch.setattr(serve, "project_root", lambda: tmp_path / "nowhere")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-path"))
    if (Path(sys.executable).parent / "vllm").exists():
        pytest.skip("vLLM is installed in this environment")
    with pytest.raises(serve.ServeError, match="requirements-gpu.lock"):
        serve.find_vllm()


def test_cli_prints_the_vllm_command_without_vllm(tmp_path, capsys):
    model = _model_dir(tmp_path / "m")
    assert main(["serve", "start", str(model), "--kind", "vllm", "--print-command", "--port", "8100",
                 "--server-arg=--enforce-eager"]) == 0
    printed = capsys.readouterr().out
    assert "serve" in printed and "--served-model-name legal-lora" in printed and "--port 8100" in printed
    assert printed.split()[-1] == "--enforce-eager"
    assert main(["serve", "start", str(tmp_path / "missing")]) == 1
    assert "neither a folder nor a job id" in capsys.readouterr().err
    assert main(["serve", "start", str(model), "--kind", "vllm", "--gpu-memory-utilization", "2"]) == 2


def test_cli_list_and_chat_errors(capsys):
    assert main(["serve", "list"]) == 0
    assert "legalft serve start smoke" in capsys.readouterr().out
    endpoint = _endpoint(base_url=f"http://127.0.0.1:{serve.free_port()}/v1")
    assert main(["serve", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in listed] == [endpoint.id]
    assert main(["chat", str(endpoint.id), "hello"]) == 1
    assert "not running" in capsys.readouterr().err
    assert main(["chat", str(endpoint.id), "hello", "--max-tokens", "0"]) == 2
    assert main(["serve", "stop", str(endpoint.id)]) == 1
    assert "not started by legalft" in capsys.readouterr().err


# --- the legal API's guards -----------------------------------------------------------------------


def _down_endpoint():
    return _endpoint(model="/models/down", base_url=f"http://127.0.0.1:{serve.free_port()}/v1")


def _client(endpoint=None, **settings) -> TestClient:
    settings = {"token": TOKEN, **settings}
    return TestClient(create_app(endpoint or _down_endpoint(), ApiSettings(**settings)))


def test_api_requires_the_bearer_token():
    client = _client()
    body = {"query": QUESTION}
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}, {"Authorization": f"Basic {TOKEN}"}):
        response = client.post("/v1/legal/analyze", json=body, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    # Unauthenticated requests learn nothing about the schema either.
    assert client.post("/v1/legal/analyze", json={"max_tokens": 0}).status_code == 401
    # With the token the request reaches the model server, which is down here.
    response = client.post("/v1/legal/analyze", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503 and "not running" in response.json()["detail"]


@pytest.mark.parametrize("path, body, field", [
    ("/v1/legal/analyze", {"query": QUESTION, "max_tokens": 0}, "max_tokens"),
    ("/v1/legal/analyze", {"query": QUESTION, "max_tokens": 4097}, "max_tokens"),
    ("/v1/legal/analyze", {"query": QUESTION, "temperature": 2.1}, "temperature"),
    ("/v1/legal/analyze", {"query": "   "}, "query"),
    ("/v1/legal/analyze", {"query": QUESTION, "top_k": 3}, "top_k"),
    ("/v1/legal/chat", {"messages": []}, "messages"),
    ("/v1/legal/chat", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     "last message"),
    ("/v1/legal/chat", {"messages": [{"role": "robot", "content": "q"}]}, "role"),
])
def test_api_schema_limits(path, body, field):
    response = _client().post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 422
    assert field in json.dumps(response.json())


def test_api_health_is_503_when_the_model_server_is_down():
    response = _client().get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
    assert response.json()["detail"] == "the model server does not answer"  # no URLs or log lines to callers


def test_api_cors_only_for_configured_origins():
    client = _client(cors_origins=("https://intranet.example.co.uk",))
    allowed = client.get("/health", headers={"Origin": "https://intranet.example.co.uk"})
    assert allowed.headers["access-control-allow-origin"] == "https://intranet.example.co.uk"
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    ok = client.options("/v1/legal/analyze", headers={"Origin": "https://intranet.example.co.uk", **preflight})
    assert ok.status_code == 200 and "authorization" in ok.headers["access-control-allow-headers"].lower()
    refused = client.options("/v1/legal/analyze", headers={"Origin": "https://evil.example", **preflight})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    # Without configured origins no CORS header is ever sent.
    plain = _client().get("/health", headers={"Origin": "https://intranet.example.co.uk"})
    assert "access-control-allow-origin" not in plain.headers


def test_api_settings_refuse_unsafe_configurations(monkeypatch):
    with pytest.raises(ApiConfigError, match="LEGALFT_API_TOKEN"):
        ApiSettings()
    with pytest.raises(ApiConfigError, match="too short"):
        ApiSettings(token="short")
    assert ApiSettings(require_auth=False).token is None
    with pytest.raises(ApiConfigError, match="loopback"):
        ApiSettings.from_env(no_auth=True, host="0.0.0.0")
    assert ApiSettings.from_env(no_auth=True, host="127.0.0.1").require_auth is False
    monkeypatch.setenv("LEGALFT_API_TOKEN", TOKEN)
    monkeypatch.setenv("LEGALFT_API_CORS_ORIGINS", "https://a.example/, http://localhost:8501")
    settings = ApiSettings.from_env(host="0.0.0.0")
    assert settings.cors_origins == ("https://a.example", "http://localhost:8501")
    assert TOKEN not in repr(settings)
    with pytest.raises(ApiConfigError, match="not '\\*'"):
        parse_origins("*")
    with pytest.raises(ApiConfigError, match="scheme://host"):
        parse_origins("intranet.example/app")


def test_cli_api_without_a_token_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.delenv("LEGALFT_API_TOKEN", raising=False)
    endpoint = _down_endpoint()
    assert main(["api", "--endpoint", str(endpoint.id)]) == 2
    assert "LEGALFT_API_TOKEN" in capsys.readouterr().err
    assert main(["api", "--endpoint", str(endpoint.id), "--no-auth", "--host", "0.0.0.0"]) == 2
    assert "loopback" in capsys.readouterr().err
