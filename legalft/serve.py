"""Local OpenAI-compatible model servers: start one for a model folder, check it, stop it.

Two servers speak the same API, so the Chat page, ``legalft chat`` and the legal API talk to either
through ``legalft.chat``:

- ``local``: ``transformers serve`` (CPU or GPU, the app's own environment). It is pinned to one
  model folder, and a request's ``model`` must be that folder's path exactly.
- ``vllm``: ``vllm serve`` with the reference flags (GPU). vLLM pins an older transformers than the
  app, so it runs from its own environment (``requirements-gpu.lock``, ``.venv-gpu``). It can serve
  a LoRA adapter without merging (``--enable-lora --lora-modules``), which also serves the base
  model from the same process: the Chat page's comparison for free.

A server is a detached process (its own session, so closing the app or a terminal does not stop
it) recorded in the endpoints table with its pid, port, command and log file. Everything about it
can be checked from that record alone: the pid (with its start time, against pid reuse) and
``GET /health``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from legalft import procs
from legalft.audit import action
from legalft.endpoints import Endpoint, list_endpoints, save_endpoint
from legalft.errors import ServiceError
from legalft.home import project_root, subdir
from legalft.jobs import utc_now
from legalft.polling import poll_until

log = logging.getLogger(__name__)

SERVER_KINDS = ("local", "vllm")
DEFAULT_HOST = "127.0.0.1"
#: The name the reference serves its fine-tuned model under.
DEFAULT_SERVED_NAME = "legal-lora"
#: The name the base model gets when vLLM serves it beside an adapter.
BASE_SERVED_NAME = "legal-base"
SMOKE_TARGETS = ("smoke", "builtin:smoke")
VLLM_ENV = "LEGALFT_VLLM"
VLLM_INSTALL_HINT = ("python3.11 -m venv .venv-gpu && .venv-gpu/bin/pip install -r requirements-gpu.lock "
                     f"(or set {VLLM_ENV} to a vllm executable)")
#: vLLM's own default; a larger adapter rank needs ``--max-lora-rank``.
VLLM_DEFAULT_MAX_LORA_RANK = 16


class ServeError(Exception):
    """A server that cannot be started or stopped; the message says what to do."""


@dataclass
class ServeConfig:
    """How to run a model server. The defaults are the reference's vLLM flags and a CPU-safe local server."""

    kind: str = "local"
    """``local`` (transformers serve, CPU or GPU) or ``vllm`` (GPU)."""
    host: str = DEFAULT_HOST
    """Address to listen on; the default keeps the server private to this machine."""
    port: int | None = None
    """Port to listen on; a free one is chosen when unset."""
    name: str | None = None
    """Endpoint name shown in the app and accepted by ``legalft chat``; derived from the model when unset."""
    served_model_name: str | None = None
    """vLLM: the name requests use (default ``legal-lora``). A local server answers to its folder path."""
    device: str = "auto"
    """local: ``auto``, ``cpu`` or ``cuda:0``."""
    dtype: str | None = None
    """Weights' dtype: ``bfloat16`` for vLLM (the reference), ``auto`` (as saved) for a local server."""
    max_model_len: int = 4096
    """vLLM: the longest prompt plus answer, in tokens."""
    gpu_memory_utilization: float = 0.90
    """vLLM: the share of GPU memory it may take (weights plus KV cache)."""
    chat_template: str | None = None
    """vLLM: a chat template file; default: the model folder's ``chat_template.jinja`` when present."""
    executable: str | None = None
    """vLLM: the ``vllm`` executable; default: ``$LEGALFT_VLLM``, ``.venv-gpu/bin/vllm``, then PATH."""
    extra_args: tuple[str, ...] = ()
    """More flags for the server's command line, e.g. ``("--enforce-eager",)`` for vLLM."""

    def __post_init__(self) -> None:
        if self.kind not in SERVER_KINDS:
            raise ServeError(f"unknown server kind {self.kind!r}; use local (transformers serve) or vllm")
        if self.port is not None and not 1 <= int(self.port) <= 65535:
            raise ServeError(f"port {self.port} is out of range; use 1-65535, or leave it unset for a free one")
        if not 0.0 < float(self.gpu_memory_utilization) <= 1.0:
            raise ServeError(f"gpu_memory_utilization {self.gpu_memory_utilization} must be in (0, 1]; the "
                             "reference uses 0.90")
        if int(self.max_model_len) < 16:
            raise ServeError(f"max_model_len {self.max_model_len} is too small; the reference uses 4096")
        if self.dtype is None:
            self.dtype = "bfloat16" if self.kind == "vllm" else "auto"


@dataclass
class ModelSource:
    """What a serve target resolved to: a full model folder, or a LoRA adapter and its base model."""

    model: str
    """A full model's folder (or hub id for an adapter's base)."""
    label: str
    """Short name for the endpoint (job name, folder name, ``smoke``)."""
    adapter_dir: str | None = None
    """A PEFT adapter folder to serve on top of ``model``."""
    adapter_rank: int | None = None
    job_id: str | None = None
    chat_template_file: str | None = None


@dataclass
class HealthReport:
    """Whether an endpoint answers now. ``status`` is what the endpoints table records."""

    ok: bool
    status: str
    """``active``, ``starting``, ``stopped``, ``failed`` (the process died) or ``unreachable``."""
    detail: str = ""
    http_status: int | None = None
    checked_at: str = field(default_factory=utc_now)


# --- resolving what to serve ----------------------------------------------------------------------


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def _adapter_info(path: Path) -> tuple[str | None, int | None]:
    try:
        config = json.loads((path / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None, None
    rank = config.get("r")
    return config.get("base_model_name_or_path"), int(rank) if isinstance(rank, int) else None


def _template_file(*folders: Path | None) -> str | None:
    for folder in folders:
        if folder is not None and (folder / "chat_template.jinja").is_file():
            return str(folder / "chat_template.jinja")
    return None


def _from_folder(path: Path, label: str, job_id: str | None = None) -> ModelSource:
    """A model folder, an adapter folder, or a run folder (its ``merged/``, else its ``adapter/``)."""
    from legalft.train.rundir import ADAPTER_DIR, MERGED_DIR

    if not _is_model_dir(path) and not _is_adapter_dir(path):
        merged, adapter = path / MERGED_DIR, path / ADAPTER_DIR
        if _is_model_dir(merged):
            path = merged
        elif _is_model_dir(adapter) or _is_adapter_dir(adapter):
            path = adapter
        else:
            raise ServeError(f"{path} holds no model to serve: no config.json (a model), no adapter_config.json "
                             f"(an adapter), and no {MERGED_DIR}/ or {ADAPTER_DIR}/ of a finished run. Serve a "
                             "run after it succeeded, or `legalft serve start smoke` to try the built-in model")
    if _is_model_dir(path):
        return ModelSource(model=str(path.resolve()), label=label, job_id=job_id,
                           chat_template_file=_template_file(path))
    base, rank = _adapter_info(path)
    if not base:
        raise ServeError(f"{path}/adapter_config.json names no base model (base_model_name_or_path); "
                         "merge the run first with `legalft merge`")
    return ModelSource(model=base, label=label, adapter_dir=str(path.resolve()), adapter_rank=rank, job_id=job_id,
                       chat_template_file=_template_file(path, Path(base) if Path(base).is_dir() else None))


def run_label(job) -> str:
    """How a served model names the run it came from: ``smoke · run-20260101-…``."""
    return f"{job.name} · {job.id}" if job.name and job.name != job.id else job.id


def _job_for_folder(path: Path):
    """The local job whose run folder is ``path`` or holds it (its ``merged/`` or ``adapter/``)."""
    from legalft.jobs import list_jobs

    resolved = path.resolve()
    for job in list_jobs(path="local"):
        if job.run_dir and Path(job.run_dir).resolve() in (resolved, resolved.parent):
            return job
    return None


def vllm_unavailable(has_gpu: bool | None = None) -> str | None:
    """Why vLLM cannot serve here, in plain words for the Chat page (None when it can).

    The CLI's ``ServeError`` names the install command; a page names what to choose instead."""
    if has_gpu is None:
        from legalft.train.hardware import detect_hardware

        has_gpu = detect_hardware().has_gpu
    if not has_gpu:
        return ("vLLM serves models on an NVIDIA GPU, and this machine has none. Choose **local**: it serves the "
                "model on this machine's processor (slower, fine for trying a model).")
    try:
        find_vllm()
    except ServeError:
        return ("vLLM is not installed on this machine. Whoever set up the studio can add it (README, “Serving with "
                "vLLM”); until then choose **local**.")
    return None


def resolve_target(target: str | Path) -> ModelSource:
    """What to serve for ``smoke``, a job id, a run folder, a model folder or an adapter folder."""
    text = str(target).strip()
    if not text:
        raise ServeError("nothing to serve: give `smoke`, a job id, a run folder or a model folder")
    if text in SMOKE_TARGETS:
        from legalft.train.smoke import ensure_smoke_model

        path = ensure_smoke_model()
        return ModelSource(model=str(path.resolve()), label="smoke", chat_template_file=_template_file(path))
    path = Path(text).expanduser()
    if path.is_dir():
        job = _job_for_folder(path)
        if job is not None:  # a run's folder (or its merged/adapter): named after the run it belongs to
            return _from_folder(path, label=run_label(job), job_id=job.id)
        return _from_folder(path, label=path.name if path.name not in ("merged", "adapter") else path.parent.name)
    from legalft.jobs import get_job

    job = get_job(text)
    if job is not None:
        if job.path != "local" or not job.run_dir:
            raise ServeError(f"job {job.id} ran on Token Factory; chat with its deployment instead "
                             f"(`legalft tf deploy {job.id}`, then `legalft chat`)")
        if job.status != "succeeded":
            raise ServeError(f"job {job.id} is {job.status}; a model can be served once it succeeded")
        return _from_folder(Path(job.run_dir), label=run_label(job), job_id=job.id)
    raise ServeError(f"{text!r} is neither a folder nor a job id; give `smoke`, a job id (legalft jobs), a run "
                     "folder, or a model folder")


# --- command lines --------------------------------------------------------------------------------


def find_vllm(config: ServeConfig | None = None) -> str:
    """The ``vllm`` executable: the config's, ``$LEGALFT_VLLM``, ``.venv-gpu/bin/vllm``, the app's env, PATH."""
    candidates = [config.executable if config else None, os.environ.get(VLLM_ENV),
                  str(project_root() / ".venv-gpu" / "bin" / "vllm"), str(Path(sys.executable).parent / "vllm"),
                  shutil.which("vllm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServeError(f"vLLM is not installed; install its GPU environment: {VLLM_INSTALL_HINT}")


def _transformers_executable() -> list[str]:
    script = Path(sys.executable).parent / "transformers"
    if script.is_file():
        return [str(script)]
    # The console script is missing in some installs; the module does the same.
    return [sys.executable, "-m", "transformers.cli.transformers"]


def transformers_command(source: ModelSource, config: ServeConfig, port: int) -> list[str]:
    """``transformers serve`` pinned to one model folder (an adapter folder loads its base itself)."""
    model = source.adapter_dir or source.model
    return [*_transformers_executable(), "serve", model, "--host", config.host, "--port", str(port),
            "--device", config.device, "--dtype", config.dtype or "auto", "--log-level", "info",
            *config.extra_args]


def vllm_command(source: ModelSource, config: ServeConfig, port: int, executable: str = "vllm") -> list[str]:
    """``vllm serve`` with the reference flags; an adapter is served with ``--enable-lora``, unmerged."""
    served = config.served_model_name or DEFAULT_SERVED_NAME
    command = [executable, "serve", source.model, "--host", config.host, "--port", str(port),
               "--served-model-name", BASE_SERVED_NAME if source.adapter_dir else served,
               "--dtype", config.dtype or "bfloat16", "--max-model-len", str(config.max_model_len),
               "--gpu-memory-utilization", f"{config.gpu_memory_utilization:.2f}"]
    template = config.chat_template or source.chat_template_file
    if template:
        # Without the content format, Gemma's template mishandles system prompts (reference finding).
        command += ["--chat-template", template, "--chat-template-content-format", "string"]
    if source.adapter_dir:
        command += ["--enable-lora", "--lora-modules", f"{served}={source.adapter_dir}"]
        if source.adapter_rank and source.adapter_rank > VLLM_DEFAULT_MAX_LORA_RANK:
            command += ["--max-lora-rank", str(source.adapter_rank)]
    return command + list(config.extra_args)


def build_command(source: ModelSource, config: ServeConfig, port: int) -> list[str]:
    """The server's command line for the config's kind."""
    if config.kind == "vllm":
        return vllm_command(source, config, port, executable=find_vllm(config))
    return transformers_command(source, config, port)


def served_models(source: ModelSource, config: ServeConfig) -> dict[str, str]:
    """``{"model": ..., "base": ...}``: the names requests use (``base`` only when vLLM serves an adapter)."""
    if config.kind == "local":
        return {"model": source.adapter_dir or source.model}
    served = config.served_model_name or DEFAULT_SERVED_NAME
    return {"model": served, "base": BASE_SERVED_NAME} if source.adapter_dir else {"model": served}


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _url_host(host: str) -> str:
    # A server listening on every interface is reached locally through the loopback address.
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


# --- processes ------------------------------------------------------------------------------------


def _process_record(details: dict[str, Any]) -> dict[str, Any]:
    return details.get("process") or {"pid": details.get("pid"), "create_time": details.get("create_time")}


def _process(details: dict[str, Any]):
    """The recorded server process if it still runs (and is the same process), else None."""
    return procs.find(_process_record(details))


def log_tail(path: str | Path | None, lines: int = 20) -> str:
    """The last lines of a server's log ('' when there is none)."""
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).strip()
    except OSError:
        return ""


def _health_url(endpoint: Endpoint) -> str:
    base = endpoint.base_url.rstrip("/")
    return (base[: -len("/v1")] if base.endswith("/v1") else base) + "/health"


def _get(url: str, timeout: float, headers: dict[str, str] | None = None) -> tuple[int | None, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(2000).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        return None, str(getattr(exc, "reason", exc))


def check_health(endpoint: Endpoint, timeout: float = 2.0) -> HealthReport:
    """Whether the endpoint answers now: the recorded process (when legalft started it), then HTTP.

    Local and vLLM servers are asked ``GET /health``; the managed service ``GET /v1/models`` with
    the key, which checks the key too.
    """
    details = endpoint.details or {}
    if endpoint.kind in SERVER_KINDS and details.get("pid"):
        if _process(details) is None:
            if endpoint.status == "stopped":
                return HealthReport(False, "stopped", "the server was stopped")
            ended = _remote_end(details)
            if ended is not None:
                return ended
            tail = log_tail(details.get("log"), 8)
            return HealthReport(False, "failed", "the server process has exited"
                                + (f"; the end of its log ({details.get('log')}):\n{tail}" if tail else ""))
    if endpoint.kind == "token_factory":
        from legalft.chat import api_key_for

        try:
            key = api_key_for(endpoint)
        except ServiceError as exc:
            return HealthReport(False, "unreachable", str(exc))
        code, body = _get(endpoint.base_url.rstrip("/") + "/models", timeout, {"Authorization": f"Bearer {key}"})
    else:
        code, body = _get(_health_url(endpoint), timeout)
    if code == 200:
        return HealthReport(True, "active", "ok", http_status=code)
    if code is None:
        if endpoint.status == "starting":
            return HealthReport(False, "starting", f"not answering yet ({body})")
        return HealthReport(False, "unreachable", f"{endpoint.base_url} does not answer ({body})")
    if code in (401, 403):
        return HealthReport(False, "unreachable", f"the key was rejected (HTTP {code})", http_status=code)
    return HealthReport(False, "starting" if endpoint.status == "starting" else "unreachable",
                        f"HTTP {code}: {body[:200]}", http_status=code)


def _remote_end(details: dict[str, Any]) -> HealthReport | None:
    """For a server on a remote host (``after: serve``) whose tunnel has ended: how the server ended,
    from the state its host printed last into the tunnel's log; None for a server on this machine."""
    remote = details.get("remote")
    if not remote:
        return None
    for line in reversed(log_tail(details.get("log"), 40).splitlines()):
        try:
            state = json.loads(line)
        except ValueError:
            continue
        if isinstance(state, dict) and state.get("state") == "stopped":
            return HealthReport(False, "stopped", f"the server on {remote.get('host')} stopped: {state.get('reason')}")
        if isinstance(state, dict) and state.get("state") == "failed":
            return HealthReport(False, "failed", f"the server on {remote.get('host')} failed: {state.get('reason')}")
    return HealthReport(False, "failed", f"the SSH tunnel to {remote.get('host')} has ended (the link broke?); "
                        f"the server there stops by itself after {remote.get('idle_minutes')} idle minutes")


def _siblings(endpoint: Endpoint) -> list[Endpoint]:
    """Endpoints served by the same process (vLLM serving an adapter and its base)."""
    pid = endpoint.details.get("pid")
    if not pid:
        return [endpoint]
    return [e for e in list_endpoints() if e.kind == endpoint.kind and e.details.get("pid") == pid
            and e.details.get("create_time") == endpoint.details.get("create_time")]


def _record(endpoint: Endpoint, status: str, **details: Any) -> Endpoint:
    return save_endpoint(kind=endpoint.kind, name=endpoint.name, base_url=endpoint.base_url, model=endpoint.model,
                         status=status, job_id=endpoint.job_id, details={**endpoint.details, **details})


def refresh_status(endpoint: Endpoint, timeout: float = 1.0) -> tuple[Endpoint, HealthReport]:
    """Check a local or vLLM endpoint and record its status when it changed; returns both."""
    report = check_health(endpoint, timeout=timeout)
    if endpoint.kind in SERVER_KINDS and report.status != endpoint.status:
        extra = {"error": report.detail} if report.status == "failed" else \
            {"stopped_reason": report.detail} if report.status == "stopped" else {}
        endpoint = _record(endpoint, report.status, checked_at=report.checked_at, **extra)
    return endpoint, report


def wait_until_ready(endpoint: Endpoint, timeout: float = 300.0, poll: float = 0.5) -> tuple[Endpoint, HealthReport]:
    """Poll until the endpoint answers, its process dies, or ``timeout`` passes; records the outcome."""
    report = poll_until(lambda: check_health(endpoint, timeout=min(2.0, max(poll, 0.5))),
                        lambda r: r.ok or r.status in ("failed", "stopped"), interval=poll, timeout=timeout,
                        what=f"waiting for {endpoint.name}")
    if not report.ok and report.status not in ("failed", "stopped"):
        report = HealthReport(False, "failed", f"not ready after {timeout:.0f} s ({report.detail}); see "
                              f"{endpoint.details.get('log') or 'its log'}, or stop it with `legalft serve stop "
                              f"{endpoint.id}`")
    status = "active" if report.ok else report.status
    extra = {"error": report.detail} if status == "failed" else {"error": None}
    updated = [_record(e, status, checked_at=report.checked_at, **extra) for e in _siblings(endpoint)]
    return next(e for e in updated if e.model == endpoint.model), report


def list_servers(refresh: bool = True) -> list[Endpoint]:
    """Local and vLLM endpoints, newest first; with ``refresh`` a dead process is recorded as such.

    Only the processes are checked (no HTTP), so this is cheap enough for every page run.
    """
    servers = [e for e in list_endpoints() if e.kind in SERVER_KINDS]
    if not refresh:
        return servers
    out = []
    for endpoint in servers:
        if endpoint.details.get("pid") and endpoint.status in ("starting", "active") and _process(endpoint.details) is None:
            ended = _remote_end(endpoint.details)
            if ended is not None:
                endpoint = _record(endpoint, ended.status, **({"stopped_reason": ended.detail} if ended.status ==
                                                              "stopped" else {"error": ended.detail}))
            else:
                tail = log_tail(endpoint.details.get("log"), 8)
                endpoint = _record(endpoint, "failed", error="the server process has exited"
                                   + (f"; the end of its log:\n{tail}" if tail else ""))
        out.append(endpoint)
    return out


def loadable_by(config: ServeConfig, source: ModelSource) -> ModelSource:
    """``transformers serve`` loads full models only: an unmerged adapter is merged into a cache first
    (once per adapter content; the run folder is not written). vLLM serves adapters as they are."""
    if config.kind != "local" or not source.adapter_dir:
        return source
    from legalft.models import merged_for_serving

    try:
        merged = merged_for_serving(source.adapter_dir)
    except (OSError, ValueError, ImportError) as exc:
        raise ServeError(f"could not prepare {source.adapter_dir} for a CPU server (merging it into "
                         f"{source.model}): {exc}") from None
    return replace(source, model=str(merged), adapter_dir=None, adapter_rank=None,
                   chat_template_file=_template_file(merged) or source.chat_template_file)


@action("serve.start")
def start_server(
    target: str | Path | ModelSource,
    config: ServeConfig | None = None,
    *,
    wait: bool = True,
    timeout: float = 300.0,
    **overrides: Any,
) -> Endpoint:
    """Start a model server for ``target`` (``smoke``, a job id, a run/model/adapter folder); record it.

    Returns the endpoint: ``active`` once ``/health`` answers (with ``wait``), ``starting`` without
    ``wait``, or ``failed`` with ``details["error"]`` saying why and ending with the log's tail.
    Idempotent: a model already served by a live server of the same kind returns that endpoint.
    Keyword ``overrides`` set ``ServeConfig`` fields (``kind="vllm"``, ``port=8100``, ...).
    """
    config = replace(config, **overrides) if config else ServeConfig(**overrides)
    source = target if isinstance(target, ModelSource) else resolve_target(target)
    source = loadable_by(config, source)
    if config.kind == "local" and config.served_model_name:
        raise ServeError("a local server answers to its model folder's path; served_model_name is for vLLM only")
    names = served_models(source, config)
    for existing in list_endpoints(config.kind):
        if existing.model in names.values() and _process(existing.details) is not None:
            if existing.details.get("model_dir") in (source.model, source.adapter_dir):
                log.info("%s is already served at %s (pid %s)", existing.model, existing.base_url,
                         existing.details.get("pid"))
                return wait_until_ready(existing, timeout)[0] if wait and existing.status != "active" else existing
            raise ServeError(f"another {config.kind} server already serves the name {existing.model!r} "
                             f"(endpoint {existing.id}); stop it (`legalft serve stop {existing.id}`) or choose "
                             "another served_model_name")
    port = int(config.port) if config.port else free_port(config.host)
    command = build_command(source, config, port)
    log_path = subdir("servers") / f"{config.kind}-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        process = procs.spawn_detached(command, log_path=log_path, env=env,
                                       banner=f"\n=== {utc_now()} {' '.join(command)}\n")
    except OSError as exc:
        raise ServeError(f"could not run {command[0]}: {exc}") from None
    base_url = f"http://{_url_host(config.host)}:{port}/v1"
    details = {"pid": process.pid, "process": process.to_dict(), "port": port, "host": config.host,
               "log": str(log_path), "command": command, "model_dir": source.adapter_dir or source.model,
               "server": "vllm" if config.kind == "vllm" else "transformers serve", "started_at": utc_now(),
               "config": asdict(config)}
    if source.adapter_dir:
        details.update(adapter_dir=source.adapter_dir, base_model=source.model)
    name = config.name or f"{source.label} ({config.kind})"
    endpoint = save_endpoint(kind=config.kind, name=name, base_url=base_url, model=names["model"],
                             status="starting", job_id=source.job_id, details=details)
    if "base" in names:
        save_endpoint(kind=config.kind, name=f"{name} base", base_url=base_url, model=names["base"],
                      status="starting", details={**details, "role": "base", "adapter_endpoint_id": endpoint.id})
    log.info("started %s for %s on port %d (pid %d), log %s", details["server"], names["model"], port,
             process.pid, log_path)
    if not wait:
        return endpoint
    endpoint, report = wait_until_ready(endpoint, timeout)
    if not report.ok:
        stop_server(endpoint)  # a server that never came up must not hold the port or memory
        endpoint = _record(endpoint, "failed", error=report.detail)
    return endpoint


@action("serve.stop")
def stop_server(endpoint: Endpoint | int | str, timeout: float = 15.0) -> Endpoint:
    """Stop a server legalft started (its whole process group); records it ``stopped``. Idempotent."""
    from legalft.chat import resolve_endpoint

    endpoint = resolve_endpoint(endpoint)
    if endpoint.kind not in SERVER_KINDS or not endpoint.details.get("pid"):
        raise ServeError(f"endpoint {endpoint.id} ({endpoint.name}) was not started by legalft; stop it where it runs")
    if endpoint.details.get("remote"):  # served on the GPU host: stop it there, then the tunnel
        from legalft.targets.ssh import stop_remote_server

        stop_remote_server(endpoint.details, grace_seconds=timeout)
    else:
        procs.stop(_process_record(endpoint.details), grace_seconds=timeout)
    stopped_at = utc_now()
    updated = [_record(e, "stopped", stopped_at=stopped_at) for e in _siblings(endpoint)]
    return next(e for e in updated if e.id == endpoint.id)
