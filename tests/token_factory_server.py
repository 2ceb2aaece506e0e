"""A strict local stand-in for Nebius Token Factory, for tests only.

The real service cannot be reached from the test machine, and the ``openai`` SDK speaks httpx2,
which HTTP-mocking libraries do not intercept; so this is a real HTTP server that the real SDK
talks to. It follows the fine-tuning API's published OpenAPI (version 20260630): request
validation answers HTTP 422 ``{"detail": [{"loc", "msg", "type", "input", "ctx"}]}`` with the
published ranges (``lora_r`` 8-128, ``lora_alpha`` >= 8, ``batch_size`` 1-64, ``n_epochs`` 1-20,
``context_length`` 8192-131072, ``max_grad_norm`` > 0...); unknown hyperparameter names are accepted
and ignored, as the service does (``additionalProperties: true``); job creation takes ``method``,
``from_checkpoint``, ``integrations`` (their secrets are write-only: never echoed) and ``tags``;
events (levels info/warn/error, types message/metrics) and checkpoints (``full_valid_loss`` among
the metrics) are listed oldest first with ``first_id``/``last_id``; ``GET /v1/files/{id}/content``
downloads a file (a checkpoint's weights among them); ``/v0/models`` takes a ``source`` that is
``job:checkpoint``, a file id or a Hugging Face repo URL, answers 404 to the first GET right after
the POST (the service may not have a status yet), and keeps a deleted model as ``deleted``.
A missing or wrong key, a ``purpose`` other than ``fine-tune``/``user_data`` and a conversation that
does not end with the assistant (failed at ``validating_files``) are refused as the service does.

Time is scaled: each phase (validating_files, queued, one per epoch) lasts ``phase_seconds``.

Faults are injected through a control endpoint that needs no key (it is not part of the API)::

    POST /_control {"faults": [{"status": 429, "count": 2, "retry_after": 1, "path": "/v1/files"}],
                    "fail_jobs": {"code": "internal_error", "message": "..."},
                    "deploy_error": "reason", "delay": 0.5, "judge_reply": "not json",
                    "chat_reply": "Section 1 of the X Act 2022 ...", "deploy_first_get": "404" | "empty" | null,
                    "start_running": true}
    POST /_control/reset
    GET  /_control/requests   -> [{"method", "path", "status", "time"}, ...]

or with command-line flags: ``python tests/token_factory_server.py --port 8765 --api-key KEY
[--phase-seconds S] [--rate-limit-first N --retry-after S] [--error-first N] [--fail-jobs CODE]``.
The base URL is then ``http://127.0.0.1:PORT/v1``. legalft only talks to it when
``LEGALFT_TOKEN_FACTORY_URL`` says so: the app never falls back to it.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_KEY = "standin-test-key"

# Fine-tuning name -> deployment base-model name, as the service documents it.
FINE_TUNABLE = {
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.3-70B-Instruct": "meta-llama/Llama-3.3-70B-Instruct",
}
SERVED_BASE_MODELS = sorted(set(FINE_TUNABLE.values()))

HYPERPARAMETERS = {
    "n_epochs": 3, "learning_rate": 1e-5, "batch_size": 8, "warmup_ratio": 0.0, "weight_decay": 0.0,
    "max_grad_norm": 1.0, "context_length": 8192, "packing": True, "lora": False, "lora_r": 8,
    "lora_alpha": 8, "lora_dropout": 0.0,
}
# The published SupervisedHParameters: (type, ge, le, gt) per name; other names are accepted and ignored.
HYPERPARAMETER_SCHEMA: dict[str, tuple[type, float | None, float | None, float | None]] = {
    "batch_size": (int, 1, 64, None), "learning_rate": (float, 0, None, None), "n_epochs": (int, 1, 20, None),
    "warmup_ratio": (float, 0, 1, None), "weight_decay": (float, 0, None, None), "packing": (bool, None, None, None),
    "max_grad_norm": (float, None, None, 0), "context_length": (int, 8192, 131072, None),
    "lora": (bool, None, None, None), "lora_r": (int, 8, 128, None), "lora_alpha": (int, 8, None, None),
    "lora_dropout": (float, 0, 1, None),
}
INTEGRATION_FIELDS = {  # type -> (required fields, write-only secrets)
    "wandb": ({"project", "api_key"}, {"api_key"}),
    "mlflow": ({"tracking_uri", "experiment_name", "run_name", "certificate_file", "username", "password"},
               {"password"}),
    "hf": ({"output_repo_name", "api_token"}, {"api_token"}),
}
MAX_SUFFIX = 64
UPLOAD_PURPOSES = ("fine-tune", "user_data")
# What a checkpoint holds when the test gives no real weights: an adapter's file names, stub bodies.
STUB_CHECKPOINT = {"adapter_config.json": b'{"peft_type": "LORA"}', "adapter_model.safetensors": b"stub"}

LEGAL_ANSWER = (
    "Under section 1 of the Interpretation Act 1978, words importing the masculine gender include "
    "the feminine unless the contrary intention appears."
)


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 type_: str = "invalid_request_error", headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.type = status, message, code, param, type_
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ValidationFailed(ApiError):
    """HTTP 422 with the service's (FastAPI/pydantic) shape: ``{"detail": [{loc, msg, type, ...}]}``."""

    def __init__(self, details: list[dict[str, Any]]):
        super().__init__(422, "; ".join(d["msg"] for d in details))
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"detail": self.details}


def field_error(loc: list[Any], msg: str, type_: str, value: Any = None, **ctx: Any) -> dict[str, Any]:
    item = {"loc": ["body", *loc], "msg": msg, "type": type_, "input": value}
    if ctx:
        item["ctx"] = ctx
    return item


@dataclass
class Fault:
    status: int
    count: int = 1
    retry_after: float | None = None
    path: str = ""  # prefix; empty matches every API path


@dataclass
class StandIn:
    """The server's whole state; every access holds ``lock``."""

    api_key: str = DEFAULT_KEY
    phase_seconds: float = 0.1
    deploy_seconds: float = 0.1
    max_file_bytes: int = 5 * 1024**3
    lock: threading.RLock = field(default_factory=threading.RLock)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    file_bodies: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    fail_jobs: dict[str, str] | None = None
    deploy_error: str | None = None
    delay: float = 0.0
    judge_reply: str | None = None  # a raw reply to structured-output requests (an off-schema judge)
    chat_reply: str | None = None  # the answer to every other chat request, instead of LEGAL_ANSWER
    deploy_first_get: str | None = "404"
    start_running: bool = False
    checkpoint_files: dict[str, bytes] = field(default_factory=dict)
    """Files every checkpoint holds (name -> bytes), e.g. a real adapter; by default a small stub."""
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        with self.lock:
            for name in ("files", "file_bodies", "jobs", "deployments"):
                getattr(self, name).clear()
            self.faults.clear()
            self.requests.clear()
            self.fail_jobs = self.deploy_error = self.judge_reply = self.chat_reply = None
            self.delay = 0.0
            self.deploy_first_get, self.start_running = "404", False

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and path.startswith(fault.path):
                    fault.count -= 1
                    return fault
        return None

    # --- jobs: status derived from the clock, events and checkpoints materialised once -------------

    def advance(self, job: dict[str, Any]) -> None:
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return
        state = job["_state"]
        elapsed = time.time() - state["t0"]
        phase = self.phase_seconds
        epochs = job["hyperparameters"]["n_epochs"]
        if (elapsed >= phase or job["status"] == "running") and "validated" not in state:
            state["validated"] = True
            problem = self.validate_training_file(job["training_file"])
            if problem is None and job.get("validation_file"):
                problem = self.validate_training_file(job["validation_file"])
            if problem:
                self.finish(job, "failed", error={"code": "invalid_training_file", "message": problem,
                                                  "param": "training_file"})
                return
            if not job.get("validation_file"):
                self.event(job, "No validation file: validation metrics will not be reported", level="warn")
            if job["status"] == "validating_files":
                self.event(job, "Files validated, job queued")
                job["status"] = "queued"
        if elapsed >= 2 * phase and job["status"] == "queued":
            job["status"] = "running"
            self.event(job, "Fine-tuning job started")
        if job["status"] != "running":
            return
        done = min(epochs, int((elapsed - 2 * phase) / phase))
        steps_per_epoch = state["steps_per_epoch"]
        while state["epochs_done"] < done:
            state["epochs_done"] += 1
            epoch = state["epochs_done"]
            if self.fail_jobs and epoch == 1 and not state.get("spared"):
                self.finish(job, "failed", error={"code": self.fail_jobs.get("code", "internal_error"),
                                                  "message": self.fail_jobs.get("message", "training failed"),
                                                  "param": None})
                return
            train_loss = round(state["start_loss"] * 0.7**epoch, 4)
            metrics: dict[str, Any] = {"step": epoch * steps_per_epoch, "train_loss": train_loss,
                                       "train_mean_token_accuracy": round(0.5 + 0.1 * epoch, 3)}
            if job.get("validation_file"):
                metrics["valid_loss"] = round(train_loss * 1.1, 4)
                metrics["valid_mean_token_accuracy"] = round(0.45 + 0.1 * epoch, 3)
                metrics["full_valid_loss"] = round(train_loss * 1.12, 4)
                metrics["full_valid_mean_token_accuracy"] = round(0.44 + 0.1 * epoch, 3)
            ckpt_id = f"ftckpt_{secrets.token_hex(8)}"
            result_files = [self.add_file(name, body, purpose="fine-tune-results")
                            for name, body in (self.checkpoint_files or STUB_CHECKPOINT).items()]
            job["_checkpoints"].append({
                "id": ckpt_id, "object": "fine_tuning.job.checkpoint", "created_at": int(time.time()),
                "fine_tuning_job_id": job["id"], "fine_tuned_model_checkpoint": f"{job['id']}:{ckpt_id}",
                "step_number": epoch * steps_per_epoch, "metrics": metrics, "result_files": result_files,
            })
            job["trained_steps"] = epoch * steps_per_epoch
            job["trained_tokens"] = epoch * state["tokens_per_epoch"]
            self.event(job, f"Epoch {epoch}/{epochs} completed: train loss {train_loss}")
            self.event(job, f"Step {epoch * steps_per_epoch}: train loss {train_loss}", type_="metrics",
                       data=metrics)
        job["estimated_finish"] = int(state["t0"] + (2 + epochs) * phase) + 1
        if state["epochs_done"] >= epochs:
            self.event(job, "New fine-tuned model created")
            self.finish(job, "succeeded")

    def add_file(self, filename: str, content: bytes, purpose: str) -> str:
        file_id = f"file-{secrets.token_hex(12)}"
        self.files[file_id] = {"id": file_id, "object": "file", "bytes": len(content),
                               "created_at": int(time.time()), "filename": filename, "purpose": purpose,
                               "status": "processed"}
        self.file_bodies[file_id] = content
        return file_id

    def finish(self, job: dict[str, Any], status: str, error: dict[str, Any] | None = None) -> None:
        job["status"] = status
        job["finished_at"] = int(time.time())
        job["estimated_finish"] = None
        if error:
            job["error"] = error
            self.event(job, f"Job failed: {error['message']}", level="error")
        elif status == "succeeded":
            job["result_files"] = [c["result_files"][0] for c in job["_checkpoints"][-1:]]
            self.event(job, "The job has successfully completed")
        else:
            self.event(job, "Job cancelled")

    def event(self, job: dict[str, Any], message: str, level: str = "info", type_: str = "message",
              data: dict[str, Any] | None = None) -> None:
        job["_events"].append({"id": f"ftevent-{secrets.token_hex(8)}", "object": "fine_tuning.job.event",
                               "created_at": int(time.time()), "level": level, "message": message,
                               "type": type_, "data": data or {}})

    def validate_training_file(self, file_id: str) -> str | None:
        for number, line in enumerate(self.file_bodies[file_id].decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if "messages" in record:
                messages = record["messages"]
                if not isinstance(messages, list) or not messages:
                    return f"line {number}: messages must be a non-empty list"
                if not isinstance(messages[-1], dict) or messages[-1].get("role") != "assistant":
                    return f"line {number}: the conversation must end with an assistant message"
            elif not ({"prompt", "completion"} <= record.keys() or "text" in record):
                return f"line {number}: expected messages, prompt/completion or text"
        return None

    def deployment(self, name: str, *, first_get: bool = False) -> dict[str, Any]:
        deployment = self.deployments.get(name)
        if deployment is None:
            raise ApiError(404, f"model {name!r} not found", code="model_not_found")
        if first_get and not deployment["_seen"]:
            deployment["_seen"] = True
            if self.deploy_first_get == "404":  # the service has not stored it yet
                raise ApiError(404, f"model {name!r} not found", code="model_not_found")
            if self.deploy_first_get == "empty":
                return {"name": name, "status": None}
        if deployment["status"] == "validating" and time.time() - deployment["_t0"] >= self.deploy_seconds:
            if deployment["_error"]:
                deployment["status"], deployment["status_reason"] = "error", deployment["_error"]
            else:
                deployment["status"] = "active"
        return deployment


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def paginate(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    """One page, oldest first (as the service lists), with ``first_id``/``last_id``."""
    limit = int(query.get("limit", ["20"])[0])
    after = query.get("after", [None])[0]
    start = 0
    if after:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start:start + limit]
    return {"object": "list", "data": [public(i) for i in page], "has_more": start + limit < len(items),
            "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}


class Handler(BaseHTTPRequestHandler):
    server_version = "TokenFactoryStandIn/1.0"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> StandIn:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    # --- plumbing ---------------------------------------------------------------------------------

    def dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = 500
        try:
            if path.startswith("/_control"):
                status = self.send_json(200, self.control(method, path, body))
                return
            if self.state.delay:
                time.sleep(self.state.delay)
            self.authenticate()
            fault = self.state.take_fault(path)
            if fault:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                message = "Rate limit exceeded" if fault.status == 429 else "Internal server error"
                raise ApiError(fault.status, message, type_="server_error" if fault.status >= 500 else
                               "rate_limit_error", headers=headers)
            status = self.route(method, path, query, body)
        except ApiError as exc:
            status = self.send_json(exc.status, exc.body(), exc.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if not path.startswith("/_control"):
                with self.state.lock:
                    self.state.requests.append({"method": method, "path": path, "status": status,
                                                "time": time.time()})

    def authenticate(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer ") or not header[7:].strip():
            raise ApiError(401, "You did not provide an API key.", code="missing_api_key",
                           type_="authentication_error")
        if not secrets.compare_digest(header[7:].strip(), self.state.api_key):
            # Like the service, the answer never echoes the key it was given.
            raise ApiError(401, "Invalid API key.", code="invalid_api_key", type_="authentication_error")

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> int:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        return status

    def send_bytes(self, status: int, data: bytes) -> int:
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        return status

    def json_body(self, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            raise ApiError(400, f"request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return data

    # --- control ----------------------------------------------------------------------------------

    def control(self, method: str, path: str, body: bytes) -> Any:
        state = self.state
        if path == "/_control/requests":
            with state.lock:
                return list(state.requests)
        if path == "/_control/reset":
            state.reset()
            return {"ok": True}
        data = self.json_body(body)
        with state.lock:
            for fault in data.get("faults", []):
                state.faults.append(Fault(**fault))
            if "fail_jobs" in data:
                state.fail_jobs = data["fail_jobs"]
            if "deploy_error" in data:
                state.deploy_error = data["deploy_error"]
            if "delay" in data:
                state.delay = float(data["delay"])
            if "judge_reply" in data:
                state.judge_reply = data["judge_reply"]
            if "chat_reply" in data:
                state.chat_reply = data["chat_reply"]
            if "deploy_first_get" in data:
                state.deploy_first_get = data["deploy_first_get"]
            if "start_running" in data:
                state.start_running = bool(data["start_running"])
        return {"ok": True}

    # --- API --------------------------------------------------------------------------------------

    def route(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> int:
        state = self.state
        parts = [unquote(p) for p in path.strip("/").split("/")]
        with state.lock:
            if parts[:2] == ["v1", "files"]:
                return self.files(method, parts[2:], body)
            if parts[:3] == ["v1", "fine_tuning", "jobs"]:
                return self.jobs(method, parts[3:], query, body)
            if parts == ["v1", "models"] and method == "GET":
                served = [{"id": m, "object": "model", "created": 0, "owned_by": "system"}
                          for m in SERVED_BASE_MODELS]
                custom = [{"id": d["name"], "object": "model", "created": d["created_at"], "owned_by": "custom"}
                          for d in state.deployments.values() if state.deployment(d["name"])["status"] == "active"]
                return self.send_json(200, {"object": "list", "data": served + custom})
            if parts[:2] == ["v0", "models"]:
                # The deployed name holds a "/" and a ":"; clients URL-quote it into one segment.
                name = unquote(path.strip("/")[len("v0/models/"):]) if len(parts) > 2 else None
                return self.models(method, name, body)
        if parts == ["v1", "chat", "completions"] and method == "POST":
            return self.chat(body)
        raise ApiError(404, f"no route for {method} {path}", code="not_found")

    def files(self, method: str, rest: list[str], body: bytes) -> int:
        state = self.state
        if method == "POST" and not rest:
            form = self.multipart(body)
            purpose = form.get("purpose", (None, b""))[1].decode()
            if purpose not in UPLOAD_PURPOSES:
                raise ApiError(400, f"purpose must be 'fine-tune', got {purpose!r}", param="purpose")
            if "file" not in form:
                raise ApiError(400, "missing file", param="file")
            filename, content = form["file"]
            if len(content) > state.max_file_bytes:
                raise ApiError(413, "file exceeds the 5 GB limit", param="file")
            if purpose == "fine-tune":
                for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
                    if line.strip():
                        try:
                            if not isinstance(json.loads(line), dict):
                                raise ValueError
                        except ValueError:
                            raise ApiError(400, f"line {number} is not a JSON object; the file must be JSONL",
                                           param="file") from None
            file_id = state.add_file(filename or "upload.jsonl", content, purpose)
            return self.send_json(200, state.files[file_id])
        if rest and rest[0] in state.files:
            if len(rest) == 1 and method == "GET":
                return self.send_json(200, state.files[rest[0]])
            if rest[1:] == ["content"] and method == "GET":
                return self.send_bytes(200, state.file_bodies[rest[0]])
            if len(rest) == 1 and method == "DELETE":
                del state.files[rest[0]]
                return self.send_json(200, {"id": rest[0], "object": "file", "deleted": True})
        raise ApiError(404, "file not found", code="file_not_found")

    def multipart(self, body: bytes) -> dict[str, tuple[str | None, bytes]]:
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, "expected multipart/form-data")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        form: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            form[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return form

    def jobs(self, method: str, rest: list[str], query: dict[str, list[str]], body: bytes) -> int:
        state = self.state
        if not rest:
            if method == "POST":
                return self.send_json(200, self.job_view(self.create_job(self.json_body(body))))
            for job in state.jobs.values():
                state.advance(job)
            page = paginate(list(state.jobs.values()), query)
            page["data"] = [self.job_view(state.jobs[j["id"]]) for j in page["data"]]
            return self.send_json(200, page)
        job = state.jobs.get(rest[0])
        if job is None:
            raise ApiError(404, f"fine-tuning job {rest[0]!r} not found", code="job_not_found")
        state.advance(job)
        tail = rest[1:]
        if not tail and method == "GET":
            return self.send_json(200, self.job_view(job))
        if tail == ["cancel"] and method == "POST":
            if job["status"] in ("succeeded", "failed", "cancelled"):
                raise ApiError(400, f"job is already {job['status']}; it cannot be cancelled")
            state.finish(job, "cancelled")
            return self.send_json(200, self.job_view(job))
        if tail == ["events"] and method == "GET":
            return self.send_json(200, paginate(job["_events"], query))
        if tail == ["checkpoints"] and method == "GET":
            return self.send_json(200, paginate(job["_checkpoints"], query))
        if len(tail) == 2 and tail[0] == "checkpoints" and method == "GET":
            for ckpt in job["_checkpoints"]:
                if ckpt["id"] == tail[1]:
                    return self.send_json(200, public(ckpt))
            raise ApiError(404, f"checkpoint {tail[1]!r} not found", code="checkpoint_not_found")
        raise ApiError(404, "not found")

    @staticmethod
    def job_view(job: dict[str, Any]) -> dict[str, Any]:
        """The job as the service returns it: write-only secrets are never echoed."""
        view = public(job)
        view["integrations"] = [
            {"type": i["type"], i["type"]: {k: v for k, v in i[i["type"]].items()
                                           if k not in INTEGRATION_FIELDS[i["type"]][1]}}
            for i in job.get("integrations") or []]
        if view.get("from_checkpoint"):
            view["from_checkpoint"] = {k: v for k, v in view["from_checkpoint"].items() if k != "token"}
        return view

    def create_job(self, data: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        problems: list[dict[str, Any]] = []
        for name in ("model", "training_file"):
            if name not in data:
                problems.append(field_error([name], "Field required", "missing", data))
            elif not isinstance(data[name], str):
                problems.append(field_error([name], "Input should be a valid string", "string_type", data[name]))
        hyper = data.get("hyperparameters")
        method = data.get("method")
        if method is not None:
            if not isinstance(method, dict) or method.get("type", "supervised") not in ("supervised", "spec-draft"):
                problems.append(field_error(["method"], "Input tag does not match any of the expected tags: "
                                            "'supervised', 'spec-draft'", "union_tag_invalid", method))
            elif method.get("type", "supervised") == "supervised":
                inner = (method.get("supervised") or {}).get("hyperparameters")
                if not isinstance(method.get("supervised"), dict):
                    problems.append(field_error(["method", "supervised", "supervised"], "Field required",
                                                "missing", method))
                elif inner is not None:
                    problems += self.check_hyperparameters(inner, ["method", "supervised", "supervised",
                                                                   "hyperparameters"])
                    hyper = {**(hyper or {}), **inner}
        if data.get("hyperparameters") is not None:
            problems += self.check_hyperparameters(data["hyperparameters"], ["hyperparameters"])
        suffix = data.get("suffix")
        if suffix is not None and not isinstance(suffix, str):
            problems.append(field_error(["suffix"], "Input should be a valid string", "string_type", suffix))
        elif suffix is not None and len(suffix) > MAX_SUFFIX:
            problems.append(field_error(["suffix"], f"String should have at most {MAX_SUFFIX} characters",
                                        "string_too_long", suffix, max_length=MAX_SUFFIX))
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            problems.append(field_error(["seed"], "Input should be a valid integer", "int_type", seed))
        tags = data.get("tags")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            problems.append(field_error(["tags"], "Input should be a valid list of strings", "list_type", tags))
        problems += self.check_integrations(data.get("integrations"))
        start = data.get("from_checkpoint")
        problems += self.check_from_checkpoint(start)
        if problems:
            raise ValidationFailed(problems)
        model = data["model"]
        if model not in FINE_TUNABLE:
            raise ApiError(400, f"model {model!r} is not available for fine-tuning", param="model")
        for name in ("training_file", "validation_file"):
            file_id = data.get(name)
            if file_id is None and name == "validation_file":
                continue
            if file_id not in state.files:
                raise ApiError(400, f"{name} {file_id!r} does not exist", param=name)
        start_loss = 2.0
        if start and start.get("type", "hf") == "ft":
            parent = state.jobs.get(start["job_id"])
            ckpt = next((c for c in (parent or {}).get("_checkpoints", []) if c["id"] == start["checkpoint_id"]), None)
            if ckpt is None:
                raise ApiError(400, f"checkpoint {start['checkpoint_id']!r} of job {start['job_id']!r} does not "
                               "exist", param="from_checkpoint")
            if parent["model"] != model:
                raise ApiError(400, f"checkpoint was trained from {parent['model']!r}, not {model!r}",
                               param="from_checkpoint")
            start_loss = ckpt["metrics"]["train_loss"] / 0.7  # training goes on from where it was
        known = {k: v for k, v in (hyper or {}).items() if k in HYPERPARAMETER_SCHEMA}  # others: ignored
        merged = {**HYPERPARAMETERS, **known}
        content = state.file_bodies[data["training_file"]]
        records = max(1, sum(1 for line in content.splitlines() if line.strip()))
        steps_per_epoch = max(1, -(-records // merged["batch_size"]))
        now = time.time()
        job_id = f"ftjob-{secrets.token_hex(12)}"
        job = {
            "id": job_id, "object": "fine_tuning.job", "created_at": int(now), "finished_at": None,
            "error": None, "hyperparameters": merged, "integrations": data.get("integrations") or [],
            "method": {"type": "supervised", "supervised": {"hyperparameters": merged}},
            "from_checkpoint": start, "tags": tags or [],
            "model": model, "organization_id": "", "result_files": [], "seed": seed or 0, "suffix": suffix,
            "status": "running" if state.start_running else "validating_files", "trained_tokens": None,
            "training_file": data["training_file"],
            "validation_file": data.get("validation_file"), "estimated_finish": None, "trained_steps": 0,
            "total_steps": steps_per_epoch * merged["n_epochs"], "fine_tuned_model": None,
            "_state": {"t0": now - (2 * state.phase_seconds if state.start_running else 0), "epochs_done": 0,
                       "steps_per_epoch": steps_per_epoch, "tokens_per_epoch": max(1, len(content) // 4),
                       "start_loss": start_loss},
            "_events": [], "_checkpoints": [],
        }
        state.event(job, "Validating training file")
        state.jobs[job_id] = job
        return job

    @staticmethod
    def check_hyperparameters(hyper: Any, loc: list[Any]) -> list[dict[str, Any]]:
        """The published ``SupervisedHParameters`` checks, in pydantic's words; unknown names pass."""
        if not isinstance(hyper, dict):
            return [field_error(loc, "Input should be a valid dictionary or object", "model_attributes_type", hyper)]
        problems = []
        for name, value in hyper.items():
            if name not in HYPERPARAMETER_SCHEMA:
                continue  # additionalProperties: true; the service ignores names it does not know
            kind, ge, le, gt = HYPERPARAMETER_SCHEMA[name]
            where = [*loc, name]
            if kind is bool:
                if not isinstance(value, bool):
                    problems.append(field_error(where, "Input should be a valid boolean", "bool_type", value))
                continue
            if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(field_error(where, "Input should be a valid integer", "int_type", value))
                continue
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
                problems.append(field_error(where, "Input should be a valid number", "float_type", value))
                continue
            if ge is not None and value < ge:
                problems.append(field_error(where, f"Input should be greater than or equal to {ge:g}",
                                            "greater_than_equal", value, ge=ge))
            elif le is not None and value > le:
                problems.append(field_error(where, f"Input should be less than or equal to {le:g}",
                                            "less_than_equal", value, le=le))
            elif gt is not None and not value > gt:
                problems.append(field_error(where, f"Input should be greater than {gt:g}", "greater_than",
                                            value, gt=gt))
        return problems

    @staticmethod
    def check_integrations(integrations: Any) -> list[dict[str, Any]]:
        if integrations is None:
            return []
        if not isinstance(integrations, list):
            return [field_error(["integrations"], "Input should be a valid list", "list_type", integrations)]
        problems = []
        for index, item in enumerate(integrations):
            kind = item.get("type", "wandb") if isinstance(item, dict) else None
            if kind not in INTEGRATION_FIELDS:
                problems.append(field_error(["integrations", index, "type"],
                                            "Input should be 'wandb', 'mlflow' or 'hf'", "literal_error", kind))
                continue
            config = item.get(kind)
            if not isinstance(config, dict):
                problems.append(field_error(["integrations", index, kind], "Field required", "missing", item))
                continue
            for name in sorted(INTEGRATION_FIELDS[kind][0] - config.keys()):
                problems.append(field_error(["integrations", index, kind, name], "Field required", "missing", config))
        return problems

    @staticmethod
    def check_from_checkpoint(start: Any) -> list[dict[str, Any]]:
        if start is None:
            return []
        if not isinstance(start, dict) or start.get("type", "hf") not in ("hf", "ft"):
            return [field_error(["from_checkpoint"], "Input should be a Hugging Face or fine-tuning checkpoint",
                                "union_tag_invalid", start)]
        # The published FTCheckpointParameters names only ``type``; the job and checkpoint ids are this
        # stand-in's reading of it (see docs/managed-rules.md).
        needed = ("repo",) if start.get("type", "hf") == "hf" else ("job_id", "checkpoint_id")
        return [field_error(["from_checkpoint", name], "Field required", "missing", start)
                for name in needed if not isinstance(start.get(name), str)]

    def models(self, method: str, name: str | None, body: bytes) -> int:
        state = self.state
        if name is None:
            if method == "GET":
                return self.send_json(200, {"object": "list", "data": [public(state.deployment(n))
                                                                      for n in list(state.deployments)]})
            if method == "POST":
                return self.send_json(200, public(self.create_deployment(self.json_body(body))))
        elif method == "GET":
            return self.send_json(200, public(state.deployment(name, first_get=True)))
        elif method == "DELETE":
            deployment = state.deployment(name)
            deployment["status"], deployment["status_reason"] = "deleted", "deleted by the user"
            return self.send_json(200, public(deployment))
        raise ApiError(405, "method not allowed")

    def create_deployment(self, data: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        unknown = set(data) - {"name", "base_model", "source", "description"}
        if unknown:
            raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        name = data.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            raise ApiError(400, "name must be 1-64 letters, digits, '.', '_' or '-'", param="name")
        base = data.get("base_model")
        if base not in SERVED_BASE_MODELS:
            hint = f"; did you mean {FINE_TUNABLE[base]!r}?" if base in FINE_TUNABLE else ""
            raise ApiError(400, f"base_model {base!r} cannot be deployed{hint}", param="base_model")
        source = str(data.get("source", ""))
        if source.startswith("https://huggingface.co/"):
            pass  # a Hugging Face repo: the service fetches it itself
        elif source in state.files:
            if state.files[source]["purpose"] != "user_data":
                raise ApiError(400, f"file {source!r} is not an uploaded model (purpose user_data)", param="source")
        else:
            job_id, _, ckpt_id = source.partition(":")
            job = state.jobs.get(job_id)
            if job is None or not any(c["id"] == ckpt_id for c in job["_checkpoints"]):
                raise ApiError(400, f"source {source!r} is not a checkpoint of a fine-tuning job, a file id or "
                               "a Hugging Face repo URL", param="source")
            if FINE_TUNABLE[job["model"]] != base:
                raise ApiError(400, f"checkpoint was trained from {job['model']!r}, not {base!r}",
                               param="base_model")
        full_name = f"{base}-LoRa:{name}-{secrets.token_hex(2)}"
        deployment = {"name": full_name, "base_model": base, "source": source,
                      "description": data.get("description"), "status": "validating", "status_reason": None,
                      "created_at": int(time.time()), "_t0": time.time(), "_error": state.deploy_error,
                      "_seen": False}
        state.deployments[full_name] = deployment
        return deployment

    def chat(self, body: bytes) -> int:
        state = self.state
        data = self.json_body(body)
        model = data.get("model")
        with state.lock:
            known = model in SERVED_BASE_MODELS or (
                model in state.deployments and state.deployment(model)["status"] == "active")
        if not known:
            raise ApiError(404, f"model {model!r} does not exist or is not active", code="model_not_found")
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "messages must be a non-empty list", param="messages")
        answer = state.chat_reply or f"{LEGAL_ANSWER} (answered by {model})"
        response_format = data.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            # Structured output: an object that satisfies the schema (or the raw reply set by /_control).
            schema = (response_format.get("json_schema") or {}).get("schema") or {}
            answer = state.judge_reply if state.judge_reply is not None else json.dumps(_instance(schema))
        completion_id = f"chatcmpl-{secrets.token_hex(8)}"
        created = int(time.time())
        usage = {"prompt_tokens": sum(len(str(m.get("content", ""))) // 4 for m in messages),
                 "completion_tokens": len(answer) // 4}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not data.get("stream"):
            return self.send_json(200, {
                "id": completion_id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": answer}}],
                "usage": usage,
            })
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        words = answer.split(" ")
        for index, word in enumerate(words):
            piece = word if index == 0 else " " + word
            chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        final = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
        self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
        self.wfile.flush()
        self.close_connection = True
        return 200


def _instance(schema: dict[str, Any]) -> Any:
    """A value the JSON schema allows: numbers at their maximum, booleans true, every property filled."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        return {name: _instance(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind in ("integer", "number"):
        return schema.get("maximum", schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    return "stand-in"


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: StandIn):
        super().__init__(address, Handler)
        self.state = state

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def start_server(port: int = 0, **config: Any) -> StandInServer:
    """Start the stand-in on a background thread (``port=0``: a free port); ``.shutdown()`` stops it."""
    server = StandInServer(("127.0.0.1", port), StandIn(**config))
    threading.Thread(target=server.serve_forever, name="token-factory-stand-in", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEFAULT_KEY, help="the only key accepted")
    parser.add_argument("--phase-seconds", type=float, default=1.0, help="length of each job phase")
    parser.add_argument("--deploy-seconds", type=float, default=2.0, help="time a deployment stays validating")
    parser.add_argument("--rate-limit-first", type=int, default=0, metavar="N", help="answer 429 to the first N calls")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds sent with 429")
    parser.add_argument("--error-first", type=int, default=0, metavar="N", help="answer 500 to the first N calls")
    parser.add_argument("--fail-jobs", metavar="CODE", help="fail every job after its first epoch with CODE")
    args = parser.parse_args(argv)
    state = StandIn(api_key=args.api_key, phase_seconds=args.phase_seconds, deploy_seconds=args.deploy_seconds)
    if args.rate_limit_first:
        state.faults.append(Fault(429, args.rate_limit_first, args.retry_after))
    if args.error_first:
        state.faults.append(Fault(500, args.error_first))
    if args.fail_jobs:
        state.fail_jobs = {"code": args.fail_jobs, "message": "the stand-in was told to fail this job"}
    server = StandInServer(("127.0.0.1", args.port), state)
    print(f"Token Factory stand-in listening on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
