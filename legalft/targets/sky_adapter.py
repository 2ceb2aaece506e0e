"""SkyPilot behind a process boundary: run with ``.venv-sky``'s python, one JSON request on stdin,
one JSON answer on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``).

This file imports nothing of legalft (SkyPilot's environment does not have our pins), and awaits
every SDK request id it gets (``sky.stream_and_get`` / ``sky.get``), so an answer means done.

    {"op": "validate", "tasks": [TASK, ...]}                 schema check by SkyPilot itself
    {"op": "launch", "cluster": NAME, "task": TASK}          provision (autostop from the task)
    {"op": "exec", "cluster": NAME, "task": TASK, "secrets": [NAME, ...]}
    {"op": "cancel", "cluster": NAME, "job_id": ID}
    {"op": "down", "cluster": NAME}
    {"op": "cost_report", "cluster": NAME}
    {"op": "status", "cluster": NAME}

Secret values are read from this process's environment into the task (``update_secrets``); they
are never in the request, a task file or a log.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _task(config: dict[str, Any], secrets: list[str] | None = None):
    import sky

    config = dict(config)
    named = dict(config.pop("secrets", None) or {})
    task = sky.Task.from_yaml_config(config)
    values = {name: os.environ[name] for name in [*named, *(secrets or [])] if os.environ.get(name)}
    if values:
        task.update_secrets(values)
    return task


def handle(request: dict[str, Any]) -> dict[str, Any]:
    import sky

    op = request["op"]
    if op == "validate":
        from sky.utils import common_utils, schemas

        notes = []
        for config in request["tasks"]:
            # SkyPilot's own schemas first (offline), then the full task, which also looks the
            # accelerators up in SkyPilot's catalogue (online: said so when it cannot be reached).
            common_utils.validate_schema(config, schemas.get_task_schema(), "Invalid task YAML: ")
            if config.get("resources"):
                common_utils.validate_schema(config["resources"], schemas.get_resources_schema(),
                                             "Invalid resources YAML: ")
            try:
                _task(config)
            except Exception as exc:
                if "ConnectionError" not in type(exc).__name__ and "Max retries" not in str(exc):
                    raise
                notes.append("SkyPilot's catalogue is unreachable: the accelerator names were not looked up")
        return {"ok": True, "validated": len(request["tasks"]), "notes": sorted(set(notes))}
    if op == "launch":
        task = _task(request["task"])
        job_id, handle_ = sky.stream_and_get(sky.launch(task, cluster_name=request["cluster"]))
        return {"ok": True, "cluster": request["cluster"], "ssh_host": request["cluster"], "job_id": job_id}
    if op == "exec":
        task = _task(request["task"], request.get("secrets"))
        job_id, _ = sky.stream_and_get(sky.exec(task, cluster_name=request["cluster"]))
        return {"ok": True, "job_id": job_id}
    if op == "cancel":
        ids = [request["job_id"]] if request.get("job_id") is not None else None
        sky.get(sky.cancel(request["cluster"], job_ids=ids, all=ids is None))
        return {"ok": True}
    if op == "down":
        try:
            sky.get(sky.down(request["cluster"]))
        except Exception as exc:
            if "does not exist" not in str(exc) and "not found" not in str(exc).lower():
                raise
        return {"ok": True}
    if op == "cost_report":
        for report in sky.get(sky.cost_report()) or []:
            name = report.get("name") if isinstance(report, dict) else getattr(report, "name", None)
            if name == request["cluster"]:
                cost = report.get("total_cost") if isinstance(report, dict) else getattr(report, "total_cost", None)
                return {"ok": True, "cost": cost}
        return {"ok": True, "cost": None}
    if op == "status":
        records = sky.get(sky.status([request["cluster"]]))
        return {"ok": True, "clusters": [str(getattr(r, "status", r.get("status") if isinstance(r, dict) else r))
                                         for r in records or []]}
    return {"ok": False, "error": f"unknown op {op!r}"}


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
        answer = handle(request)
    except Exception as exc:  # noqa: BLE001 - every failure goes back as an answer, with its reason
        answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(answer, default=str))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
