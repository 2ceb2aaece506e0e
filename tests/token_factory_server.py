"""A strict local stand-in for Nebius Token Factory, for tests only.

The real service cannot be reached from the test machine, and the ``openai`` SDK speaks httpx2,
which HTTP-mocking libraries do not intercept; so this is a real HTTP server that the real SDK
talks to. It implements the endpoints legalft uses, with the documented object shapes and status
progression, and it is as strict as the service: a missing or wrong key, a ``purpose`` other than
``fine-tune``, an unknown hyperparameter name, a suffix over 64 characters are refused, and a
conversation that does not end with the assistant fails the job at ``validating_files``.

Time is scaled: each phase (validating_files, queued, one per epoch) lasts ``phase_seconds``.

Faults are injected through a control endpoint that needs no key (it is not part of the API)::

    POST /_control {"faults": [{"status": 429, "count": 2, "retry_after": 1, "path": "/v1/files"}],
                    "fail_jobs": {"code": "internal_error", "message": "..."},
                    "deploy_error": "reason", "delay": 0.5, "judge_reply": "not json",
                    "chat_reply": "Section 1 of the X Act 2022 ..."}
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
JOB_FIELDS = {"model", "training_file", "validation_file", "hyperparameters", "suffix", "seed",
              "integrations", "method", "from_checkpoint", "tags"}
MAX_SUFFIX = 64

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
    requests: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        with self.lock:
            for name in ("files", "file_bodies", "jobs", "deployments"):
                getattr(self, name).clear()
            self.faults.clear()
            self.requests.clear()
            self.fail_jobs = self.deploy_error = self.judge_reply = self.chat_reply = None
            self.delay = 0.0

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
        if elapsed >= phase and "validated" not in state:
            state["validated"] = True
            problem = self.validate_training_file(job["training_file"])
            if problem is None and job.get("validation_file"):
                problem = self.validate_training_file(job["validation_file"])
            if problem:
                self.finish(job, "failed", error={"code": "invalid_training_file", "message": problem,
                                                  "param": "training_file"})
                return
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
            train_loss = round(2.0 * 0.7**epoch, 4)
            metrics: dict[str, Any] = {"step": epoch * steps_per_epoch, "train_loss": train_loss,
                                       "train_mean_token_accuracy": round(0.5 + 0.1 * epoch, 3)}
            if job.get("validation_file"):
                metrics["valid_loss"] = round(train_loss * 1.1, 4)
                metrics["valid_mean_token_accuracy"] = round(0.45 + 0.1 * epoch, 3)
            ckpt_id = f"ftckpt_{secrets.token_hex(8)}"
            job["_checkpoints"].append({
                "id": ckpt_id, "object": "fine_tuning.job.checkpoint", "created_at": int(time.time()),
                "fine_tuning_job_id": job["id"], "fine_tuned_model_checkpoint": f"{job['id']}:{ckpt_id}",
                "step_number": epoch * steps_per_epoch, "metrics": metrics,
                "result_files": [f"file-ckpt{secrets.token_hex(6)}"],
            })
            job["trained_steps"] = epoch * steps_per_epoch
            job["trained_tokens"] = epoch * state["tokens_per_epoch"]
            self.event(job, f"Epoch {epoch}/{epochs} completed: train loss {train_loss}")
        job["estimated_finish"] = int(state["t0"] + (2 + epochs) * phase) + 1
        if state["epochs_done"] >= epochs:
            self.event(job, "New fine-tuned model created")
            self.finish(job, "succeeded")

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

    def event(self, job: dict[str, Any], message: str, level: str = "info") -> None:
        job["_events"].append({"id": f"ftevent-{secrets.token_hex(8)}", "object": "fine_tuning.job.event",
                               "created_at": int(time.time()), "level": level, "message": message,
                               "type": "message", "data": {}})

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

    def deployment(self, name: str) -> dict[str, Any]:
        deployment = self.deployments.get(name)
        if deployment is None:
            raise ApiError(404, f"model {name!r} not found", code="model_not_found")
        if deployment["status"] == "validating" and time.time() - deployment["_t0"] >= self.deploy_seconds:
            if deployment["_error"]:
                deployment["status"], deployment["status_reason"] = "error", deployment["_error"]
            else:
                deployment["status"] = "active"
        return deployment


def public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}


def paginate(items: list[dict[str, Any]], query: dict[str, list[str]]) -> dict[str, Any]:
    limit = int(query.get("limit", ["20"])[0])
    after = query.get("after", [None])[0]
    start = 0
    if after:
        ids = [item["id"] for item in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    page = items[start:start + limit]
    return {"object": "list", "data": [public(i) for i in page], "has_more": start + limit < len(items)}


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
            if purpose != "fine-tune":
                raise ApiError(400, f"purpose must be 'fine-tune', got {purpose!r}", param="purpose")
            if "file" not in form:
                raise ApiError(400, "missing file", param="file")
            filename, content = form["file"]
            if len(content) > state.max_file_bytes:
                raise ApiError(413, "file exceeds the 5 GB limit", param="file")
            for number, line in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
                if line.strip():
                    try:
                        if not isinstance(json.loads(line), dict):
                            raise ValueError
                    except ValueError:
                        raise ApiError(400, f"line {number} is not a JSON object; the file must be JSONL",
                                       param="file") from None
            file_id = f"file-{secrets.token_hex(12)}"
            obj = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                   "filename": filename or "upload.jsonl", "purpose": "fine-tune", "status": "processed"}
            state.files[file_id], state.file_bodies[file_id] = obj, content
            return self.send_json(200, obj)
        if len(rest) == 1 and rest[0] in state.files:
            if method == "GET":
                return self.send_json(200, state.files[rest[0]])
            if method == "DELETE":
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
                return self.send_json(200, public(self.create_job(self.json_body(body))))
            for job in state.jobs.values():
                state.advance(job)
            return self.send_json(200, paginate(list(reversed(state.jobs.values())), query))
        job = state.jobs.get(rest[0])
        if job is None:
            raise ApiError(404, f"fine-tuning job {rest[0]!r} not found", code="job_not_found")
        state.advance(job)
        tail = rest[1:]
        if not tail and method == "GET":
            return self.send_json(200, public(job))
        if tail == ["cancel"] and method == "POST":
            if job["status"] in ("succeeded", "failed", "cancelled"):
                raise ApiError(400, f"job is already {job['status']}; it cannot be cancelled")
            state.finish(job, "cancelled")
            return self.send_json(200, public(job))
        if tail == ["events"] and method == "GET":
            return self.send_json(200, paginate(list(reversed(job["_events"])), query))
        if tail == ["checkpoints"] and method == "GET":
            return self.send_json(200, paginate(list(reversed(job["_checkpoints"])), query))
        raise ApiError(404, "not found")

    def create_job(self, data: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        unknown = set(data) - JOB_FIELDS
        if unknown:
            raise ApiError(400, f"unknown field(s): {', '.join(sorted(unknown))}", param=sorted(unknown)[0])
        model = data.get("model")
        if model not in FINE_TUNABLE:
            raise ApiError(400, f"model {model!r} is not available for fine-tuning", param="model")
        for name in ("training_file", "validation_file"):
            file_id = data.get(name)
            if file_id is None and name == "validation_file":
                continue
            if file_id not in state.files:
                raise ApiError(400, f"{name} {file_id!r} does not exist", param=name)
        hyper = data.get("hyperparameters") or {}
        if not isinstance(hyper, dict):
            raise ApiError(400, "hyperparameters must be an object", param="hyperparameters")
        for name, value in hyper.items():
            if name not in HYPERPARAMETERS:
                raise ApiError(400, f"unknown hyperparameter {name!r}", param=f"hyperparameters.{name}")
            self.check_hyperparameter(name, value)
        suffix = data.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > MAX_SUFFIX):
            raise ApiError(400, f"suffix must be a string of at most {MAX_SUFFIX} characters", param="suffix")
        seed = data.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ApiError(400, "seed must be an integer", param="seed")
        merged = {**HYPERPARAMETERS, **hyper}
        content = state.file_bodies[data["training_file"]]
        records = max(1, sum(1 for line in content.splitlines() if line.strip()))
        steps_per_epoch = max(1, -(-records // merged["batch_size"]))
        now = time.time()
        job_id = f"ftjob-{secrets.token_hex(12)}"
        job = {
            "id": job_id, "object": "fine_tuning.job", "created_at": int(now), "finished_at": None,
            "error": None, "hyperparameters": merged, "integrations": data.get("integrations") or [],
            "model": model, "organization_id": "", "result_files": [], "seed": seed or 0, "suffix": suffix,
            "status": "validating_files", "trained_tokens": None, "training_file": data["training_file"],
            "validation_file": data.get("validation_file"), "estimated_finish": None, "trained_steps": 0,
            "total_steps": steps_per_epoch * merged["n_epochs"], "fine_tuned_model": None,
            "_state": {"t0": now, "epochs_done": 0, "steps_per_epoch": steps_per_epoch,
                       "tokens_per_epoch": max(1, len(content) // 4)},
            "_events": [], "_checkpoints": [],
        }
        state.event(job, "Validating training file")
        state.jobs[job_id] = job
        return job

    @staticmethod
    def check_hyperparameter(name: str, value: Any) -> None:
        def bad(reason: str) -> ApiError:
            return ApiError(400, f"hyperparameter {name!r} {reason}, got {value!r}", param=f"hyperparameters.{name}")

        if name in ("packing", "lora"):
            if not isinstance(value, bool):
                raise bad("must be a boolean")
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("must be a number")
        if name in ("n_epochs", "batch_size", "lora_r", "lora_alpha", "context_length"):
            if not isinstance(value, int) or value < 1:
                raise bad("must be a positive integer")
        elif name == "learning_rate" and not value > 0:
            raise bad("must be positive")
        elif name in ("lora_dropout", "warmup_ratio") and not 0 <= value < 1:
            raise bad("must be in [0, 1)")
        elif value < 0:
            raise bad("must not be negative")

    def models(self, method: str, name: str | None, body: bytes) -> int:
        state = self.state
        if name is None:
            if method == "GET":
                return self.send_json(200, {"object": "list", "data": [public(state.deployment(n))
                                                                      for n in list(state.deployments)]})
            if method == "POST":
                return self.send_json(200, public(self.create_deployment(self.json_body(body))))
        elif method == "GET":
            return self.send_json(200, public(state.deployment(name)))
        elif method == "DELETE":
            state.deployment(name)
            del state.deployments[name]
            return self.send_json(200, {"name": name, "deleted": True})
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
        job_id, _, ckpt_id = str(data.get("source", "")).partition(":")
        job = state.jobs.get(job_id)
        if job is None or not any(c["id"] == ckpt_id for c in job["_checkpoints"]):
            raise ApiError(400, f"source {data.get('source')!r} is not a checkpoint of a fine-tuning job",
                           param="source")
        if FINE_TUNABLE[job["model"]] != base:
            raise ApiError(400, f"checkpoint was trained from {job['model']!r}, not {base!r}", param="base_model")
        full_name = f"{base}-LoRa:{name}-{secrets.token_hex(2)}"
        deployment = {"name": full_name, "base_model": base, "source": data["source"],
                      "description": data.get("description"), "status": "validating", "status_reason": None,
                      "created_at": int(time.time()), "_t0": time.time(), "_error": state.deploy_error}
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
