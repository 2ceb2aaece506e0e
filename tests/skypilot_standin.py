"""A strict stand-in for SkyPilot's provisioning, behind the same process boundary as the real
adapter (``legalft/targets/sky_adapter.py``): one JSON request on stdin, one JSON answer on stdout.

The product reaches it through LEGALFT_SKY_ADAPTER. It keeps its state and a log of every request
in files (each call is a new process), validates every task with the real SkyPilot (through the
real adapter in .venv-sky) when that is installed, and checks what a careful operator would: the
cluster must have autostop with ``wait_for: jobs``, autodown for spot or Kubernetes, no secret value
in any task, and no exec on a cluster that is not up. "Provisioning" hands out the test sshd as the
cluster (``gpu-test`` in LEGALFT_SSH_CONFIG); an exec runs the task's command there over SSH, as
SkyPilot's job queue would.

    LEGALFT_SKY_STANDIN_DIR   where state.json and requests.jsonl live
    LEGALFT_SKY_STANDIN_FAIL  "launch" or "exec": that step fails (after the cluster exists, for exec)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKY_PYTHON = ROOT / ".venv-sky" / "bin" / "python"


def _dir() -> Path:
    folder = Path(os.environ["LEGALFT_SKY_STANDIN_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state() -> dict:
    path = _dir() / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"clusters": {}, "jobs": 0}


def _save(state: dict) -> None:
    (_dir() / "state.json").write_text(json.dumps(state, indent=1))


def real_validate(tasks: list[dict]) -> dict | None:
    """The real SkyPilot's verdict on the tasks, or None when .venv-sky is absent."""
    if not SKY_PYTHON.exists():
        return None
    result = subprocess.run([str(SKY_PYTHON), str(ROOT / "legalft" / "targets" / "sky_adapter.py")],
                            input=json.dumps({"op": "validate", "tasks": tasks}), capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": ""})
    return json.loads(result.stdout.strip().splitlines()[-1])


def _no_secret_values(request: dict) -> str | None:
    text = json.dumps(request)
    for name in ("HF_TOKEN",):
        value = os.environ.get(name)
        if value and value in text:
            return f"the value of {name} is in the request: secrets must be named, never written"
    return None


def handle(request: dict) -> dict:
    op = request["op"]
    state = _state()
    leak = _no_secret_values(request)
    if leak:
        return {"ok": False, "error": leak}
    fail = os.environ.get("LEGALFT_SKY_STANDIN_FAIL")
    if op == "validate":
        verdict = real_validate(request["tasks"])
        return verdict or {"ok": True, "validated": len(request["tasks"]), "note": "SkyPilot not installed"}
    if op == "launch":
        task = request["task"]
        verdict = real_validate([task])
        if verdict is not None and not verdict.get("ok"):
            return verdict
        autostop = task.get("resources", {}).get("autostop") or {}
        if autostop.get("wait_for") != "jobs" or int(autostop.get("idle_minutes") or 0) < 1:
            return {"ok": False, "error": "autostop must be set with wait_for: jobs (SSH polls would keep it up)"}
        resources = task["resources"]
        must_down = bool(resources.get("use_spot")) or resources["infra"].split("/")[0] in ("kubernetes", "k8s")
        if bool(autostop.get("down")) != must_down:
            return {"ok": False, "error": f"autostop down must be {must_down} for this infra/spot setting"}
        state["clusters"][request["cluster"]] = {"status": "UP", "launched_at": time.time(), "task": task}
        _save(state)
        if fail == "launch":
            return {"ok": False, "error": "ResourcesUnavailableError: no H100 capacity in eu-north1 (stand-in)"}
        return {"ok": True, "cluster": request["cluster"], "ssh_host": "gpu-test",
                "ssh_config": os.environ.get("LEGALFT_SSH_CONFIG")}
    cluster = state["clusters"].get(request.get("cluster") or "")
    if op == "exec":
        if not cluster or cluster["status"] != "UP":
            return {"ok": False, "error": f"ClusterNotUpError: cluster {request.get('cluster')!r} is not up"}
        if fail == "exec":
            return {"ok": False, "error": "CommandError: setup failed on the cluster (stand-in)"}
        state["jobs"] += 1
        log = _dir() / f"job-{state['jobs']}.log"
        subprocess.Popen(["ssh", "-F", os.environ["LEGALFT_SSH_CONFIG"], "gpu-test", request["task"]["run"]],
                         stdout=open(log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True, env={**os.environ})
        _save(state)
        return {"ok": True, "job_id": state["jobs"]}
    if op == "cancel":
        return {"ok": True}
    if op == "down":
        if cluster:
            cluster["status"] = "TERMINATED"
            cluster["down_at"] = time.time()
            _save(state)
        return {"ok": True}
    if op == "cost_report":
        if not cluster:
            return {"ok": True, "cost": None}
        hours = ((cluster.get("down_at") or time.time()) - cluster["launched_at"]) / 3600
        return {"ok": True, "cost": round(hours * 2.95, 6)}
    return {"ok": False, "error": f"unknown op {op!r}"}


def main() -> int:
    request = json.loads(sys.stdin.read())
    with open(_dir() / "requests.jsonl", "a") as log:
        log.write(json.dumps({"op": request["op"], "request": request}) + "\n")
    answer = handle(request)
    print(json.dumps(answer))
    return 0 if answer.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
