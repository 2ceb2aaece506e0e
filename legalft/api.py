"""The legal API: a small HTTP layer over one model endpoint, for the firm's own tools.

Routes and schemas follow the reference legal layer (``GET /health``, ``POST /v1/legal/analyze``,
``POST /v1/legal/chat``, server-sent events ending in ``data: [DONE]``), and fix its weaknesses:

- **Auth**: every ``/v1/`` route needs ``Authorization: Bearer $LEGALFT_API_TOKEN``. Running without
  a token takes an explicit ``--no-auth`` and is refused on anything but a loopback address.
- **CORS**: only the origins listed in ``LEGALFT_API_CORS_ORIGINS`` (comma-separated; none by
  default, so browsers on other sites cannot call it at all).
- **Streaming clean-up**: when a client disconnects mid-answer, the upstream stream to the model
  server is closed at once, so the server stops generating for nobody.

Run it with ``legalft api --endpoint ID --port 8000``; ``create_app`` builds the app for tests and
for embedding.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal

from fastapi import FastAPI, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from legalft.chat import (
    DEFAULT_MAX_TOKENS,
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TEMPERATURE,
    MAX_TOKENS_LIMIT,
    ChatReply,
    ChatSettings,
    StreamEnd,
    achat,
    astream_chat,
    resolve_endpoint,
)
from legalft.endpoints import Endpoint
from legalft.errors import ServiceError
from legalft.serve import check_health

log = logging.getLogger(__name__)

TOKEN_ENV = "LEGALFT_API_TOKEN"
CORS_ENV = "LEGALFT_API_CORS_ORIGINS"
DONE_MARKER = "[DONE]"
MIN_TOKEN_CHARS = 16
#: Longest query, system prompt or message accepted, in characters (a long Act section fits).
MAX_TEXT_CHARS = 32_000
MAX_MESSAGES = 100
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ApiConfigError(Exception):
    """The API cannot start as configured; the message says what to set."""


# --- schemas --------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_TEXT_CHARS)


class AnalyzeRequest(BaseModel):
    """One legal question."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    system_prompt: str | None = Field(None, max_length=MAX_TEXT_CHARS)
    stream: bool = False

    @field_validator("query")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is blank")
        return value.strip()


class ChatRequest(BaseModel):
    """A conversation; the last message is the user's question."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0)
    stream: bool = False

    @model_validator(mode="after")
    def _ends_with_user(self) -> "ChatRequest":
        if self.messages[-1].role != "user" or not self.messages[-1].content.strip():
            raise ValueError("the last message must be the user's question, with content")
        return self


class AnalyzeResponse(BaseModel):
    answer: str
    model: str
    usage: Usage


class ChatResponse(BaseModel):
    message: Message
    model: str
    usage: Usage


# --- settings -------------------------------------------------------------------------------------


def parse_origins(text: str | None) -> tuple[str, ...]:
    """``LEGALFT_API_CORS_ORIGINS``: comma-separated ``scheme://host[:port]``; a trailing slash is dropped."""
    origins = []
    for item in (text or "").split(","):
        origin = item.strip().rstrip("/")
        if not origin:
            continue
        if origin == "*":
            raise ApiConfigError(f"{CORS_ENV} must list origins, not '*': any web page could then call the "
                                 "API from a user's browser; e.g. https://intranet.example.co.uk")
        scheme, sep, rest = origin.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
            raise ApiConfigError(f"{CORS_ENV}: {origin!r} is not an origin; write scheme://host[:port], "
                                 "e.g. https://intranet.example.co.uk")
        origins.append(origin)
    return tuple(origins)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class ApiSettings:
    """How the legal API guards itself and what it sends upstream."""

    token: str | None = None
    """The bearer token clients must send (from ``LEGALFT_API_TOKEN``); never logged."""
    require_auth: bool = True
    """Off only with ``--no-auth`` on a loopback address."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins allowed to call the API; none by default."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """Used when a request brings none."""
    timeout: float = 120.0
    """Seconds to wait for the model server (per request, or per piece when streaming)."""
    clean_answers: bool = True
    """Strip an echoed question or system prompt from answers."""

    def __post_init__(self) -> None:
        if self.require_auth:
            if not self.token:
                raise ApiConfigError(
                    f"no API token: set {TOKEN_ENV} (e.g. export {TOKEN_ENV}=$(python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')), or start with --no-auth on localhost")
            if len(self.token) < MIN_TOKEN_CHARS:
                raise ApiConfigError(f"{TOKEN_ENV} is too short to be a secret; use at least {MIN_TOKEN_CHARS} "
                                     "random characters")

    def __repr__(self) -> str:  # never the token
        return (f"ApiSettings(require_auth={self.require_auth}, cors_origins={self.cors_origins}, "
                f"token={'set' if self.token else 'unset'})")

    @classmethod
    def from_env(cls, *, no_auth: bool = False, host: str = "127.0.0.1", **fields: Any) -> "ApiSettings":
        """Token and origins from the environment; ``no_auth`` is refused off loopback."""
        if no_auth and not is_loopback(host):
            raise ApiConfigError(f"--no-auth is only allowed on a loopback address (127.0.0.1), not {host}; "
                                 f"set {TOKEN_ENV} to serve other machines")
        token = os.environ.get(TOKEN_ENV, "").strip() or None
        return cls(token=None if no_auth else token, require_auth=not no_auth,
                   cors_origins=parse_origins(os.environ.get(CORS_ENV)), **fields)


# --- the app --------------------------------------------------------------------------------------


class BearerAuth:
    """ASGI middleware: ``/v1/`` needs the bearer token, checked before the body is even read."""

    def __init__(self, app, token: str):
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            scheme, _, supplied = header.partition(b" ")
            if scheme.lower() != b"bearer" or not secrets.compare_digest(supplied.strip(), self._token):
                response = JSONResponse(
                    {"detail": f"missing or wrong bearer token; send 'Authorization: Bearer <{TOKEN_ENV}>'"},
                    status_code=401, headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_HTTP_STATUS = {"network": 503, "timeout": 504, "rate_limit": 429, "no_key": 502, "auth": 502,
                "not_found": 502, "server": 502, "bad_request": 400}


def _http_error(exc: ServiceError) -> HTTPException:
    return HTTPException(status_code=_HTTP_STATUS.get(exc.kind, 502), detail=str(exc))


def _sse(data: Any) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def public_model_name(endpoint: Endpoint) -> str:
    """What responses call the model: the served name (a local server's is a path, so its endpoint name)."""
    return endpoint.name if endpoint.kind == "local" else endpoint.model


def create_app(endpoint: Endpoint, settings: ApiSettings | None = None) -> FastAPI:
    """The legal API over ``endpoint``. ``app.state.streams`` counts streams started, completed, cut short."""
    settings = settings or ApiSettings.from_env()
    model_name = public_model_name(endpoint)
    app = FastAPI(title="legalft legal API", version="1",
                  description="Questions on UK legislation, answered by a fine-tuned model.")
    app.state.endpoint = endpoint
    app.state.settings = settings
    app.state.streams = {"started": 0, "completed": 0, "disconnected": 0, "failed": 0}

    if settings.require_auth:
        app.add_middleware(BearerAuth, token=settings.token)
    if settings.cors_origins:
        # Added last, so it is outermost: preflights are answered before auth, and 401s carry CORS headers.
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])

    def current_endpoint() -> Endpoint:
        # Re-read, so a server restarted on another port, or stopped, is seen as it is now.
        try:
            return resolve_endpoint(str(endpoint.id))
        except ServiceError:
            return endpoint

    @app.get("/health")
    async def health():
        report = await run_in_threadpool(lambda: check_health(current_endpoint(), 3.0))
        if not report.ok:
            # The full report (log tail, paths) goes to the operator's log, not to callers.
            log.warning("model server %s is %s: %s", endpoint.name, report.status, report.detail)
        detail = "ok" if report.ok else {"stopped": "the model server was stopped", "failed": "the model server "
                                         "has exited", "starting": "the model server is starting"}.get(
                                             report.status, "the model server does not answer")
        body = {"status": "ok" if report.ok else "unavailable", "model": model_name, "detail": detail}
        return JSONResponse(body, status_code=200 if report.ok else 503)

    def reply_settings(max_tokens: int, temperature: float) -> ChatSettings:
        return ChatSettings(max_tokens=max_tokens, temperature=temperature)

    async def answer(messages: list[dict[str, str]], chat_settings: ChatSettings) -> ChatReply:
        try:
            return await achat(current_endpoint(), messages, settings=chat_settings, clean=settings.clean_answers,
                               timeout=settings.timeout)
        except ServiceError as exc:
            raise _http_error(exc) from None

    async def stream(messages: list[dict[str, str]], chat_settings: ChatSettings) -> StreamingResponse:
        pieces = astream_chat(current_endpoint(), messages, settings=chat_settings, clean=settings.clean_answers,
                              timeout=settings.timeout)
        # Wait for the first piece here, so a model server that is down is a plain 503, not a 200
        # whose stream carries an error.
        try:
            first = await pieces.__anext__()
        except ServiceError as exc:
            raise _http_error(exc) from None
        except StopAsyncIteration:
            first = None
        app.state.streams["started"] += 1
        return StreamingResponse(_events(first, pieces), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _events(first, pieces: AsyncIterator) -> AsyncIterator[str]:
        sent = 0
        finished = False
        try:
            item = first
            while item is not None:
                if isinstance(item, StreamEnd):
                    reply = item.reply
                    yield _sse({"done": True, "model": model_name, "usage": reply.usage,
                                "finish_reason": reply.finish_reason})
                    break
                sent += 1
                yield _sse({"delta": item})
                try:
                    item = await pieces.__anext__()
                except StopAsyncIteration:
                    item = None
            yield _sse(DONE_MARKER)
            finished = True
            app.state.streams["completed"] += 1
        except ServiceError as exc:
            app.state.streams["failed"] += 1
            yield f"event: error\n{_sse({'error': str(exc), 'kind': exc.kind})}"
            yield _sse(DONE_MARKER)
            finished = True
        finally:
            if not finished:
                app.state.streams["disconnected"] += 1
                log.info("client left after %d pieces; closing the upstream stream", sent)
            await _close(pieces)

    @app.post("/v1/legal/analyze", response_model=AnalyzeResponse)
    async def analyze(request: AnalyzeRequest):
        system = request.system_prompt if request.system_prompt and request.system_prompt.strip() else settings.system_prompt
        messages = [{"role": "system", "content": system}, {"role": "user", "content": request.query}]
        chat_settings = reply_settings(request.max_tokens, request.temperature)
        if request.stream:
            return await stream(messages, chat_settings)
        reply = await answer(messages, chat_settings)
        return AnalyzeResponse(answer=reply.text, model=model_name, usage=Usage(**reply.usage))

    @app.post("/v1/legal/chat", response_model=ChatResponse)
    async def chat(request: ChatRequest):
        messages = [m.model_dump() for m in request.messages]
        if not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": settings.system_prompt})
        chat_settings = reply_settings(request.max_tokens, request.temperature)
        if request.stream:
            return await stream(messages, chat_settings)
        reply = await answer(messages, chat_settings)
        return ChatResponse(message=Message(role="assistant", content=reply.text), model=model_name,
                            usage=Usage(**reply.usage))

    return app


async def _close(pieces) -> None:
    """Close the upstream stream even while this task is being cancelled (client disconnect)."""
    import anyio

    with anyio.CancelScope(shield=True):
        try:
            await pieces.aclose()
        except (ServiceError, asyncio.CancelledError, RuntimeError) as exc:
            log.debug("closing the upstream stream: %s", exc)


def run_api(endpoint_ref: str | int | Endpoint, *, host: str = "127.0.0.1", port: int = 8000,
            no_auth: bool = False, log_level: str = "info") -> None:
    """Serve the legal API with uvicorn until interrupted."""
    import uvicorn

    settings = ApiSettings.from_env(no_auth=no_auth, host=host)
    endpoint = resolve_endpoint(endpoint_ref)
    app = create_app(endpoint, settings)
    log.info("legal API on http://%s:%d over %s (%s); auth %s; CORS origins: %s", host, port, endpoint.name,
             endpoint.base_url, "on" if settings.require_auth else "OFF (localhost only)",
             ", ".join(settings.cors_origins) or "none")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
