"""The legal API: a small HTTP layer over one model endpoint, for the firm's own tools.

Routes and schemas follow the reference legal layer (``GET /health``, ``POST /v1/legal/analyze``,
``POST /v1/legal/chat``, server-sent events ending in ``data: [DONE]``), and fix its weaknesses:

- **Auth**: every ``/v1/`` route needs ``Authorization: Bearer $LEGALFT_API_TOKEN``. Running without
  a token takes an explicit ``--no-auth`` and is refused on anything but a loopback address.
- **CORS**: only the origins listed in ``LEGALFT_API_CORS_ORIGINS`` (comma-separated; none by
  default, so browsers on other sites cannot call it at all).
- **Streaming clean-up**: when a client disconnects mid-answer, the upstream stream to the model
  server is closed at once, so the server stops generating for nobody.
- **Nothing leaks, nothing fails open**: non-finite numbers are a 422, bodies over
  ``max_body_bytes`` a 413 (read no further), error bodies name the field and the rule but never
  echo the input, upstream failures never name the model server's host or paths, the OpenAPI docs
  are off (or behind the token with ``docs=True``), the access log drops query strings (a token
  pasted into a URL is not written down), and an optional per-token rate limit answers 429.

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
from fastapi.exceptions import RequestValidationError
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
#: Largest request body, in bytes: a longest query with a longest system prompt fits many times over.
MAX_BODY_BYTES = 1_048_576
RATE_LIMIT_ENV = "LEGALFT_API_RATE_LIMIT"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ApiConfigError(Exception):
    """The API cannot start as configured; the message says what to set."""


# --- schemas --------------------------------------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


# ``allow_inf_nan=False``: Python's JSON reader accepts NaN and Infinity, which must be a 422, not a 500.
_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class Message(BaseModel):
    model_config = _STRICT

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=MAX_TEXT_CHARS)


class AnalyzeRequest(BaseModel):
    """One legal question."""

    model_config = _STRICT

    query: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0, allow_inf_nan=False)
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

    model_config = _STRICT

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(DEFAULT_TEMPERATURE, ge=0.0, le=2.0, allow_inf_nan=False)
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
    max_body_bytes: int = MAX_BODY_BYTES
    """Larger request bodies are refused with 413 before they are read in full."""
    docs: bool = False
    """Serve the OpenAPI schema and docs at ``/v1/openapi.json`` and ``/v1/docs`` (behind the token)."""
    rate_limit: str | None = None
    """Per-token limit such as ``60/minute`` (``LEGALFT_API_RATE_LIMIT``); none by default."""

    def __post_init__(self) -> None:
        if self.require_auth:
            if not self.token:
                raise ApiConfigError(
                    f"no API token: set {TOKEN_ENV} (e.g. export {TOKEN_ENV}=$(python3 -c 'import secrets; "
                    "print(secrets.token_urlsafe(32))')), or start with --no-auth on localhost")
            if len(self.token) < MIN_TOKEN_CHARS:
                raise ApiConfigError(f"{TOKEN_ENV} is too short to be a secret; use at least {MIN_TOKEN_CHARS} "
                                     "random characters")
        if self.max_body_bytes < 1024:
            raise ApiConfigError(f"max_body_bytes must be at least 1024, not {self.max_body_bytes}")
        if self.rate_limit:
            from limits import parse

            try:
                parse(self.rate_limit)
            except ValueError:
                raise ApiConfigError(f"{RATE_LIMIT_ENV}: {self.rate_limit!r} is not a rate; write e.g. 60/minute "
                                     "or 1000/hour") from None

    def __repr__(self) -> str:  # never the token
        return (f"ApiSettings(require_auth={self.require_auth}, cors_origins={self.cors_origins}, "
                f"token={'set' if self.token else 'unset'}, docs={self.docs}, rate_limit={self.rate_limit!r})")

    @classmethod
    def from_env(cls, *, no_auth: bool = False, host: str = "127.0.0.1", **fields: Any) -> "ApiSettings":
        """Token and origins from the environment; ``no_auth`` is refused off loopback."""
        if no_auth and not is_loopback(host):
            raise ApiConfigError(f"--no-auth is only allowed on a loopback address (127.0.0.1), not {host}; "
                                 f"set {TOKEN_ENV} to serve other machines")
        token = os.environ.get(TOKEN_ENV, "").strip() or None
        fields.setdefault("rate_limit", os.environ.get(RATE_LIMIT_ENV, "").strip() or None)
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


class BodyLimit:
    """ASGI middleware: a body over ``limit`` bytes is a 413, by its Content-Length or once it has
    streamed that far; the rest is never read, and the reply is short whatever was sent."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen = 0
        started = refused = False

        async def counted_receive():
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Answer now and tell the app the client left: it stops reading, and whatever it
                    # would send after is dropped (FastAPI turns an exception here into a 400).
                    refused = True
                    if not started:
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message):
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted_receive, tracked_send)

    async def _refuse(self, scope, receive, send):
        response = JSONResponse({"detail": f"request body too large: at most {self.limit} bytes"},
                                status_code=413, headers={"Connection": "close"})
        await response(scope, receive, send)


class RateLimit:
    """ASGI middleware: at most ``rate`` requests per token (``limits``' moving window, in memory)
    on ``/v1/``; over it, 429 with ``Retry-After``. Runs after the token check, so only valid
    tokens are counted, each under a hash of itself."""

    def __init__(self, app, rate: str):
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.app = app
        self.rate = parse(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            import hashlib

            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            key = hashlib.sha256(header).hexdigest()[:16]
            if not self.limiter.hit(self.rate, "legal-api", key):
                reset, _ = self.limiter.get_window_stats(self.rate, "legal-api", key)
                import time

                retry = max(1, int(reset - time.time()) + 1)
                response = JSONResponse({"detail": f"rate limit reached ({self.rate}); try again in {retry} s"},
                                        status_code=429, headers={"Retry-After": str(retry)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


#: The most validation errors one reply lists, and the longest field name it repeats.
MAX_REPORTED_ERRORS = 10
MAX_LOC_CHARS = 64


def validation_errors(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's errors without the input or its context: field, rule, kind; never what was sent
    (a 10 MB body must not come back, and NaN cannot be written as JSON)."""
    safe = []
    for item in errors[:MAX_REPORTED_ERRORS]:
        loc = [part if isinstance(part, int) else str(part)[:MAX_LOC_CHARS] for part in item.get("loc") or ()]
        safe.append({"loc": loc, "msg": str(item.get("msg", "invalid"))[:200], "type": str(item.get("type", ""))})
    if len(errors) > MAX_REPORTED_ERRORS:
        safe.append({"loc": [], "msg": f"and {len(errors) - MAX_REPORTED_ERRORS} more", "type": "truncated"})
    return safe


#: What callers are told for each upstream failure: never the server's URL, host, port or paths
#: (those go to the API's own log).
PUBLIC_UPSTREAM_ERRORS = {
    "network": "the model server is not running or cannot be reached; try again later",
    "timeout": "the model server did not answer in time; try again, or ask for fewer tokens",
    "rate_limit": "the model server is busy (rate limited); try again shortly",
    "bad_request": "the model server refused the request (too long for the model, or a setting it does not accept)",
}
PUBLIC_UPSTREAM_DEFAULT = "the model server failed to answer; the API's log has the details"


def public_error(exc: ServiceError) -> str:
    return PUBLIC_UPSTREAM_ERRORS.get(exc.kind, PUBLIC_UPSTREAM_DEFAULT)


_HTTP_STATUS = {"network": 503, "timeout": 504, "rate_limit": 429, "no_key": 502, "auth": 502,
                "not_found": 502, "server": 502, "bad_request": 400}


def _http_error(exc: ServiceError) -> HTTPException:
    log.warning("model server error (%s): %s", exc.kind, exc)
    return HTTPException(status_code=_HTTP_STATUS.get(exc.kind, 502), detail=public_error(exc))


def _sse(data: Any) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


def public_model_name(endpoint: Endpoint) -> str:
    """What responses call the model: the served name (a local server's is a path, so its endpoint name)."""
    return endpoint.name if endpoint.kind == "local" else endpoint.model


def create_app(endpoint: Endpoint, settings: ApiSettings | None = None) -> FastAPI:
    """The legal API over ``endpoint``. ``app.state.streams`` counts streams started, completed, cut short."""
    settings = settings or ApiSettings.from_env()
    model_name = public_model_name(endpoint)
    docs = {"openapi_url": "/v1/openapi.json", "docs_url": "/v1/docs", "redoc_url": None} if settings.docs else \
        {"openapi_url": None, "docs_url": None, "redoc_url": None}
    app = FastAPI(title="legalft legal API", version="1",
                  description="Questions on UK legislation, answered by a fine-tuned model.", **docs)
    app.state.endpoint = endpoint
    app.state.settings = settings
    app.state.streams = {"started": 0, "completed": 0, "disconnected": 0, "failed": 0}

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        return JSONResponse({"detail": validation_errors(list(exc.errors()))}, status_code=422)

    # Middleware added later wraps what came before: CORS, then the token, then the rate, then the size.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.rate_limit:
        app.add_middleware(RateLimit, rate=settings.rate_limit)
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
            log.warning("model server error mid-stream (%s): %s", exc.kind, exc)
            yield f"event: error\n{_sse({'error': public_error(exc), 'kind': exc.kind})}"
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
            no_auth: bool = False, log_level: str = "info", docs: bool = False, rate_limit: str | None = None,
            max_body_bytes: int | None = None) -> None:
    """Serve the legal API with uvicorn until interrupted."""
    import uvicorn

    fields: dict[str, Any] = {"docs": docs}
    if rate_limit:
        fields["rate_limit"] = rate_limit
    if max_body_bytes:
        fields["max_body_bytes"] = max_body_bytes
    settings = ApiSettings.from_env(no_auth=no_auth, host=host, **fields)
    endpoint = resolve_endpoint(endpoint_ref)
    app = create_app(endpoint, settings)
    log.info("legal API on http://%s:%d over %s (%s); auth %s; CORS origins: %s", host, port, endpoint.name,
             endpoint.base_url, "on" if settings.require_auth else "OFF (localhost only)",
             ", ".join(settings.cors_origins) or "none")
    uvicorn.run(app, host=host, port=port, log_level=log_level, log_config=log_config(), server_header=False)


class RedactQuery(logging.Filter):
    """Drops the query string from uvicorn's access lines: a token pasted into a URL is not written down."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0] + "?[redacted]", *args[3:])
        return True


def log_config() -> dict[str, Any]:
    """uvicorn's own logging setup with ``RedactQuery`` on the access log."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_query"] = {"()": RedactQuery}
    config["handlers"]["access"]["filters"] = ["redact_query"]
    return config
