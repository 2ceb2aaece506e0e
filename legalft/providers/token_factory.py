"""Nebius Token Factory: pre-flight, launch, monitor, cancel, deploy and chat, through the openai SDK.

The service is OpenAI-compatible under ``/v1`` (files, fine-tuning jobs, events, checkpoints, chat);
custom-model deployment is plain REST under ``/v0`` on the same host, which we call through the same
SDK client (absolute URLs) so both share its retries, its ``Retry-After`` handling and one error map.

Every step is recorded in the job store as it happens (``legalft.jobs``), so closing the browser
loses nothing, and the Monitor page can show a job's history offline. The API key comes from
``NEBIUS_API_KEY`` or Streamlit secrets and is never written to the database, files, logs or error
messages. ``LEGALFT_TOKEN_FACTORY_URL`` points the client elsewhere (the test stand-in); nothing ever
falls back to another server on its own.
"""

from __future__ import annotations

import json
import logging
import os
import time
import tomllib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote, urljoin

from legalft.chat import DEFAULT_SYSTEM_PROMPT, server_error_message
from legalft.endpoints import Endpoint, delete_endpoint, list_endpoints, save_endpoint
from legalft.home import bundled_data_dir, subdir
from legalft.jobs import (
    Job, add_events, create_job, list_checkpoints, require_job, update_job, upsert_checkpoint, utc_now,
)

if TYPE_CHECKING:  # the SDK is imported lazily: the app and CLI start without it
    import openai

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.tokenfactory.nebius.com/v1/"
KEY_ENV = "NEBIUS_API_KEY"
URL_ENV = "LEGALFT_TOKEN_FACTORY_URL"
PATH = "token_factory"  # the jobs table's path and the endpoints table's kind

MAX_FILE_BYTES = 5 * 1024**3
MAX_SUFFIX_CHARS = 64
HYPERPARAMETER_NAMES = (
    "n_epochs", "learning_rate", "batch_size", "warmup_ratio", "weight_decay", "max_grad_norm",
    "context_length", "packing", "lora", "lora_r", "lora_alpha", "lora_dropout",
)

SMOKE_TEST_QUESTION = "What does section 1 of the Interpretation Act 1978 say about gender?"

ProgressCallback = Callable[[str, float | None], None]
"""Called with a message and a fraction in [0, 1] (None when unknown), e.g. during an upload."""


# --- errors ---------------------------------------------------------------------------------------


class TokenFactoryError(Exception):
    """A failure a person can act on; the message says what happened and what to do.

    ``kind`` is one of: ``no_key``, ``auth``, ``permission``, ``rate_limit``, ``server``, ``timeout``,
    ``network``, ``bad_request``, ``not_found``, ``conflict``, ``job_failed``, ``deploy_failed``.
    """

    def __init__(self, message: str, *, kind: str, status_code: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.status_code = status_code

    @property
    def transient(self) -> bool:
        """Worth trying again later (the SDK already retried)."""
        return self.kind in ("rate_limit", "server", "timeout", "network")


class PreflightError(TokenFactoryError):
    """The dataset breaks the service's rules; ``report`` says where."""

    def __init__(self, report: "PreflightReport"):
        problems = "; ".join(report.errors[:5])
        super().__init__(f"{Path(report.source_path).name} cannot be uploaded: {problems}", kind="bad_request")
        self.report = report


# --- key and URL ----------------------------------------------------------------------------------


def resolve_api_key() -> tuple[str | None, str | None]:
    """(key, where it came from): ``NEBIUS_API_KEY`` first, then Streamlit secrets; (None, None) if absent."""
    key = os.environ.get(KEY_ENV, "").strip()
    if key:
        return key, "environment"
    try:
        import streamlit as st
    except ImportError:
        return None, None
    try:
        # Only where a secrets.toml exists: touching st.secrets without one raises (and logs).
        if st.secrets.load_if_toml_exists():
            key = str(st.secrets.get(KEY_ENV, "") or "").strip()
    except Exception:  # a malformed secrets file must not take the app down
        log.warning("could not read Streamlit secrets; set %s instead", KEY_ENV)
        return None, None
    return (key, "streamlit secrets") if key else (None, None)


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


# --- model catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseModelInfo:
    """A base model Token Factory fine-tunes."""

    id: str
    """Name for fine-tuning jobs."""
    deploy_as: str
    """``base_model`` name for deploying a LoRA checkpoint of it."""
    params_billion: float | None = None
    lora: bool = True
    full: bool = False
    lora_deploy: bool = True
    notes: str = ""
    served: bool | None = None
    """Whether the API listed ``deploy_as`` at the last refresh; None when never refreshed."""


@dataclass
class ModelCatalogue:
    """The dated catalogue, plus what the last refresh from the API said."""

    as_of: str
    source: str
    models: list[BaseModelInfo]
    refreshed_at: str | None = None
    refresh_error: str | None = None

    def get(self, model_id: str) -> BaseModelInfo | None:
        for model in self.models:
            if model.id == model_id or model.deploy_as == model_id:
                return model
        return None

    def ids(self) -> list[str]:
        return [m.id for m in self.models]


def catalogue_path() -> Path:
    return bundled_data_dir() / "token_factory_models.toml"


def _cache_path() -> Path:
    return subdir("cache") / "token_factory_models.json"


def load_model_catalogue(path: str | Path | None = None) -> ModelCatalogue:
    """The shipped catalogue, with the served flags of the last refresh when one is cached."""
    with open(path or catalogue_path(), "rb") as fh:
        data = tomllib.load(fh)
    models = [BaseModelInfo(**entry) for entry in data.get("models", [])]
    catalogue = ModelCatalogue(as_of=str(data["as_of"]), source=data.get("source", ""), models=models)
    cache = _cache_path()
    if path is None and cache.exists():
        try:
            cached = json.loads(cache.read_text())
            served = set(cached.get("served", []))
            catalogue.models = [replace(m, served=m.deploy_as in served) for m in models]
            catalogue.refreshed_at = cached.get("refreshed_at")
        except (OSError, ValueError):
            log.warning("ignoring an unreadable model cache at %s", cache)
    return catalogue


def refresh_model_catalogue(client: "TokenFactoryClient | None" = None) -> ModelCatalogue:
    """Ask the API which models it serves and mark the catalogue's entries; the shipped list on failure."""
    catalogue = load_model_catalogue()
    try:
        client = client or TokenFactoryClient()
        served = client.list_served_models()
    except TokenFactoryError as exc:
        catalogue.refresh_error = str(exc)
        return catalogue
    now = utc_now()
    _cache_path().write_text(json.dumps({"refreshed_at": now, "served": sorted(served)}, indent=1))
    catalogue.models = [replace(m, served=m.deploy_as in served) for m in catalogue.models]
    catalogue.refreshed_at = now
    return catalogue


def deployment_base_model(model_id: str, catalogue: ModelCatalogue | None = None) -> str:
    """The ``base_model`` to deploy a checkpoint of ``model_id`` with (names differ between the two APIs)."""
    entry = (catalogue or load_model_catalogue()).get(model_id)
    return entry.deploy_as if entry else model_id


# --- launch configuration -------------------------------------------------------------------------


@dataclass
class LaunchConfig:
    """A Token Factory fine-tuning job's settings; values are checked here, before anything is sent."""

    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Base model to fine-tune (see ``legalft tf models``)."""
    n_epochs: int = 3
    """Passes over the training file."""
    learning_rate: float = 1e-5
    """Peak learning rate."""
    batch_size: int | None = None
    """Examples per step (the service's default is 8)."""
    lora: bool = True
    """Train a LoRA adapter (deployable serverlessly) instead of the full weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA layers, in [0, 1)."""
    packing: bool = True
    """Pack several short examples into one sequence."""
    context_length: int | None = None
    """Longest sequence in tokens (the service's default is 8192)."""
    warmup_ratio: float | None = None
    """Fraction of steps spent warming the learning rate up, in [0, 1)."""
    weight_decay: float | None = None
    """AdamW weight decay."""
    max_grad_norm: float | None = None
    """Gradient clipping norm."""
    suffix: str | None = None
    """Added to the fine-tuned model's name; at most 64 characters."""
    seed: int | None = None
    """Seed for a reproducible run."""

    def __post_init__(self) -> None:
        def whole(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not self.model or not isinstance(self.model, str):
            raise ValueError("model is required: pick one from `legalft tf models`")
        if not whole(self.n_epochs) or self.n_epochs < 1:
            raise ValueError(f"epochs must be a whole number of at least 1, not {self.n_epochs!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be greater than 0, not {self.learning_rate!r}")
        if self.batch_size is not None and (not whole(self.batch_size) or self.batch_size < 1):
            raise ValueError(f"batch size must be a whole number of at least 1, not {self.batch_size!r}")
        if not whole(self.lora_r) or self.lora_r < 1:
            raise ValueError(f"LoRA rank must be a positive whole number, not {self.lora_r!r}")
        if not whole(self.lora_alpha) or self.lora_alpha < 1:
            raise ValueError(f"LoRA alpha must be a positive whole number, not {self.lora_alpha!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"LoRA dropout must be at least 0 and below 1, not {self.lora_dropout!r}")
        if self.context_length is not None and (not whole(self.context_length) or self.context_length < 1):
            raise ValueError(f"context length must be a positive whole number, not {self.context_length!r}")
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup ratio must be at least 0 and below 1, not {self.warmup_ratio!r}")
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name.replace('_', ' ')} must not be negative, not {value!r}")
        if self.suffix is not None:
            if len(self.suffix) > MAX_SUFFIX_CHARS:
                raise ValueError(f"suffix is {len(self.suffix)} characters; the service allows {MAX_SUFFIX_CHARS}")
            self.suffix = self.suffix or None
        if self.seed is not None and not whole(self.seed):
            raise ValueError(f"seed must be a whole number, not {self.seed!r}")

    def hyperparameters(self) -> dict[str, Any]:
        """The ``hyperparameters`` object, with the service's own names; unset values are left out."""
        values = asdict(self)
        chosen = {name: values[name] for name in HYPERPARAMETER_NAMES if values[name] is not None}
        if not self.lora:  # LoRA settings mean nothing to a full fine-tune
            for name in ("lora_r", "lora_alpha", "lora_dropout"):
                chosen.pop(name)
        return chosen


# --- pre-flight -----------------------------------------------------------------------------------


@dataclass
class PreflightReport:
    """What the dataset looks like to the service, before anything is uploaded."""

    source_path: str
    upload_path: str | None = None
    """The cleaned file that will be uploaded."""
    rejects_path: str | None = None
    """Dropped records, with line and reason, for download."""
    sanitize: dict[str, Any] = field(default_factory=dict)
    """The sanitizer's report (``SanitizeReport.to_dict()``)."""
    records: int = 0
    bytes: int = 0
    estimated_tokens: int = 0
    """Trained tokens per epoch as the service counts them (``legalft.costs.estimate_trained_tokens``)."""
    errors: list[str] = field(default_factory=list)
    """Breaks of the service's rules; any one blocks the upload."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.upload_path is not None

    def estimated_cost(self, model: str, epochs: int, packing: bool = True,
                       context_length: int | None = None) -> float | None:
        """Training cost in USD from the one trained-token estimator (``legalft.costs``); None without a price."""
        from legalft import costs

        if self.upload_path is None:
            return None
        tokens = costs.estimate_trained_tokens(self.upload_path, model=model, epochs=epochs, packing=packing,
                                               context_length=context_length)
        return costs.estimate_managed_training(tokens).cost

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def preflight_dataset(path: str | Path, *, out_dir: str | Path | None = None) -> PreflightReport:
    """Clean ``path`` with the sanitizer, then check the clean file against the service's rules.

    The clean file and the rejects go under ``LEGALFT_HOME/datasets/token_factory/`` (or ``out_dir``),
    named by the source's content hash, so running it again on the same file reuses the names.
    """
    from legalft.data.readers import DatasetReadError
    from legalft.data.registry import file_sha256
    from legalft.data.sanitize import sanitize_file

    source = Path(path)
    report = PreflightReport(source_path=str(source))
    if not source.is_file():
        report.errors.append(f"{source} does not exist or is not a file")
        return report
    folder = Path(out_dir) if out_dir else subdir("datasets") / "token_factory"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{source.stem}-{file_sha256(source)[:12]}"
    upload, rejects = folder / f"{stem}.clean.jsonl", folder / f"{stem}.rejects.jsonl"
    try:
        sanitized = sanitize_file(source, upload, rejects)
    except DatasetReadError as exc:
        report.errors.append(str(exc))
        return report
    report.sanitize = sanitized.to_dict()
    report.upload_path, report.rejects_path = str(upload), str(rejects)
    if sanitized.dropped_records:
        report.warnings.append(
            f"{sanitized.dropped_records} of {sanitized.total_records} records were dropped; "
            f"see {rejects.name} for each one and why")
    _check_service_rules(upload, report)
    return report


def _check_service_rules(upload: Path, report: PreflightReport) -> None:
    """The service's own rules, on the file exactly as it will be uploaded."""
    report.bytes = upload.stat().st_size
    if report.bytes > MAX_FILE_BYTES:
        report.errors.append(
            f"the clean file is {report.bytes / 1024**3:.2f} GB; the service's limit is 5 GB: split it")
    bad_lines: list[int] = []
    with open(upload, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            report.records += 1
            if "messages" in record:
                messages = record["messages"]
                if not messages or messages[-1].get("role") != "assistant":
                    bad_lines.append(number)
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:10])) + (" ..." if len(bad_lines) > 10 else "")
        report.errors.append(
            f"{len(bad_lines)} conversation(s) do not end with an assistant message (clean file lines {shown})")
    if report.records == 0:
        report.errors.append("no records are left after cleaning: check the file's format")
    elif report.records < 10:
        report.warnings.append(f"only {report.records} records: fine-tuning on so few rarely helps")
    from legalft.costs import estimate_trained_tokens

    report.estimated_tokens = estimate_trained_tokens(upload).per_epoch


# --- the client -----------------------------------------------------------------------------------


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
            raise TokenFactoryError(
                f"no Nebius API key: set {KEY_ENV} in the environment, or add {KEY_ENV} to "
                ".streamlit/secrets.toml; create a key in the Token Factory console", kind="no_key")
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
            raise TokenFactoryError(
                f"{what}: the service did not answer within {self._timeout:g} s, {self.max_retries} retries "
                "included; try again later", kind="timeout") from None
        except openai.APIConnectionError as exc:
            host = self.base_url.split("/")[2]
            reason = _redact(str(exc.__cause__ or exc), self._key)
            raise TokenFactoryError(
                f"{what}: cannot reach {host} ({reason}); check the network connection"
                + (f" and {URL_ENV}" if self.base_url != DEFAULT_BASE_URL else "")
                + "; nothing was changed locally", kind="network") from None

    def _status_error(self, what: str, exc: "openai.APIStatusError") -> TokenFactoryError:
        status = exc.status_code
        detail = _redact(server_error_message(exc), self._key)
        retries = f"after {self.max_retries} retries"
        if status == 401:
            return TokenFactoryError(
                f"{what}: the key was rejected (HTTP 401); check {KEY_ENV}, or create a new key in the "
                "Token Factory console", kind="auth", status_code=status)
        if status == 403:
            return TokenFactoryError(
                f"{what}: the key is not allowed to do this (HTTP 403): {detail}", kind="permission",
                status_code=status)
        if status == 429:
            wait = exc.response.headers.get("retry-after")
            asked = f"; the service asked to wait {wait} s" if wait else ""
            return TokenFactoryError(
                f"{what}: rate limited by the service (HTTP 429) {retries}{asked}; wait a minute and "
                "try again", kind="rate_limit", status_code=status)
        if status >= 500:
            return TokenFactoryError(
                f"{what}: the service failed (HTTP {status}) {retries}; try again in a few minutes",
                kind="server", status_code=status)
        if status == 404:
            return TokenFactoryError(f"{what}: not found (HTTP 404): {detail}", kind="not_found",
                                     status_code=status)
        if status == 409:
            return TokenFactoryError(f"{what}: conflict (HTTP 409): {detail}", kind="conflict", status_code=status)
        return TokenFactoryError(f"{what}: the service refused the request (HTTP {status}): {detail}",
                                 kind="bad_request", status_code=status)

    # --- files and jobs ---------------------------------------------------------------------------

    def upload_file(self, path: str | Path, progress: ProgressCallback | None = None) -> dict[str, Any]:
        """Upload a JSONL file with ``purpose="fine-tune"``, streaming it from disk."""
        path = Path(path)
        total = path.stat().st_size
        with open(path, "rb") as fh:
            stream = _ProgressReader(fh, total, progress, path.name) if progress else fh
            result = self._call(f"uploading {path.name}", lambda: self.sdk.files.create(
                file=(path.name, stream, "application/jsonl"), purpose="fine-tune"))
        return result.model_dump()

    def delete_file(self, file_id: str) -> None:
        self._call(f"deleting file {file_id}", lambda: self.sdk.files.delete(file_id))

    def create_job(
        self, *, model: str, training_file: str, hyperparameters: dict[str, Any],
        validation_file: str | None = None, suffix: str | None = None, seed: int | None = None,
    ) -> dict[str, Any]:
        optional = {"validation_file": validation_file, "suffix": suffix, "seed": seed}
        kwargs = {k: v for k, v in optional.items() if v is not None}
        job = self._call("creating the fine-tuning job", lambda: self.sdk.fine_tuning.jobs.create(
            model=model, training_file=training_file, hyperparameters=hyperparameters, **kwargs))
        return job.model_dump()

    def retrieve_job(self, remote_id: str) -> dict[str, Any]:
        return self._call(f"reading job {remote_id}",
                          lambda: self.sdk.fine_tuning.jobs.retrieve(remote_id)).model_dump()

    def cancel_job(self, remote_id: str) -> dict[str, Any]:
        return self._call(f"cancelling job {remote_id}",
                          lambda: self.sdk.fine_tuning.jobs.cancel(remote_id)).model_dump()

    def list_events(self, remote_id: str) -> list[dict[str, Any]]:
        """All the job's events, oldest first."""
        events = self._call(f"reading the events of job {remote_id}", lambda: [
            e.model_dump() for e in self.sdk.fine_tuning.jobs.list_events(remote_id, limit=100)])
        if _newest_first(events):
            events.reverse()
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


def _newest_first(items: list[dict[str, Any]]) -> bool:
    """Whether a page lists newest first; when the stamps cannot tell (one second), the OpenAI convention."""
    stamps = [i.get("created_at") or 0 for i in items]
    if any(a > b for a, b in zip(stamps, stamps[1:])):
        return True
    return not any(a < b for a, b in zip(stamps, stamps[1:]))


def _iso(epoch: int | float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")


def client_for(job: Job) -> TokenFactoryClient:
    """A client for the service the job was launched on (its recorded base URL)."""
    return TokenFactoryClient(base_url=job.remote.get("base_url") or None)


# --- jobs -----------------------------------------------------------------------------------------


def launch_job(
    dataset: str | Path | PreflightReport,
    config: LaunchConfig | None = None,
    *,
    validation: str | Path | PreflightReport | None = None,
    name: str | None = None,
    client: TokenFactoryClient | None = None,
    progress: ProgressCallback | None = None,
) -> Job:
    """Pre-flight, upload, create the job; the job is recorded before the first byte leaves.

    ``dataset``/``validation`` are paths (pre-flight runs here) or reports already shown to the user.
    Raises ``PreflightError`` when a file breaks the service's rules (nothing is recorded then), and
    ``TokenFactoryError`` when the service fails; the recorded job then says ``failed`` and why.
    """
    config = config or LaunchConfig()
    client = client or TokenFactoryClient()
    say = progress or (lambda message, fraction: None)
    reports = {}
    for role, item in (("training", dataset), ("validation", validation)):
        if item is None:
            continue
        report = item if isinstance(item, PreflightReport) else preflight_dataset(item)
        if not report.ok:
            raise PreflightError(report)
        reports[role] = report
    train = reports["training"]
    no_validation = "no validation file: a 10-20% validation split shows over-fitting"
    if "validation" not in reports and no_validation not in train.warnings:
        train.warnings.append(no_validation)
    job = create_job(
        PATH, status="validating_files", name=name or config.suffix, base_model=config.model,
        dataset_path=train.upload_path, config={**asdict(config), "hyperparameters": config.hyperparameters()},
        remote={"base_url": client.base_url}, estimated_cost=train.estimated_cost(
            config.model, config.n_epochs, config.packing, config.context_length),
        progress={"stage": "uploading", "preflight": {r: rep.to_dict() for r, rep in reports.items()}},
    )
    log.info("launching Token Factory job %s on %s", job.id, config.model)
    remote: dict[str, Any] = {"base_url": client.base_url}
    try:
        for role, report in reports.items():
            say(f"uploading the {role} file", 0.0)
            uploaded = client.upload_file(report.upload_path, progress)
            remote[f"{role}_file"] = uploaded["id"]
            remote[f"{role}_file_bytes"] = uploaded.get("bytes")
            job = update_job(job.id, remote=remote)
        say("creating the fine-tuning job", None)
        created = client.create_job(
            model=config.model, training_file=remote["training_file"],
            validation_file=remote.get("validation_file"), hyperparameters=config.hyperparameters(),
            suffix=config.suffix, seed=config.seed)
    except TokenFactoryError as exc:
        update_job(job.id, status="failed", error=str(exc), progress={"stage": "launch failed"})
        _discard_files(client, remote)
        raise
    remote["job"] = created["id"]
    job = update_job(job.id, remote_id=created["id"], remote=remote, status=_status(created["status"]),
                     progress={"stage": "created", "remote_status": created["status"]})
    say(f"created {created['id']}", 1.0)
    return job


def _discard_files(client: TokenFactoryClient, remote: dict[str, Any]) -> None:
    """Best effort: files uploaded for a job that was never created only take up quota."""
    for role in ("training", "validation"):
        file_id = remote.get(f"{role}_file")
        if file_id:
            try:
                client.delete_file(file_id)
            except TokenFactoryError as exc:
                log.warning("could not delete uploaded file %s: %s", file_id, exc)


def _status(remote_status: str | None) -> str:
    from legalft.jobs import STATUSES

    if remote_status in STATUSES:
        return remote_status
    log.warning("unknown remote job status %r, shown as running", remote_status)
    return "running"


def sync_job(job_id: str, client: TokenFactoryClient | None = None) -> Job:
    """Pull the job's status, events and checkpoints into the database and return the job.

    On a network or service failure this raises ``TokenFactoryError`` and changes nothing locally,
    so the recorded history stays as it was.
    """
    job = require_job(job_id)
    if job.path != PATH:
        raise ValueError(f"job {job_id} is a {job.path} job, not a Token Factory one")
    if not job.remote_id:
        return job  # never created remotely (the launch failed); nothing to pull
    client = client or client_for(job)
    remote = client.retrieve_job(job.remote_id)
    events = client.list_events(job.remote_id)
    checkpoints = client.list_checkpoints(job.remote_id)
    add_events(job_id, [
        {"remote_id": e["id"], "created_at": _iso(e.get("created_at")), "level": e.get("level") or "info",
         "message": e.get("message") or ""} for e in events])
    for ckpt in checkpoints:
        metrics = {k: v for k, v in (ckpt.get("metrics") or {}).items() if v is not None}
        if ckpt.get("result_files"):
            metrics["result_files"] = ckpt["result_files"]
        upsert_checkpoint(job_id, ckpt["id"], step=ckpt.get("step_number"), metrics=metrics,
                          created_at=_iso(ckpt.get("created_at")))
    status = _status(remote.get("status"))
    trained_tokens = remote.get("trained_tokens")
    steps, total = remote.get("trained_steps"), remote.get("total_steps")
    progress = {
        "stage": remote.get("status"), "remote_status": remote.get("status"),
        "trained_tokens": trained_tokens, "trained_steps": steps, "total_steps": total,
        "fraction": round(steps / total, 4) if steps is not None and total else None,
        "estimated_finish": _iso(remote.get("estimated_finish")), "synced_at": utc_now(),
        "checkpoints": len(checkpoints),
    }
    fields: dict[str, Any] = {"status": status, "progress": progress, "output": {
        "fine_tuned_model": remote.get("fine_tuned_model"), "result_files": remote.get("result_files") or []}}
    if trained_tokens:
        fields["actual_cost"] = _training_cost(job.base_model or remote.get("model", ""), trained_tokens)
    if status == "failed":
        fields["error"] = _job_error(remote.get("error"))
    if status in ("succeeded", "failed", "cancelled") and remote.get("finished_at"):
        fields["finished_at"] = _iso(remote["finished_at"])
    return update_job(job_id, **fields)


def _training_cost(model: str, trained_tokens: int) -> float | None:
    from legalft.costs import training_price_per_million

    price = training_price_per_million(model)
    return None if price is None else trained_tokens * price / 1e6


def _job_error(error: dict[str, Any] | None) -> str:
    if not error:
        return "the service reported the job failed without a reason; see its events"
    code, message, param = error.get("code"), error.get("message"), error.get("param")
    text = f"{code}: {message}" if code else str(message)
    return f"{text} (parameter: {param})" if param else text


def wait_for_job(
    job_id: str,
    *,
    poll_seconds: float = 15.0,
    timeout: float | None = None,
    client: TokenFactoryClient | None = None,
    on_update: Callable[[Job], None] | None = None,
    max_consecutive_errors: int = 5,
) -> Job:
    """Sync until the job ends (or ``timeout`` seconds pass); passing network trouble is waited out."""
    job = require_job(job_id)
    client = client or client_for(job)
    deadline = None if timeout is None else time.monotonic() + timeout
    errors = 0
    while True:
        try:
            job = sync_job(job_id, client)
            errors = 0
        except TokenFactoryError as exc:
            errors += 1
            if not exc.transient or errors >= max_consecutive_errors:
                raise
            log.warning("sync of %s failed (%s); trying again in %g s", job_id, exc, poll_seconds)
        else:
            if on_update:
                on_update(job)
            if job.is_terminal:
                return job
        if deadline is not None and time.monotonic() >= deadline:
            return job
        time.sleep(poll_seconds)


def cancel_job(job_id: str, client: TokenFactoryClient | None = None) -> Job:
    """Cancel the remote job and record it; a job that has already ended is returned unchanged."""
    job = require_job(job_id)
    if job.path != PATH:
        raise ValueError(f"job {job_id} is a {job.path} job, not a Token Factory one")
    if job.is_terminal:
        log.info("job %s already %s; nothing to cancel", job_id, job.status)
        return job
    if not job.remote_id:
        return update_job(job_id, status="cancelled")
    client = client or client_for(job)
    client.cancel_job(job.remote_id)
    return sync_job(job_id, client)


# --- deployments ----------------------------------------------------------------------------------


def deploy_checkpoint(
    job_id: str,
    *,
    name: str,
    checkpoint_id: str | None = None,
    description: str | None = None,
    client: TokenFactoryClient | None = None,
) -> Endpoint:
    """Deploy a checkpoint (the latest by default) of a Token Factory job; records the endpoint.

    The endpoint starts ``validating``; ``poll_deployment`` follows it to ``active`` or ``error``.
    """
    job = require_job(job_id)
    if job.path != PATH or not job.remote_id:
        raise ValueError(f"job {job_id} has no Token Factory job to deploy from")
    name = name.strip()
    if not name:
        raise ValueError("a deployment needs a name, e.g. uk-legal")
    client = client or client_for(job)
    checkpoints = list_checkpoints(job_id)
    if not checkpoints:
        job = sync_job(job_id, client)
        checkpoints = list_checkpoints(job_id)
    if not checkpoints:
        raise TokenFactoryError(f"job {job_id} has no checkpoints yet ({job.status}); wait for its first epoch",
                                kind="conflict")
    if checkpoint_id is None:
        checkpoint_id = checkpoints[-1]["checkpoint_id"]
    elif checkpoint_id not in {c["checkpoint_id"] for c in checkpoints}:
        known = ", ".join(c["checkpoint_id"] for c in checkpoints)
        raise ValueError(f"job {job_id} has no checkpoint {checkpoint_id!r}; it has {known}")
    if not job.config.get("lora", True):
        log.warning("job %s is a full fine-tune; the service may refuse to deploy it serverlessly", job_id)
    base = deployment_base_model(job.base_model or "")
    source = f"{job.remote_id}:{checkpoint_id}"
    deployment = client.create_deployment(name=name, base_model=base, source=source, description=description)
    return _record_deployment(client, deployment, job_id=job_id, extra={
        "checkpoint_id": checkpoint_id, "source": source, "base_model": base, "requested_name": name})


def _record_deployment(client: TokenFactoryClient, deployment: dict[str, Any], *, job_id: str | None,
                       extra: dict[str, Any] | None = None) -> Endpoint:
    model = deployment["name"]
    previous = next((e for e in list_endpoints(PATH) if e.model == model), None)
    details = {**(previous.details if previous else {}), **(extra or {}),
               "status_reason": deployment.get("status_reason"), "checked_at": utc_now()}
    return save_endpoint(kind=PATH, name=details.get("requested_name") or model, base_url=client.base_url,
                         model=model, status=deployment.get("status") or "unknown", job_id=job_id, details=details)


def poll_deployment(
    model: str,
    *,
    wait: bool = False,
    timeout: float = 1800.0,
    poll_seconds: float = 10.0,
    client: TokenFactoryClient | None = None,
    on_update: Callable[[Endpoint], None] | None = None,
) -> Endpoint:
    """Read a deployment's status into its endpoint; with ``wait``, until ``active`` or ``error``.

    An ``error`` is returned, not raised: ``endpoint.details["status_reason"]`` says why.
    """
    known = next((e for e in list_endpoints(PATH) if e.model == model), None)
    client = client or TokenFactoryClient(base_url=known.base_url if known else None)
    deadline = time.monotonic() + timeout
    while True:
        deployment = client.get_deployment(model)
        endpoint = _record_deployment(client, deployment, job_id=known.job_id if known else None)
        if on_update:
            on_update(endpoint)
        if not wait or endpoint.status in ("active", "error") or time.monotonic() >= deadline:
            return endpoint
        time.sleep(poll_seconds)


def list_models(client: TokenFactoryClient | None = None) -> list[dict[str, Any]]:
    """The custom models deployed on the account; recorded endpoints get their current status."""
    client = client or TokenFactoryClient()
    deployments = client.list_deployments()
    recorded = {e.model: e for e in list_endpoints(PATH)}
    for deployment in deployments:
        if deployment.get("name") in recorded:
            _record_deployment(client, deployment, job_id=recorded[deployment["name"]].job_id)
    return deployments


def delete_model(name: str, client: TokenFactoryClient | None = None) -> None:
    """Delete a deployed model and forget its endpoint."""
    known = next((e for e in list_endpoints(PATH) if e.model == name), None)
    client = client or TokenFactoryClient(base_url=known.base_url if known else None)
    client.delete_deployment(name)
    if known:
        delete_endpoint(known.id)


# --- chat -----------------------------------------------------------------------------------------


@dataclass
class ChatAnswer:
    """One answer from a model."""

    model: str
    text: str
    usage: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


# The chat client's failure kinds, in this module's vocabulary.
_CHAT_ERROR_KINDS = {"unreachable": "network", "no_key": "no_key", "timeout": "timeout", "auth": "auth",
                     "not_found": "not_found", "rate_limit": "rate_limit", "server": "server",
                     "bad_request": "bad_request"}


def chat(
    model: str,
    question: str,
    *,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    max_tokens: int = 512,
    temperature: float = 0.3,
    on_token: Callable[[str], None] | None = None,
    client: TokenFactoryClient | None = None,
) -> ChatAnswer:
    """Ask a deployed model one question; with ``on_token`` the answer is streamed into it as it arrives.

    Goes through ``legalft.chat``, the one chat client every endpoint uses; only the base URL (the
    service the model is deployed on) and the key differ.
    """
    from legalft import chat as chat_client

    if not question.strip():
        raise ValueError("the question is empty")
    known = next((e for e in list_endpoints(PATH) if e.model == model), None)
    base_url = client.base_url if client else (known.base_url if known else configured_base_url())
    endpoint = known if known and known.base_url == base_url else Endpoint(
        id=0, kind=PATH, name=model, base_url=base_url, model=model, status="unknown",
        created_at=utc_now(), updated_at=utc_now())
    messages = chat_client.build_messages(question, system_prompt)
    try:
        if on_token is None:
            reply = chat_client.chat(endpoint, messages, max_tokens=max_tokens, temperature=temperature)
        else:
            with chat_client.stream_chat(endpoint, messages, max_tokens=max_tokens,
                                         temperature=temperature) as stream:
                for piece in stream:
                    on_token(piece)
            reply = stream.reply
    except chat_client.ChatError as exc:
        raise TokenFactoryError(str(exc), kind=_CHAT_ERROR_KINDS.get(exc.kind, "server"),
                                status_code=exc.status_code) from None
    return ChatAnswer(model=model, text=reply.text, usage=reply.usage, seconds=reply.seconds)


def smoke_test(model: str, client: TokenFactoryClient | None = None) -> ChatAnswer:
    """Ask a deployed model one legal question; raises ``TokenFactoryError`` on an empty answer."""
    answer = chat(model, SMOKE_TEST_QUESTION, max_tokens=256, client=client)
    if not answer.text.strip():
        raise TokenFactoryError(f"{model} answered with nothing; check the deployment's status",
                                kind="deploy_failed")
    return answer
