"""The legal API tried as an attacker would: each way it used to fail open or leak, as a test.

Requests go through FastAPI's TestClient (the whole ASGI stack: middleware, validation, handlers);
the access-log case runs the real ``legalft api`` command under uvicorn and reads what it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from legalft import serve
from legalft.api import MAX_BODY_BYTES, ApiConfigError, ApiSettings, RedactQuery, create_app
from legalft.endpoints import save_endpoint

TOKEN = "s3cret-token-" + "x" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTION = "What does section 1 of the Interpretation Act 1978 say about gender?"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _endpoint(base_url: str, model: str = "/srv/models/client-matter-7731/merged"):
    return save_endpoint(kind="local", name="legal-local", base_url=base_url, model=model, status="active")


def _down_endpoint():
    return _endpoint(f"http://10.0.0.1:{serve.free_port()}/v1".replace("10.0.0.1", "127.0.0.1"))


def _client(endpoint=None, **settings) -> TestClient:
    return TestClient(create_app(endpoint or _down_endpoint(), ApiSettings(**{"token": TOKEN, **settings})))


def _raw_post(client: TestClient, path: str, text: str):
    return client.post(path, content=text.encode(), headers={**AUTH, "Content-Type": "application/json"})


@pytest.mark.parametrize("text, field", [
    ('{"query": "q", "temperature": NaN}', "temperature"),
    ('{"query": "q", "temperature": Infinity}', "temperature"),
    ('{"query": "q", "temperature": -Infinity}', "temperature"),
    ('{"query": "q", "max_tokens": Infinity}', "max_tokens"),
    ('{"query": "q", "max_tokens": NaN}', "max_tokens"),
])
def test_non_finite_numbers_are_a_422_not_a_500(text, field):
    response = _raw_post(_client(), "/v1/legal/analyze", text)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(field in item["loc"] for item in detail)
    assert "NaN" not in response.text and "Infinity" not in response.text and "inf" not in response.text.lower()


def test_non_finite_in_a_chat_request_too():
    text = '{"messages": [{"role": "user", "content": "q"}], "temperature": NaN}'
    assert _raw_post(_client(), "/v1/legal/chat", text).status_code == 422


def test_a_body_over_the_limit_is_a_short_413():
    client = _client()
    big = json.dumps({"query": "a" * (10 * 1024 * 1024)})
    response = _raw_post(client, "/v1/legal/analyze", big)
    assert response.status_code == 413
    assert len(response.content) < 200 and "aaaa" not in response.text
    assert str(MAX_BODY_BYTES) in response.json()["detail"]


def test_a_streamed_body_without_length_is_cut_at_the_limit():
    client = _client(max_body_bytes=4096)

    def chunks():
        yield b'{"query": "'
        for _ in range(100):
            yield b"a" * 1024
        yield b'"}'

    response = client.post("/v1/legal/analyze", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413 and len(response.content) < 200


def test_a_422_never_echoes_the_input():
    client = _client()
    long_query = "privileged-client-detail " * 2000  # 50 000 characters: over the 32 000 limit
    response = client.post("/v1/legal/analyze", json={"query": long_query}, headers=AUTH)
    assert response.status_code == 422
    assert "privileged-client-detail" not in response.text and len(response.content) < 1000
    assert response.json()["detail"][0]["loc"] == ["body", "query"]
    # An unknown field: named (shortened), its value never repeated.
    response = client.post("/v1/legal/analyze", json={"query": "q", "k" * 500: "secret-value"}, headers=AUTH)
    assert response.status_code == 422 and "secret-value" not in response.text and len(response.content) < 1000
    # Many bad messages: at most ten reported, then a count.
    bad = {"messages": [{"role": "robot", "content": "x"} for _ in range(60)] + [{"role": "user", "content": "q"}]}
    detail = client.post("/v1/legal/chat", json=bad, headers=AUTH).json()["detail"]
    assert len(detail) == 11 and detail[-1]["type"] == "truncated"
    # Malformed JSON: said so, the text not repeated.
    response = _raw_post(client, "/v1/legal/analyze", '{"query": "confidential matter", ')
    assert response.status_code == 422 and "confidential" not in response.text


def test_openapi_docs_are_off_by_default_and_behind_the_token_when_on():
    client = _client()
    for path in ("/docs", "/redoc", "/openapi.json", "/v1/docs", "/v1/openapi.json"):
        assert client.get(path).status_code in (401, 404), path
        assert client.get(path, headers=AUTH).status_code == 404, path
    client = _client(docs=True)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 404
    assert client.get("/v1/openapi.json").status_code == 401
    assert client.get("/v1/docs").status_code == 401
    schema = client.get("/v1/openapi.json", headers=AUTH)
    assert schema.status_code == 200 and "/v1/legal/analyze" in schema.json()["paths"]
    assert client.get("/v1/docs", headers=AUTH).status_code == 200


def test_an_unreachable_model_server_is_not_named_to_the_caller():
    endpoint = _down_endpoint()
    port = endpoint.base_url.rsplit(":", 1)[1].split("/")[0]
    client = _client(endpoint)
    for body in ({"query": QUESTION}, {"query": QUESTION, "stream": True}):
        response = client.post("/v1/legal/analyze", json=body, headers=AUTH)
        assert response.status_code == 503
        for secret in ("127.0.0.1", port, "/srv/models", "client-matter", "http://"):
            assert secret not in response.text, secret
        assert "not running" in response.json()["detail"]


class _LeakyServer(BaseHTTPRequestHandler):
    """A model server that fails with internals in its error body (as a crashing server would)."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": {"message": "CUDA OOM in /srv/models/client-matter-7731 on gpu-node-3.internal"}})
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def test_an_upstream_error_body_is_not_passed_on():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LeakyServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = _client(_endpoint(f"http://127.0.0.1:{server.server_port}/v1"))
        response = client.post("/v1/legal/analyze", json={"query": QUESTION}, headers=AUTH)
        assert response.status_code == 502
        for secret in ("gpu-node-3", "/srv/models", "CUDA", str(server.server_port)):
            assert secret not in response.text
        assert response.json()["detail"] == "the model server failed to answer; the API's log has the details"
    finally:
        server.shutdown()
        server.server_close()


def test_the_per_token_rate_limit():
    client = _client(rate_limit="3/minute")
    codes = [client.post("/v1/legal/analyze", json={"query": QUESTION}, headers=AUTH).status_code for _ in range(4)]
    assert codes == [503, 503, 503, 429]
    limited = client.post("/v1/legal/analyze", json={"query": QUESTION}, headers=AUTH)
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 61
    # Wrong tokens are refused by the token check and never spend the allowance; /health is not limited.
    assert client.post("/v1/legal/analyze", json={}, headers={"Authorization": "Bearer " + "w" * 32}).status_code == 401
    assert client.get("/health").status_code == 503
    # Without a limit, no 429.
    free = _client()
    codes = {free.post("/v1/legal/analyze", json={"query": QUESTION}, headers=AUTH).status_code for _ in range(5)}
    assert codes == {503}
    with pytest.raises(ApiConfigError, match="not a rate"):
        ApiSettings(token=TOKEN, rate_limit="lots")


def test_redact_query_filter_keeps_the_path():
    import logging

    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/health?token=abc", "1.1", 200), None)
    RedactQuery().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /health?[redacted] HTTP/1.1" 200'


def _get(url: str, data: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_token_in_the_query_string_never_reaches_the_access_log(tmp_path):
    endpoint = _down_endpoint()
    port = serve.free_port()
    env = {**os.environ, "LEGALFT_API_TOKEN": TOKEN, "PYTHONPATH": ROOT}
    log_path = tmp_path / "api.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "legalft", "api", "--endpoint", str(endpoint.id),
                                 "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{base}/health")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
        _get(f"{base}/health?access_token={TOKEN}")
        _get(f"{base}/v1/legal/analyze?token={TOKEN}", data=b'{"query": "q"}')
        deadline = time.monotonic() + 10
        while log_path.read_text().count("[redacted]") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    text = log_path.read_text()
    assert "GET /health?[redacted]" in text and "POST /v1/legal/analyze?[redacted]" in text
    assert TOKEN not in text
