"""One OpenAI-compatible chat client for every endpoint: vLLM, a local server, Nebius Token Factory.

Only the base URL and the key differ between them. The base URL and model come from the endpoints
table (``legalft.endpoints``); the key comes from the environment variable named for the endpoint's
kind (``NEBIUS_API_KEY`` for Token Factory, ``VLLM_API_KEY`` for a vLLM started with ``--api-key``,
none for a local server) and is never stored. The ``openai`` SDK is imported inside the functions,
so the app and the CLI start without it.

``chat`` returns a whole answer; ``stream_chat`` (sync, for the Chat page and the CLI) and
``astream_chat`` (async, for the legal API) yield it piece by piece and close the upstream HTTP
response when the caller stops early, so a model server stops generating for a client that left.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator

from legalft.endpoints import Endpoint, list_endpoints
from legalft.errors import ServiceError, server_error_message
from legalft.secrets import resolve_secret

if TYPE_CHECKING:  # imported lazily: the app and CLI start without the SDK
    import openai

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a legal assistant specialised in UK legislation. Answer the question directly and "
    "concisely. Do not repeat the question or these instructions. Cite the Act and section numbers "
    "that support your answer where relevant, and say so when the legislation does not cover the question."
)
DEFAULT_TEMPERATURE = 0.3
DEFAULT_MAX_TOKENS = 1024
DEFAULT_FREQUENCY_PENALTY = 0.35
DEFAULT_PRESENCE_PENALTY = 0.15
MAX_TOKENS_LIMIT = 4096
TEMPERATURE_RANGE = (0.0, 2.0)

#: The environment variable that holds each kind's key (``None``: the server takes no key).
KEY_ENVS: dict[str, str | None] = {"token_factory": "NEBIUS_API_KEY", "vllm": "VLLM_API_KEY", "local": None}
#: What the SDK sends when a server takes no key (it insists on one; vLLM's docs use the same word).
NO_KEY = "EMPTY"


@dataclass
class ChatSettings:
    """Sampling settings of one request; the defaults are the reference legal layer's."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    """Most tokens the answer may have (1 to 4096)."""
    temperature: float = DEFAULT_TEMPERATURE
    """Sampling temperature (0 to 2); low keeps legal answers close to the text."""
    frequency_penalty: float = DEFAULT_FREQUENCY_PENALTY
    """Penalises repeating the same tokens, which small fine-tuned models are prone to."""
    presence_penalty: float = DEFAULT_PRESENCE_PENALTY
    """Penalises tokens already present; a local ``transformers serve`` ignores it."""

    def __post_init__(self) -> None:
        if not 1 <= int(self.max_tokens) <= MAX_TOKENS_LIMIT:
            raise ValueError(f"max_tokens must be between 1 and {MAX_TOKENS_LIMIT}, not {self.max_tokens}")
        low, high = TEMPERATURE_RANGE
        if not low <= float(self.temperature) <= high:
            raise ValueError(f"temperature must be between {low:g} and {high:g}, not {self.temperature}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2.0 <= float(getattr(self, name)) <= 2.0:
                raise ValueError(f"{name} must be between -2 and 2, not {getattr(self, name)}")

    def request_fields(self) -> dict[str, Any]:
        return {"max_tokens": int(self.max_tokens), "temperature": float(self.temperature),
                "frequency_penalty": float(self.frequency_penalty), "presence_penalty": float(self.presence_penalty)}


@dataclass
class ChatReply:
    """One answer: its text (echo stripped when asked), the model that wrote it, token usage, timing."""

    text: str
    model: str
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    seconds: float = 0.0
    raw_text: str | None = None
    """The text as the server sent it, before echo stripping (None when nothing was stripped)."""


# --- endpoints and keys ---------------------------------------------------------------------------


def resolve_endpoint(ref: str | int | Endpoint) -> Endpoint:
    """An endpoint by id, name or model name (as ``legalft serve list`` shows them)."""
    if isinstance(ref, Endpoint):
        return ref
    text = str(ref).strip()
    endpoints = list_endpoints()
    if text.isdigit():
        match = [e for e in endpoints if e.id == int(text)]
    else:
        match = [e for e in endpoints if e.name == text] or [e for e in endpoints if e.model == text]
    if not match:
        known = ", ".join(f"{e.id} ({e.name})" for e in endpoints) or "none yet"
        raise ServiceError.of("not_found", f"no endpoint {text!r}; known endpoints: {known}. Start a local one with "
                        "`legalft serve start smoke`, or deploy one with `legalft tf deploy`")
    if len(match) > 1:
        ids = ", ".join(str(e.id) for e in match)
        raise ServiceError.of("bad_request", f"{text!r} names several endpoints ({ids}); use the id instead")
    return match[0]


def key_env_for(endpoint: Endpoint) -> str | None:
    """The environment variable holding the endpoint's key: ``details["key_env"]``, else the kind's."""
    return endpoint.details.get("key_env") or KEY_ENVS.get(endpoint.kind)


def api_key_for(endpoint: Endpoint) -> str:
    """The key to send; ``EMPTY`` for servers that take none. Never logged, never stored."""
    env = key_env_for(endpoint)
    key = (resolve_secret(env)[0] or "") if env else ""  # the environment, then Streamlit secrets
    if not key and endpoint.kind == "token_factory":
        raise ServiceError.of("no_key", f"no key for {endpoint.name}: set {env} in the environment (or in "
                              ".streamlit/secrets.toml)")
    return key or NO_KEY


def _client_options(endpoint: Endpoint, timeout: float) -> dict[str, Any]:
    # A local server is either up or not: retrying a refused connection only delays the message.
    retries = 2 if endpoint.kind == "token_factory" else 0
    return {"api_key": api_key_for(endpoint), "base_url": endpoint.base_url, "timeout": timeout,
            "max_retries": retries}


def make_client(endpoint: Endpoint, *, timeout: float = 120.0) -> "openai.OpenAI":
    """The openai SDK client for an endpoint (sync)."""
    import openai

    return openai.OpenAI(**_client_options(endpoint, timeout))


def make_async_client(endpoint: Endpoint, *, timeout: float = 120.0) -> "openai.AsyncOpenAI":
    """The openai SDK client for an endpoint (async), for the legal API."""
    import openai

    return openai.AsyncOpenAI(**_client_options(endpoint, timeout))


def build_messages(question: str, system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
                   history: list[dict[str, str]] | None = None) -> list[dict[str, str]]:
    """System prompt (when given), earlier turns, then the question as the user's turn."""
    if not question or not question.strip():
        raise ValueError("the question is empty")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt and system_prompt.strip() else []
    messages += [{"role": m["role"], "content": m["content"]} for m in history or [] if m.get("role") != "system"]
    return messages + [{"role": "user", "content": question}]


def _echo_sources(messages: list[dict[str, str]]) -> tuple[str, str | None]:
    """The last user turn and the system prompt: what a weak model tends to echo."""
    question = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    system = next((m["content"] for m in messages if m.get("role") == "system"), None)
    return question, system


def _error(endpoint: Endpoint, exc: Exception) -> ServiceError:
    """A plain message for an SDK error; keys never appear (the SDK does not echo them)."""
    import openai

    where = f"{endpoint.name} ({endpoint.base_url})"
    if isinstance(exc, openai.APITimeoutError):
        return ServiceError.of("timeout", f"{where} did not answer in time; try fewer max tokens, or check the server's log")
    if isinstance(exc, openai.APIConnectionError):
        hint = ("start it with `legalft serve start` or check `legalft serve list`"
                if endpoint.kind in ("local", "vllm") else "check the network connection")
        return ServiceError.of("network", f"cannot reach {where}: the model server is not running or not reachable; {hint}")
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = server_error_message(exc)
        if status in (401, 403):
            env = key_env_for(endpoint)
            return ServiceError.of("auth", f"{where} rejected the key (HTTP {status}); check {env or 'the key'}",
                             status_code=status)
        if status == 404:
            return ServiceError.of("not_found", f"{where} does not serve model {endpoint.model!r} (HTTP 404): {detail}", status_code=status)
        if status == 429:
            return ServiceError.of("rate_limit", f"{where} is rate limiting requests (HTTP 429); wait a minute and try again", status_code=status)
        if status >= 500:
            return ServiceError.of("server", f"{where} failed (HTTP {status}): {detail}; see the server's log",
                             status_code=status)
        return ServiceError.of("bad_request", f"{where} refused the request (HTTP {status}): {detail}",
                         status_code=status)
    return ServiceError.of("server", f"{where}: {exc}")


def _usage(usage: Any) -> dict[str, int]:
    if not usage:
        return {}
    data = usage.model_dump() if hasattr(usage, "model_dump") else dict(usage)
    return {k: int(data[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
            if isinstance(data.get(k), int)}


def _request(endpoint: Endpoint, messages: list[dict[str, str]], settings: ChatSettings, stream: bool
             ) -> dict[str, Any]:
    if not messages:
        raise ValueError("a chat request needs at least one message")
    request = {"model": endpoint.model, "messages": messages, "stream": stream, **settings.request_fields()}
    if stream and endpoint.kind != "local":
        # Usage comes in a last chunk only when asked (vLLM, the managed API); transformers serve
        # always sends it and logs a warning for this field, so it is not sent there.
        request["stream_options"] = {"include_usage": True}
    return request


def _settings(settings: ChatSettings | None, overrides: dict[str, Any]) -> ChatSettings:
    base = settings or ChatSettings()
    values = {**base.__dict__, **{k: v for k, v in overrides.items() if v is not None}}
    return ChatSettings(**values)


# --- requests -------------------------------------------------------------------------------------


def chat(
    endpoint: Endpoint | str | int,
    messages: list[dict[str, str]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    settings: ChatSettings | None = None,
    stream: bool = False,
    clean: bool = True,
    timeout: float = 120.0,
) -> ChatReply:
    """Send ``messages`` to an endpoint and return the whole answer with its usage.

    With ``stream`` the answer is read as a stream (the same text; useful to bound a slow server
    by ``timeout`` per piece rather than per answer). With ``clean`` an echoed question or system
    prompt is stripped from the start of the answer.
    """
    endpoint = resolve_endpoint(endpoint)
    settings = _settings(settings, {"max_tokens": max_tokens, "temperature": temperature,
                                    "frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty})
    if stream:
        with stream_chat(endpoint, messages, settings=settings, clean=clean, timeout=timeout) as pieces:
            for _ in pieces:
                pass
        return pieces.reply
    import openai

    started = time.monotonic()
    client = make_client(endpoint, timeout=timeout)
    try:
        completion = client.chat.completions.create(**_request(endpoint, messages, settings, stream=False))
    except openai.OpenAIError as exc:
        raise _error(endpoint, exc) from None
    finally:
        client.close()
    choice = completion.choices[0] if completion.choices else None
    raw = (choice.message.content if choice else None) or ""
    question, system = _echo_sources(messages)
    text = clean_answer(raw, question, system) if clean else raw
    return ChatReply(text=text, model=completion.model or endpoint.model, usage=_usage(completion.usage),
                     finish_reason=choice.finish_reason if choice else None,
                     seconds=time.monotonic() - started, raw_text=raw if text != raw else None)


class _Accumulator:
    """Folds streamed chunks into text pieces (echo-filtered), usage, model and finish reason.

    Shared by the sync and async streams, so both build the same ``ChatReply``.
    """

    def __init__(self, endpoint: Endpoint, messages: list[dict[str, str]], clean: bool) -> None:
        question, system = _echo_sources(messages)
        self.echo = EchoFilter(question, system) if clean else None
        self.parts: list[str] = []
        self.emitted: list[str] = []
        self.usage: dict[str, int] = {}
        self.model, self.finish = endpoint.model, None
        self.started = time.monotonic()

    def add(self, chunk) -> str:
        """The text to show for this chunk ('' when none)."""
        self.model = chunk.model or self.model
        self.usage = _usage(getattr(chunk, "usage", None)) or self.usage
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        self.finish = choice.finish_reason or self.finish
        piece = choice.delta.content if choice.delta else None
        if not piece:
            return ""
        self.parts.append(piece)
        out = self.echo.feed(piece) if self.echo else piece
        if out:
            self.emitted.append(out)
        return out or ""

    def finish_text(self) -> str:
        """What the echo filter still held back, once the stream has ended."""
        tail = self.echo.finish() if self.echo else ""
        if tail:
            self.emitted.append(tail)
        return tail

    def reply(self) -> ChatReply:
        raw, text = "".join(self.parts), "".join(self.emitted)
        return ChatReply(text=text, model=self.model, usage=self.usage, finish_reason=self.finish,
                         seconds=time.monotonic() - self.started, raw_text=raw if raw != text else None)


class ChatStream:
    """The pieces of one streamed answer; ``reply`` holds the whole answer once the stream ends.

    Iterate it (``st.write_stream`` accepts it), or use it as a context manager: leaving the block
    early, or calling ``close()``, closes the upstream HTTP response so the server stops generating.
    """

    def __init__(self, endpoint: Endpoint, messages: list[dict[str, str]], settings: ChatSettings,
                 *, clean: bool, timeout: float):
        self.endpoint = endpoint
        self.reply: ChatReply | None = None
        self._messages = messages
        self._settings = settings
        self._clean = clean
        self._timeout = timeout
        self._client = None
        self._stream = None
        self._iterator: Iterator[str] | None = None

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = self._pieces()
        return self._iterator

    def __next__(self) -> str:
        return next(iter(self))

    def __enter__(self) -> "ChatStream":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _pieces(self) -> Iterator[str]:
        import openai

        acc = _Accumulator(self.endpoint, self._messages, self._clean)
        self._client = make_client(self.endpoint, timeout=self._timeout)
        try:
            self._stream = self._client.chat.completions.create(
                **_request(self.endpoint, self._messages, self._settings, stream=True))
            for chunk in self._stream:
                out = acc.add(chunk)
                if out:
                    yield out
            tail = acc.finish_text()
            if tail:
                yield tail
        except openai.OpenAIError as exc:
            raise _error(self.endpoint, exc) from None
        finally:
            self.close()
        self.reply = acc.reply()

    def close(self) -> None:
        """Close the upstream response and the client (idempotent)."""
        stream, client = self._stream, self._client
        self._stream = self._client = None
        if stream is not None:
            stream.close()
        if client is not None:
            client.close()


def stream_chat(
    endpoint: Endpoint | str | int,
    messages: list[dict[str, str]],
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
    frequency_penalty: float | None = None,
    presence_penalty: float | None = None,
    settings: ChatSettings | None = None,
    clean: bool = True,
    timeout: float = 120.0,
) -> ChatStream:
    """Stream an answer: iterate the result for text pieces; its ``reply`` is set at the end.

    Nothing is sent until the first piece is asked for.
    """
    endpoint = resolve_endpoint(endpoint)
    settings = _settings(settings, {"max_tokens": max_tokens, "temperature": temperature,
                                    "frequency_penalty": frequency_penalty, "presence_penalty": presence_penalty})
    if not messages:
        raise ValueError("a chat request needs at least one message")
    return ChatStream(endpoint, messages, settings, clean=clean, timeout=timeout)


@dataclass
class StreamEnd:
    """The last item ``astream_chat`` yields: the whole reply."""

    reply: ChatReply


async def astream_chat(
    endpoint: Endpoint,
    messages: list[dict[str, str]],
    *,
    settings: ChatSettings | None = None,
    clean: bool = True,
    timeout: float = 120.0,
) -> AsyncIterator["str | StreamEnd"]:
    """Async stream for the legal API: text pieces, then one ``StreamEnd``.

    When the consumer stops (``aclose()``, or cancellation on client disconnect) the upstream
    response and its connection are closed before this returns.
    """
    import openai

    settings = settings or ChatSettings()
    acc = _Accumulator(endpoint, messages, clean)
    client = make_async_client(endpoint, timeout=timeout)
    stream = None
    try:
        stream = await client.chat.completions.create(**_request(endpoint, messages, settings, stream=True))
        async for chunk in stream:
            out = acc.add(chunk)
            if out:
                yield out
        tail = acc.finish_text()
        if tail:
            yield tail
    except openai.OpenAIError as exc:
        raise _error(endpoint, exc) from None
    finally:
        import anyio

        # Shielded: on a client disconnect this task is being cancelled, and an unshielded await
        # would be cancelled too, leaving the upstream response open and the server generating.
        with anyio.CancelScope(shield=True):
            if stream is not None:
                await stream.close()
            await client.close()
    yield StreamEnd(acc.reply())


async def achat(endpoint: Endpoint, messages: list[dict[str, str]], *, settings: ChatSettings | None = None,
                clean: bool = True, timeout: float = 120.0) -> ChatReply:
    """The whole answer, async (the legal API's non-streaming routes)."""
    import openai

    settings = settings or ChatSettings()
    started = time.monotonic()
    client = make_async_client(endpoint, timeout=timeout)
    try:
        completion = await client.chat.completions.create(**_request(endpoint, messages, settings, stream=False))
    except openai.OpenAIError as exc:
        raise _error(endpoint, exc) from None
    finally:
        await client.close()
    choice = completion.choices[0] if completion.choices else None
    raw = (choice.message.content if choice else None) or ""
    question, system = _echo_sources(messages)
    text = clean_answer(raw, question, system) if clean else raw
    return ChatReply(text=text, model=completion.model or endpoint.model, usage=_usage(completion.usage),
                     finish_reason=choice.finish_reason if choice else None,
                     seconds=time.monotonic() - started, raw_text=raw if text != raw else None)


# --- echo stripping -------------------------------------------------------------------------------

# Labels a model may put before an echo or before its answer ("Question: ...", "Answer: ...") and
# bare role names on their own line, as chat templates leak them ("assistant\n...").
_LABELS = ("question", "q", "answer", "a", "response", "system", "user", "assistant")
_LABEL_RE = re.compile(r"\s*(?:(?:question|q|answer|a|response|system|user|assistant)\s*:|"
                       r"(?:system|user|assistant)[ \t]*\n)[ \t]*\n?", re.IGNORECASE)
_LEAD_RE = re.compile(r"[\s\"'“”‘’>*]*")


def _normalise(text: str) -> str:
    return " ".join(text.split()).lower()


def _echo_pattern(text: str) -> re.Pattern | None:
    words = text.split()
    if not words:
        return None
    body = r"\s+".join(re.escape(w) for w in words)
    ends_in_punctuation = words[-1][-1] in ".?!:;"
    # An echo must end where a sentence or line ends; otherwise "Hi there" would lose its "Hi"
    # to the question "hi".
    boundary = r"(?:[\"'”’]*(?:\s+|$))" if ends_in_punctuation else r"(?:[\"'”’]*[.?!:;]+[\"'”’]*(?:\s+|$)|[ \t]*\n\s*|\s*$)"
    return re.compile(r"[\s\"'“‘]*" + body + boundary, re.IGNORECASE)


def clean_answer(answer: str, question: str | None, system_prompt: str | None = None) -> str:
    """Strip an echoed system prompt, question or role label from the start of an answer.

    A weak or freshly fine-tuned model often repeats its instructions or the question before
    answering; the reference legal layer strips both, and so does this. Only a complete echo at
    the start is removed, so an answer that merely begins with the same words is kept.
    """
    if not answer:
        return answer
    patterns = [p for p in (_echo_pattern(system_prompt or ""), _echo_pattern(question or "")) if p]
    text = answer
    while True:
        before = text
        label = _LABEL_RE.match(text)
        if label and label.end() > 0:
            text = text[label.end():]
        for pattern in patterns:
            match = pattern.match(text)
            if match:
                text = text[match.end():]
        if text == before:
            break
    return text.lstrip() if text != answer else answer


class EchoFilter:
    """``clean_answer`` for a stream: holds back the start of an answer while it could still be an echo.

    ``feed`` returns what may be shown now; ``finish`` the rest. At most the length of the longest
    echo is held back, and nothing once the answer has clearly started.
    """

    def __init__(self, question: str | None, system_prompt: str | None = None):
        self.question = question or ""
        self.system_prompt = system_prompt or ""
        self._candidates = [c for c in (_normalise(self.system_prompt), _normalise(self.question)) if c]
        self._candidates += [label + ":" for label in _LABELS] + ["system", "user", "assistant"]
        self._buffer = ""
        self._decided = False

    def _could_still_be_echo(self, rest: str) -> bool:
        norm = _normalise(_LEAD_RE.sub("", rest, count=1))
        return not norm or any(c.startswith(norm) for c in self._candidates)

    def feed(self, piece: str) -> str:
        if self._decided:
            return piece
        self._buffer += piece
        rest = clean_answer(self._buffer, self.question, self.system_prompt)
        if self._could_still_be_echo(rest):
            return ""
        self._decided = True
        self._buffer = ""
        return rest

    def finish(self) -> str:
        if self._decided:
            return ""
        self._decided = True
        rest, self._buffer = clean_answer(self._buffer, self.question, self.system_prompt), ""
        return rest
