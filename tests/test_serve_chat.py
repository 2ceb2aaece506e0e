"""Serve and chat against real model servers: two smoke models behind real `transformers serve` processes.

One pair of servers is started per module (about 15 s on two cores): a "tuned" model and a "base"
model with other random weights, so the comparison mode has two different answers to show. Each
test registers them in its own LEGALFT_HOME. Greedy decoding makes every answer reproducible, so the
library, the CLI, the legal API and the Chat page can be checked against each other exactly.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from legalft import chat, serve
from legalft.api import ApiSettings, create_app
from legalft.cli import main
from legalft.endpoints import Endpoint, list_endpoints, save_endpoint
from legalft.errors import ServiceError
from tests.conftest import open_app_page

pytestmark = pytest.mark.slow  # every test here uses the module's two model servers (about 15 s to start)

TOKEN = "test-token-" + "x" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTION = "What does section 1 of the Interpretation Act 1978 say about gender?"
ROOT = Path(__file__).resolve().parent.parent

#: A 600-token answer takes ~30 s on this CPU; a 4-token one that does not queue behind it, ~1 s.
#: Half the long one is the line between "stopped" and "still generating", with room for a loaded machine.
QUEUED_BEHIND_SECONDS = 15.0


@dataclass
class Served:
    tuned: Endpoint
    base: Endpoint
    tuned_dir: Path
    base_dir: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Two real model servers for the whole module, stopped at its end."""
    from legalft.train.smoke import SmokeModelSpec, build_smoke_model

    root = tmp_path_factory.mktemp("served")
    tuned_dir = build_smoke_model(root / "tuned")
    base_dir = build_smoke_model(root / "base", SmokeModelSpec(seed=1))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGALFT_HOME", str(root / "home"))
        # Started together, so the two model loads overlap.
        started = [serve.start_server(tuned_dir, wait=False, name="tuned"),
                   serve.start_server(base_dir, wait=False, name="base")]
        ready = [serve.wait_until_ready(e, timeout=240)[0] for e in started]
    try:
        if any(e.status != "active" for e in ready):
            pytest.fail("the model servers did not start: " + "; ".join(str(e.details.get("error")) for e in ready))
        yield Served(tuned=ready[0], base=ready[1], tuned_dir=tuned_dir, base_dir=base_dir)
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LEGALFT_HOME", str(root / "home"))
            for endpoint in ready:
                serve.stop_server(endpoint)


def register(endpoint: Endpoint) -> Endpoint:
    """The module's server, recorded in this test's own endpoints table."""
    return save_endpoint(kind=endpoint.kind, name=endpoint.name, base_url=endpoint.base_url, model=endpoint.model,
                         status="active", details=endpoint.details)


def legal_messages(question: str = QUESTION) -> list[dict[str, str]]:
    return chat.build_messages(question, chat.DEFAULT_SYSTEM_PROMPT)


# --- the one client -------------------------------------------------------------------------------


def test_whole_and_streamed_answers_agree(served):
    tuned = register(served.tuned)
    whole = chat.chat(tuned, legal_messages(), max_tokens=24)
    assert whole.text.strip() and whole.model == str(served.tuned_dir)
    assert 1 <= whole.usage["completion_tokens"] <= 24 and whole.usage["prompt_tokens"] > 20
    with chat.stream_chat(tuned, legal_messages(), max_tokens=24) as stream:
        pieces = list(stream)
    assert len(pieces) > 1 and "".join(pieces) == whole.text
    assert stream.reply.text == whole.text and stream.reply.usage == whole.usage
    assert chat.chat(tuned, legal_messages(), max_tokens=24, stream=True).text == whole.text
    # The base model has other weights: comparing the two shows a difference.
    assert chat.chat(register(served.base), legal_messages(), max_tokens=24).text != whole.text


def test_a_server_pinned_to_its_folder_refuses_other_models(served):
    wrong = save_endpoint(kind="local", name="wrong", base_url=served.tuned.base_url, model="/some/other/model",
                          status="active")
    with pytest.raises(ServiceError, match="pinned") as info:
        chat.chat(wrong, legal_messages(), max_tokens=4)
    assert info.value.kind == "bad_request"


def test_closing_a_stream_early_stops_the_generation(served):
    tuned = register(served.tuned)
    stream = chat.stream_chat(tuned, legal_messages(), max_tokens=600)  # about 30 s of generation on a CPU
    pieces = iter(stream)
    next(pieces), next(pieces)
    stream.close()
    assert stream.reply is None
    # The server generates one answer at a time: had the abandoned one gone on (~30 s), this short
    # answer would queue behind it and time out.
    assert chat.chat(tuned, legal_messages(), max_tokens=4, timeout=QUEUED_BEHIND_SECONDS).usage[
        "completion_tokens"] >= 1


# --- servers: idempotent start, stop, failure -----------------------------------------------------


def test_start_is_idempotent_and_stop_ends_the_process(served):
    tuned = register(served.tuned)
    again = serve.start_server(served.tuned_dir)
    assert again.id == tuned.id and again.details["pid"] == served.tuned.details["pid"]
    assert len(list_endpoints("local")) == 1

    fresh = serve.start_server(served.base_dir, wait=False, name="short-lived")
    assert fresh.status == "starting" and psutil.pid_exists(fresh.details["pid"])
    assert Path(fresh.details["log"]).is_file() and fresh.details["command"][-1] == "info"
    stopped = serve.stop_server(fresh)
    assert stopped.status == "stopped"
    assert serve._process(fresh.details) is None
    assert serve.check_health(stopped).status == "stopped"
    health = TestClient(create_app(stopped, ApiSettings(token=TOKEN))).get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "model": "short-lived", "detail": "the model server was stopped"}
    assert serve.stop_server(stopped).status == "stopped"  # idempotent
    # The module's own server was left alone.
    assert serve.check_health(tuned).ok


@pytest.mark.slow
def test_a_server_that_cannot_load_its_model_reports_why(tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    endpoint = serve.start_server(broken, timeout=120)
    assert endpoint.status == "failed"
    last_line = Path(endpoint.details["log"]).read_text().strip().splitlines()[-1]
    assert "exited" in endpoint.details["error"] and last_line in endpoint.details["error"]
    assert serve._process(endpoint.details) is None
    assert [e.status for e in serve.list_servers()] == ["failed"]


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_chat_and_list(served, capsys):
    tuned = register(served.tuned)
    expected = chat.chat(tuned, legal_messages(), max_tokens=16).text
    assert main(["chat", str(tuned.id), QUESTION, "--max-tokens", "16", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["answer"] == expected and printed["usage"]["completion_tokens"] <= 16
    assert main(["chat", "tuned", QUESTION, "--max-tokens", "16"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == expected
    assert main(["serve", "list", "--check"]) == 0
    line = capsys.readouterr().out.strip()
    assert "tuned" in line and "active" in line and str(served.tuned.details["pid"]) in line


# --- the legal API --------------------------------------------------------------------------------


def sse_events(lines) -> list[str]:
    return [line[len("data: "):] for line in lines if line.startswith("data: ")]


def test_legal_api_answers_whole_and_streamed(served):
    tuned = register(served.tuned)
    expected = chat.chat(tuned, legal_messages(), max_tokens=20)
    client = TestClient(create_app(tuned, ApiSettings(token=TOKEN)))
    assert client.get("/health").json() == {"status": "ok", "model": "tuned", "detail": "ok"}

    response = client.post("/v1/legal/analyze", json={"query": QUESTION, "max_tokens": 20}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body == {"answer": expected.text, "model": "tuned", "usage": expected.usage}

    conversation = client.post("/v1/legal/chat", headers=AUTH, json={
        "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 20})
    assert conversation.status_code == 200
    assert conversation.json()["message"] == {"role": "assistant", "content": expected.text}

    with client.stream("POST", "/v1/legal/analyze", headers=AUTH,
                       json={"query": QUESTION, "max_tokens": 20, "stream": True}) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        events = sse_events(stream.iter_lines())
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert "".join(p["delta"] for p in payloads if "delta" in p) == expected.text
    assert payloads[-1]["done"] is True and payloads[-1]["usage"] == expected.usage
    assert client.app.state.streams == {"started": 1, "completed": 1, "disconnected": 0, "failed": 0}

    other_prompt = client.post("/v1/legal/analyze", headers=AUTH, json={
        "query": QUESTION, "max_tokens": 20, "system_prompt": "Answer in one word."})
    assert other_prompt.status_code == 200 and other_prompt.json()["answer"] != expected.text


def _serve_in_thread(app):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=serve.free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    return server, thread


def _upstream_connections(port: int) -> list:
    return [c for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]


def test_legal_api_closes_the_upstream_stream_when_the_client_leaves(served):
    tuned = register(served.tuned)
    app = create_app(tuned, ApiSettings(token=TOKEN))
    server, thread = _serve_in_thread(app)
    model_port = served.tuned.details["port"]
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.config.port, timeout=30)
        connection.request("POST", "/v1/legal/analyze", headers={**AUTH, "Content-Type": "application/json"},
                           body=json.dumps({"query": QUESTION, "max_tokens": 600, "stream": True}))
        response = connection.getresponse()
        assert response.status == 200
        line = response.readline()
        while not line.startswith(b"data: "):
            line = response.readline()
        assert json.loads(line[len(b"data: "):])["delta"]
        assert _upstream_connections(model_port)  # the API is streaming from the model server
        response.close()
        connection.close()  # the client leaves mid-answer

        deadline = time.monotonic() + 10
        while (app.state.streams["disconnected"] < 1 or _upstream_connections(model_port)) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert app.state.streams["disconnected"] == 1 and app.state.streams["completed"] == 0
        assert _upstream_connections(model_port) == []
        # And the model server stopped generating: the next answer does not queue behind it (~30 s).
        assert chat.chat(tuned, legal_messages(), max_tokens=4, timeout=QUEUED_BEHIND_SECONDS).text is not None
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- the Chat page --------------------------------------------------------------------------------


def open_chat_page(**state) -> AppTest:
    return open_app_page("views/chat.py", timeout=60, **state)


def select(widget, label_part: str) -> None:
    widget.select_index(next(i for i, label in enumerate(widget.options) if label_part in label))


def test_chat_page_without_endpoints_offers_to_start_one():
    at = open_chat_page()
    assert any("No model is being served" in i.value for i in at.info)
    assert at.button(key="chat_start").label == "Start server"
    assert any("Smoke model" in o for o in at.selectbox(key="chat_source").options)


def test_chat_page_streams_an_answer(served):
    register(served.base)
    tuned = register(served.tuned)
    expected = chat.chat(tuned, legal_messages(), max_tokens=16).text
    at = open_chat_page()
    select(at.selectbox(key="chat_endpoint"), "tuned")
    at.number_input(key="chat_max_tokens").set_value(16)
    at.chat_input(key="chat_question").set_value(QUESTION).run()
    assert not at.exception, at.exception
    [turn] = at.session_state["chat_history"]
    assert turn["question"] == QUESTION and [a["name"] for a in turn["answers"]] == ["tuned"]
    assert turn["answers"][0]["text"] == expected
    assert expected in [m.value for m in at.markdown]
    # A follow-up carries the conversation: the tuned model sees its own earlier answer.
    at.chat_input(key="chat_question").set_value("And section 2?").run()
    assert len(at.session_state["chat_history"]) == 2
    follow_up = chat.chat(tuned, chat.build_messages("And section 2?", chat.DEFAULT_SYSTEM_PROMPT, history=[
        {"role": "user", "content": QUESTION}, {"role": "assistant", "content": expected}]), max_tokens=16).text
    assert at.session_state["chat_history"][1]["answers"][0]["text"] == follow_up


def test_chat_page_compares_with_the_base_model(served):
    base = register(served.base)
    tuned = register(served.tuned)
    expected = {name: chat.chat(e, legal_messages(), max_tokens=12).text for name, e in (("tuned", tuned), ("base", base))}
    at = open_chat_page()
    select(at.selectbox(key="chat_endpoint"), "tuned")
    at.toggle(key="chat_compare").set_value(True).run()
    select(at.selectbox(key="chat_base_endpoint"), "base")
    at.number_input(key="chat_max_tokens").set_value(12)
    at.chat_input(key="chat_question").set_value(QUESTION).run()
    assert not at.exception, at.exception
    answers = at.session_state["chat_history"][0]["answers"]
    assert {a["name"]: a["text"] for a in answers} == expected
    assert expected["tuned"] != expected["base"]
    shown = [m.value for m in at.markdown]
    assert "**tuned**" in shown and "**base**" in shown
    assert expected["tuned"] in shown and expected["base"] in shown


def test_monitor_hands_a_model_folder_to_the_chat_page(served):
    tuned = register(served.tuned)
    at = open_chat_page(chat_model_dir=str(served.tuned_dir))
    source = at.selectbox(key="chat_source")
    assert source.value == f"From Monitor: {served.tuned_dir}"
    at.button(key="chat_start").click().run()
    assert not at.exception, at.exception
    # The folder is already served, so starting is instant and selects that server.
    assert any("is serving at" in s.value for s in at.success)
    assert at.session_state["chat_endpoint"] == tuned.id and "chat_model_dir" not in at.session_state
