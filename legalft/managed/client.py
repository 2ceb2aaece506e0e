"""The Token Factory client: the openai SDK pointed at the service, its errors read into plain messages.

The service is OpenAI-compatible under ``/v1`` (files, fine-tuning jobs, events, checkpoints, chat);
custom-model deployment is plain REST under ``/v0`` on the same host, called through the same SDK
client (absolute URLs) so both share its retries, its ``Retry-After`` handling and one error map.
``LEGALFT_TOKEN_FACTORY_URL`` points the client elsewhere (the test stand-in); nothing ever falls
back to another server on its own. The key lives only in the client object.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, urljoin

from legalft.errors import MissingKey, ServiceError, TimedOut, Unreachable, server_error_message
from legalft.jobs import Job
from legalft.secrets import resolve_secret

if TYPE_CHECKING:  # the SDK is imported lazily: the app and CLI start without it
    import openai

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.tokenfactory.nebius.com/v1/"
KEY_ENV = "NEBIUS_API_KEY"
URL_ENV = "LEGALFT_TOKEN_FACTORY_URL"
PATH = "token_factory"  # the jobs table's path and the endpoints table's kind

ProgressCallback = Callable[[str, float | None], None]
"""Called with a message and a fraction in [0, 1] (None when unknown), e.g. during an upload."""


def resolve_api_key() -> tuple[str | None, str | None]:
    """(key, where it came from): ``NEBIUS_API_KEY`` first, then Streamlit secrets; (None, None) if absent."""
    return resolve_secret(KEY_ENV)


def configured_base_url() -> str:
    """The ``/v1`` base URL: ``LEGALFT_TOKEN_FACTORY_URL`` when set, else the public service."""
    url = os.environ.get(URL_ENV, "").strip() or DEFAULT_BASE_URL
    return url if url.endswith("/") else url + "/"


def v0_url(v1_url: str) -> str:
    """The deployment API's base: ``/v0/`` on the same host as ``/v1/``."""
    url = v1_url if v1_url.endswith("/") else v1_url + "/"
    return urljoin(url, "../v0/")


def describe_connection() -> dict[str, Any]:
    """What the app will talk to, for display: base URL, whether it is the public one, the key's source."""
    key, source = resolve_api_key()
    url = configured_base_url()
    return {"base_url": url, "is_default": url == DEFAULT_BASE_URL, "key_source": source, "has_key": bool(key)}


def _redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, "***")
    return text



class _ProgressReader:
    """A binary file that reports how much of it has been read (the SDK streams uploads from it)."""

    def __init__(self, fh, total: int, progress: ProgressCallback, label: str):
        self._fh, self._total, self._progress, self._label = fh, total, progress, label
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self._fh.read(size)
        self._sent += len(chunk)
        fraction = self._sent / self._total if self._total else 1.0
        self._progress(f"uploading {self._label}: {self._sent / 1e6:.1f} of {self._total / 1e6:.1f} MB",
                       min(fraction, 1.0))
        return chunk

    def seekable(self) -> bool:
        # The SDK replays a request body (a retry after a 429 or a 5xx) only when it can seek back.
        return self._fh.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._fh.seek(offset, whence)
        self._sent = position  # a retried upload starts again from the top
        return position

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()


class TokenFactoryClient:
    """The openai SDK pointed at Token Factory, with the service's errors turned into plain messages.

    Methods return plain dicts (``model_dump()`` of the SDK's objects), so extra fields the service
    adds (``trained_steps``, ``total_steps``, ``estimated_finish``, ...) are kept.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        max_retries: int = 4,
        timeout: float = 60.0,
    ):
        key = api_key or resolve_api_key()[0]
        if not key:
            raise MissingKey(
                f"no Nebius API key: set {KEY_ENV} in the environment, or add {KEY_ENV} to "
                ".streamlit/secrets.toml; create a key in the Token Factory console")
        self.base_url = base_url or configured_base_url()
        if not self.base_url.endswith("/"):
            self.base_url += "/"
        self.max_retries = max_retries
        self._key = key
        self._timeout = timeout
        self._sdk_client: "openai.OpenAI | None" = None
        if self.base_url != DEFAULT_BASE_URL:
            log.info("Token Factory base URL is %s (set by %s)", self.base_url, URL_ENV)

    def __repr__(self) -> str:  # never the key
        return f"TokenFactoryClient(base_url={self.base_url!r})"

    @property
    def sdk(self) -> "openai.OpenAI":
        if self._sdk_client is None:
            import openai

            self._sdk_client = openai.OpenAI(
                api_key=self._key, base_url=self.base_url, max_retries=self.max_retries, timeout=self._timeout)
        return self._sdk_client

    # --- error mapping ----------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one SDK call (the SDK retries 429, 5xx and timeouts); turn what is left into a plain error."""
        import openai

        try:
            return fn()
        except openai.APIStatusError as exc:
            raise self._status_error(what, exc) from None
        except openai.APITimeoutError:
            raise TimedOut(
                f"{what}: the service did not answer within {self._timeout:g} s, {self.max_retries} retries "
                "included; try again later") from None
        except openai.APIConnectionError as exc:
            host = self.base_url.split("/")[2]
            reason = _redact(str(exc.__cause__ or exc), self._key)
            raise Unreachable(
                f"{what}: cannot reach {host} ({reason}); check the network connection"
                + (f" and {URL_ENV}" if self.base_url != DEFAULT_BASE_URL else "")
                + "; nothing was changed locally") from None

    def _status_error(self, what: str, exc: "openai.APIStatusError") -> ServiceError:
        status = exc.status_code
        detail = _redact(server_error_message(exc), self._key)
        retries = f"after {self.max_retries} retries"
        if status == 401:
            message = (f"{what}: the key was rejected (HTTP 401); check {KEY_ENV}, or create a new key in the "
                       "Token Factory console")
            return ServiceError.of("auth", message, status_code=status)
        if status == 403:
            message = f"{what}: the key is not allowed to do this (HTTP 403): {detail}"
            return ServiceError.of("permission", message, status_code=status)
        if status == 429:
            wait = exc.response.headers.get("retry-after")
            asked = f"; the service asked to wait {wait} s" if wait else ""
            message = f"{what}: rate limited by the service (HTTP 429) {retries}{asked}; wait a minute and try again"
            return ServiceError.of("rate_limit", message, status_code=status)
        if status >= 500:
            message = f"{what}: the service failed (HTTP {status}) {retries}; try again in a few minutes"
            return ServiceError.of("server", message, status_code=status)
        if status == 404:
            return ServiceError.of("not_found", f"{what}: not found (HTTP 404): {detail}", status_code=status)
        if status == 409:
            return ServiceError.of("conflict", f"{what}: conflict (HTTP 409): {detail}", status_code=status)
        if status == 422:  # the service's request validation: one "field: reason" per problem
            fields = _validation_fields(exc.body)
            message = f"{what}: the service refused these fields (HTTP 422): {fields or detail}"
            return ServiceError.of("bad_request", message, status_code=status)
        message = f"{what}: the service refused the request (HTTP {status}): {detail}"
        return ServiceError.of("bad_request", message, status_code=status)

    # --- files and jobs ---------------------------------------------------------------------------

    def upload_file(self, path: str | Path, progress: ProgressCallback | None = None, *,
                    purpose: str = "fine-tune", content_type: str = "application/jsonl") -> dict[str, Any]:
        """Upload a file (JSONL with ``purpose="fine-tune"`` by default), streaming it from disk.

        The stream is seekable, so the SDK retries an upload that meets a 429 or a 5xx like any call.
        """
        path = Path(path)
        total = path.stat().st_size
        with open(path, "rb") as fh:
            stream = _ProgressReader(fh, total, progress, path.name) if progress else fh
            result = self._call(f"uploading {path.name}", lambda: self.sdk.files.create(
                file=(path.name, stream, content_type), purpose=purpose))
        return result.model_dump()

    def download_file(self, file_id: str, dest: str | Path) -> Path:
        """Write a file's content (``GET /v1/files/{id}/content``) to ``dest``, via a temporary name."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        response = self._call(f"downloading file {file_id}", lambda: self.sdk.files.content(file_id))
        response.write_to_file(partial)
        partial.replace(dest)
        return dest

    def retrieve_file(self, file_id: str) -> dict[str, Any]:
        return self._call(f"reading file {file_id}", lambda: self.sdk.files.retrieve(file_id)).model_dump()

    def delete_file(self, file_id: str) -> None:
        self._call(f"deleting file {file_id}", lambda: self.sdk.files.delete(file_id))

    def create_job(
        self, *, model: str, training_file: str, hyperparameters: dict[str, Any],
        validation_file: str | None = None, suffix: str | None = None, seed: int | None = None,
        from_checkpoint: dict[str, Any] | None = None, integrations: list[dict[str, Any]] | None = None,
        tags: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create a supervised job; ``integrations`` may hold secrets, which go to the service only."""
        optional = {"validation_file": validation_file, "suffix": suffix, "seed": seed}
        kwargs = {k: v for k, v in optional.items() if v is not None}
        # The SDK types ``method``/``integrations`` for OpenAI's shapes; the service's own go in the body.
        # Hyperparameters go in ``method`` only (the top-level field is the older form of the same).
        extra: dict[str, Any] = {"method": {"type": "supervised", "supervised": {"hyperparameters": hyperparameters}}}
        if from_checkpoint:
            extra["from_checkpoint"] = from_checkpoint
        if integrations:
            extra["integrations"] = integrations
        if tags:
            extra["tags"] = tags
        job = self._call("creating the fine-tuning job", lambda: self.sdk.fine_tuning.jobs.create(
            model=model, training_file=training_file, extra_body=extra, **kwargs))
        return job.model_dump()

    def retrieve_job(self, remote_id: str) -> dict[str, Any]:
        return self._call(f"reading job {remote_id}",
                          lambda: self.sdk.fine_tuning.jobs.retrieve(remote_id)).model_dump()

    def cancel_job(self, remote_id: str) -> dict[str, Any]:
        return self._call(f"cancelling job {remote_id}",
                          lambda: self.sdk.fine_tuning.jobs.cancel(remote_id)).model_dump()

    def list_events(self, remote_id: str) -> list[dict[str, Any]]:
        """All the job's events, oldest first (the service's order; the SDK follows ``after`` pages)."""
        events = self._call(f"reading the events of job {remote_id}", lambda: [
            e.model_dump() for e in self.sdk.fine_tuning.jobs.list_events(remote_id, limit=100)])
        return sorted(events, key=lambda e: e.get("created_at") or 0)  # stable: keeps ties in order

    def list_checkpoints(self, remote_id: str) -> list[dict[str, Any]]:
        """All the job's checkpoints, by step."""
        checkpoints = self._call(f"reading the checkpoints of job {remote_id}", lambda: [
            c.model_dump() for c in self.sdk.fine_tuning.jobs.checkpoints.list(remote_id, limit=100)])
        return sorted(checkpoints, key=lambda c: (c.get("step_number") or 0, c.get("created_at") or 0))

    # --- deployments (/v0, plain REST) ------------------------------------------------------------

    def _v0(self, path: str = "") -> str:
        return v0_url(self.base_url) + path

    def create_deployment(self, *, name: str, base_model: str, source: str,
                          description: str | None = None) -> dict[str, Any]:
        body = {"name": name, "base_model": base_model, "source": source}
        if description:
            body["description"] = description
        return self._call(f"deploying {source} as {name!r}",
                          lambda: self.sdk.post(self._v0("models"), body=body, cast_to=object))

    def get_deployment(self, model: str) -> dict[str, Any]:
        # The deployed name holds "/" and ":", so it is quoted into one path segment.
        return self._call(f"reading deployment {model!r}",
                          lambda: self.sdk.get(self._v0("models/" + quote(model, safe="")), cast_to=object))

    def list_deployments(self) -> list[dict[str, Any]]:
        answer = self._call("listing deployed models", lambda: self.sdk.get(self._v0("models"), cast_to=object))
        if isinstance(answer, dict):
            answer = answer.get("data") or answer.get("models") or []
        return list(answer)

    def delete_deployment(self, model: str) -> None:
        self._call(f"deleting deployment {model!r}",
                   lambda: self.sdk.delete(self._v0("models/" + quote(model, safe="")), cast_to=object))

    # --- models and chat --------------------------------------------------------------------------

    def list_served_models(self) -> set[str]:
        """Model ids the API serves for inference now (``GET /v1/models``)."""
        return self._call("listing models", lambda: {m.id for m in self.sdk.models.list()})


def _validation_fields(body: Any) -> str | None:
    """A 422 ``{"detail": [{loc, msg, input}, ...]}`` as ``field: reason (got value); ...``, with the
    request's own names (``hyperparameters.lora_r``, not ``body.method.supervised.supervised...``)."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, list) or not all(isinstance(d, dict) for d in detail):
        return None
    parts = []
    for item in detail:
        loc = [str(p) for p in item.get("loc") or [] if p != "body"]
        if loc[:3] == ["method", "supervised", "supervised"]:  # the discriminator's tag, then the field
            loc = loc[3:]
        value = item.get("input")
        got = f" (got {value!r})" if isinstance(value, (int, float, str)) and not isinstance(value, bool) else ""
        where = ".".join(loc)
        msg = str(item.get("msg") or item.get("type") or "invalid")
        parts.append(f"{where}: {msg}{got}" if where else msg)
    return "; ".join(parts) or None


def _iso(epoch: int | float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def client_for(job: Job) -> TokenFactoryClient:
    """A client for the service the job was launched on (its recorded base URL)."""
    return TokenFactoryClient(base_url=job.remote.get("base_url") or None)

