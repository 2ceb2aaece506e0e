"""A GPU that SkyPilot provisions (Nebius natively: ``infra: nebius/<region>``, ``H100:1``), and
releases when the work is done.

SkyPilot's pins clash with this app's (click, uvicorn, protobuf), so it lives in its own environment
(``.venv-sky``, ``make sky``) and is reached through a process boundary: ``sky_adapter.py`` run by
that environment's python, one JSON request on stdin, one JSON answer on stdout, every SDK request
id awaited. It is called only at lifecycle transitions: launch, exec, cancel, down, cost report;
never on the Monitor's 2-second refresh (the follower reads the run over SSH, through the ssh
config entry SkyPilot writes for each cluster).

Three layers stop the bill: (1) when training ends the follower pulls the adapter and runs
``down``; (2) SkyPilot's autostop is the safety net, with ``wait_for: jobs`` (the default also counts
SSH sessions as activity, and the follower's polls would keep the VM alive for ever), and autodown
for spot instances and Kubernetes; (3) a launch that fails before the job starts is torn down here.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from legalft.errors import ServiceError, UsageError
from legalft.home import project_root
from legalft.targets.base import Target, TargetCheck
from legalft.targets.ssh import PASSED_SECRETS, PASSED_SETTINGS, SshTarget, remote_env

log = logging.getLogger(__name__)

ADAPTER_ENV = "LEGALFT_SKY_ADAPTER"
"""A command line that speaks the adapter's JSON protocol instead of ``.venv-sky``'s python + sky_adapter.py."""
SKY_PYTHON_ENV = "LEGALFT_SKY_PYTHON"
NEBIUS_CREDENTIALS = Path("~/.nebius/credentials.json")
REMOTE_ROOT = "~/legalft"
#: GPU memory of the accelerators SkyPilot names, for the memory estimate before anything is billed.
ACCELERATOR_MEMORY_GIB = {"H100": (80.0, "9.0"), "H200": (141.0, "9.0"), "B200": (180.0, "10.0"),
                          "A100-80GB": (80.0, "8.0"), "A100": (40.0, "8.0"), "L40S": (48.0, "8.9"),
                          "L4": (24.0, "8.9"), "A10G": (24.0, "8.6")}
INSTALL_HINT = "install SkyPilot in its own environment: `make sky` (creates .venv-sky with skypilot[nebius])"


def sky_python() -> Path:
    return Path(os.environ.get(SKY_PYTHON_ENV) or project_root() / ".venv-sky" / "bin" / "python")


def adapter_command() -> list[str]:
    override = os.environ.get(ADAPTER_ENV)
    if override:
        return shlex.split(override)
    return [str(sky_python()), str(Path(__file__).with_name("sky_adapter.py"))]


def call_adapter(request: dict[str, Any], *, timeout: float = 3600.0) -> dict[str, Any]:
    """One request to SkyPilot through its own environment; the answer, or a ``ServiceError`` saying why."""
    command = adapter_command()
    if not os.environ.get(ADAPTER_ENV) and not Path(command[0]).exists():
        raise ServiceError(f"SkyPilot is not installed: {INSTALL_HINT}")
    env = {**os.environ, "PYTHONPATH": ""}  # the adapter imports sky from its own environment, nothing of ours
    try:
        result = subprocess.run(command, input=json.dumps(request), capture_output=True, text=True,
                                timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise ServiceError(f"SkyPilot did not answer {request['op']} within {timeout:.0f} s") from None
    lines = [line for line in result.stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        tail = "\n".join(result.stderr.strip().splitlines()[-8:])
        raise ServiceError(f"SkyPilot's {request['op']} gave no answer (exit {result.returncode}): {tail}")
    answer = json.loads(lines[-1])
    if not answer.get("ok"):
        raise ServiceError(f"SkyPilot {request['op']}: {answer.get('error') or 'failed'}")
    return answer


def cluster_name(job_id: str) -> str:
    """SkyPilot cluster names: lower case, digits and dashes, a letter first, short."""
    return ("legalft-" + re.sub(r"[^a-z0-9-]", "-", job_id.lower()))[:50].rstrip("-")


@dataclass
class SkyPilotTarget(Target):
    """Provision with SkyPilot: ``infra`` such as ``nebius/eu-north1``, ``accelerators`` such as ``H100:1``."""

    kind: str = "skypilot"
    infra: str = ""
    accelerators: str = "H100:1"
    use_spot: bool = False
    idle_minutes: int = 10
    """Autostop's safety net: minutes without a running job before SkyPilot stops the cluster itself."""
    num_nodes: int = 1
    image_id: str | None = None
    """A prebuilt image with the pinned set, to skip the first-run environment build."""
    disk_size: int = 256
    remote_root: str = REMOTE_ROOT
    remote_python: str | None = None
    """A python on the image that already has the pinned set; when unset the environment is built once."""
    hourly_rate: float | None = None
    """Per GPU-hour; from the price catalogue (H100) unless given."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9-]+(:\d+)?", self.accelerators or ""):
            raise UsageError(f"accelerators must look like H100:1 or H200:8, not {self.accelerators!r}")
        if self.idle_minutes is not None and int(self.idle_minutes) < 1:
            raise UsageError("idle minutes must be at least 1")
        if self.hourly_rate is None:
            try:
                from legalft.costs import effective_prices

                self.hourly_rate = effective_prices().default("gpu_hourly").value
            except Exception:  # noqa: BLE001 - a price is a nicety here; the cost report is the actual
                self.hourly_rate = None

    def describe(self) -> str:
        return f"{self.accelerators} on {self.infra} via SkyPilot" + (" (spot)" if self.use_spot else "")

    @property
    def gpu_count(self) -> int:
        return int(self.accelerators.partition(":")[2] or 1)

    @property
    def billed_gpus(self) -> int:
        """The rate is per GPU-hour: GPUs per node × nodes."""
        return self.gpu_count * int(self.num_nodes)

    @property
    def autodown(self) -> bool:
        """Spot instances and Kubernetes pods cannot be stopped and restarted: autostop tears them down."""
        return self.use_spot or self.infra.split("/")[0].lower() in ("kubernetes", "k8s")

    # --- the tasks ---------------------------------------------------------------------------------

    def provision_task(self, job_id: str) -> dict[str, Any]:
        """The cluster: resources, autostop with ``wait_for: jobs``. Code and data go over SSH after."""
        resources: dict[str, Any] = {
            "infra": self.infra, "accelerators": self.accelerators, "use_spot": bool(self.use_spot),
            "disk_size": int(self.disk_size),
            "autostop": {"idle_minutes": int(self.idle_minutes), "down": self.autodown, "wait_for": "jobs"},
        }
        if self.image_id:
            resources["image_id"] = self.image_id
        return {"name": cluster_name(job_id), "num_nodes": int(self.num_nodes), "resources": resources}

    def train_task(self, job_id: str, info: dict[str, Any]) -> dict[str, Any]:
        """The job that trains: its run command lasts as long as training, so autostop waits for it.
        Secrets are named only: their values reach the adapter in its environment."""
        root, run = info["root"], info["remote_run"]
        command = (f"cd {shlex.quote(run)} && {remote_env(root)} {shlex.quote(info['python'])} "
                   f"-m legalft.targets.probe run {shlex.quote(job_id)} {shlex.quote(run)}")
        task: dict[str, Any] = {"name": f"{cluster_name(job_id)}-train", "run": command}
        envs = {name: os.environ[name] for name in PASSED_SETTINGS if os.environ.get(name)}
        if envs:
            task["envs"] = envs
        secrets = [name for name in PASSED_SECRETS if os.environ.get(name)]
        if secrets:
            task["secrets"] = {name: None for name in secrets}
        return task

    # --- before anything is billed -----------------------------------------------------------------

    def check(self) -> TargetCheck:
        check = TargetCheck(target=f"skypilot:{self.infra}")
        gpu = self.accelerators.partition(":")[0]
        if gpu in ACCELERATOR_MEMORY_GIB:
            check.facts["gpus"] = [{"name": gpu, "memory_gib": ACCELERATOR_MEMORY_GIB[gpu][0],
                                    "compute_capability": ACCELERATOR_MEMORY_GIB[gpu][1]}] * self.gpu_count
        check.facts.update(cpu_count=16, ram_gib=128.0, python="3.11")
        if self.hourly_rate is not None:
            check.facts["estimated_hourly"] = round(self.hourly_rate * self.gpu_count, 2)
        if not os.environ.get(ADAPTER_ENV) and not sky_python().exists():
            check.problems.append(f"SkyPilot is not installed: {INSTALL_HINT}")
            return check
        if self.infra.split("/")[0].lower() == "nebius" and not os.environ.get(ADAPTER_ENV) \
                and not NEBIUS_CREDENTIALS.expanduser().exists():
            check.problems.append(
                "SkyPilot has no Nebius credentials: it needs a service-account file at ~/.nebius/credentials.json "
                "(not NEBIUS_API_KEY, which is Token Factory's key). Create one with `nebius iam auth-public-key "
                "generate ... --output ~/.nebius/credentials.json`, then check with `.venv-sky/bin/sky check nebius`")
        try:
            sample = {"root": "/root/legalft", "remote_run": "/root/legalft/runs/check",
                      "python": "/root/legalft/venv/bin/python"}
            tasks = [self.provision_task("check"), self.train_task("check", sample)]
            if self.after == "serve":
                tasks.append(self.serve_task("check", sample, "python -m legalft.targets.serve_host ."))
            call_adapter({"op": "validate", "tasks": tasks}, timeout=300)
        except ServiceError as exc:
            check.problems.append(str(exc))
        if self.use_spot:
            check.warnings.append("a spot instance can be preempted: the run fails then, and resume continues from "
                                  "its last checkpoint on a new cluster")
        return check

    # --- lifecycle -----------------------------------------------------------------------------------

    def ssh(self, info: dict[str, Any]) -> SshTarget:
        """The provisioned cluster as an SSH host (SkyPilot writes an ssh config entry per cluster); one per
        cluster, so its probe session stays open between polls."""
        cached = getattr(self, "_ssh_target", None)
        if cached is None or cached.host != info["ssh_host"]:
            cached = SshTarget(host=info["ssh_host"], remote_root=self.remote_root, ssh_config=info.get("ssh_config"),
                               remote_python=self.remote_python)
            self._ssh_target = cached
        return cached

    def launch(self, job_id: str, run_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
        say("provisioning")
        started = time.monotonic()
        answer = call_adapter({"op": "launch", "cluster": cluster_name(job_id), "task": self.provision_task(job_id)})
        provision_seconds = time.monotonic() - started
        base = {"cluster": answer["cluster"], "ssh_host": answer["ssh_host"], "ssh_config": answer.get("ssh_config")}
        info = {**base, **self.ssh(base).prepare(job_id, run_dir, say)}
        info["phase_seconds"] = {"provision": round(provision_seconds, 1), **info.get("phase_seconds", {})}
        info.update(self._exec(job_id, info))
        return info

    def _exec(self, job_id: str, info: dict[str, Any]) -> dict[str, Any]:
        answer = call_adapter({"op": "exec", "cluster": info["cluster"], "task": self.train_task(job_id, info),
                               "secrets": [n for n in PASSED_SECRETS if os.environ.get(n)]})
        return {"sky_job_id": answer.get("job_id")}

    def resume(self, job_id: str, run_dir: Path, info: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
        """The cluster may be gone (released after a failure): provision again and re-upload the run folder
        (its checkpoints came back with the pull), then train from the last checkpoint."""
        return self.launch(job_id, run_dir, say)

    def probe(self, info: dict[str, Any], metrics_from: int, log_from: int,
              metrics_file: str | None = None) -> dict[str, Any]:
        return self.ssh(info).probe(info, metrics_from, log_from, metrics_file)

    def cancel(self, info: dict[str, Any], grace_seconds: float) -> dict[str, Any]:
        answer = self.ssh(info).cancel(info, grace_seconds)
        try:
            call_adapter({"op": "cancel", "cluster": info["cluster"], "job_id": info.get("sky_job_id")}, timeout=300)
        except ServiceError as exc:
            log.warning("SkyPilot cancel: %s", exc)
        return answer

    def pull(self, info: dict[str, Any], run_dir: Path, succeeded: bool = True) -> None:
        """The adapter and results, and the checkpoints too: the cluster is released next, and a resume
        needs them."""
        target = self.ssh(info)
        target.pull(info, run_dir, succeeded)
        if not succeeded:
            target.connection().rsync([f"{info['remote_run']}/checkpoints/"], f"{run_dir}/checkpoints/",
                                      upload=False, what="fetching the checkpoints")

    def merge_there(self, info: dict[str, Any], job_id: str) -> dict[str, Any]:
        return self.ssh(info).merge_there(info, job_id)

    def serve_task(self, job_id: str, info: dict[str, Any], command: str) -> dict[str, Any]:
        """The job that serves: it lasts as long as the server, so autostop (``wait_for: jobs``) releases
        the cluster once the server has stopped for want of requests."""
        return {"name": f"{cluster_name(job_id)}-serve", "run": f"cd {shlex.quote(info['remote_run'])} && {command}"}

    def after_training(self, info: dict[str, Any], job_id: str, run_dir: Path, status: dict[str, Any]) -> str:
        notes = []
        if self.after == "serve" and status.get("state") == "succeeded":
            def start(info_: dict[str, Any], command: str) -> None:
                answer = call_adapter({"op": "exec", "cluster": info["cluster"],
                                       "task": self.serve_task(job_id, info, command)})
                info["serve_job_id"] = answer.get("job_id")

            target = self.ssh(info)
            target.serve_idle_minutes = self.serve_idle_minutes
            serving, note = target.serve_note(info, job_id, start=start)
            if serving:  # SkyPilot releases the cluster after the server stops
                return (f"{note}; cluster {info['cluster']} is released by SkyPilot {self.idle_minutes} minutes "
                        "after the server stops")
            notes.append(note)
        try:
            cost = call_adapter({"op": "cost_report", "cluster": info["cluster"]}, timeout=300).get("cost")
            if cost is not None:
                info["reported_cost"] = cost
        except ServiceError as exc:
            log.warning("SkyPilot cost report: %s", exc)
        call_adapter({"op": "down", "cluster": info["cluster"]}, timeout=1800)
        notes.insert(0, f"released: cluster {info['cluster']} is down, nothing is billing")
        return "; ".join(notes)

    def abandon(self, info: dict[str, Any], job_id: str) -> str:
        """A launch failed before training started: the cluster SkyPilot may have made is torn down."""
        try:
            call_adapter({"op": "down", "cluster": info.get("cluster") or cluster_name(job_id)}, timeout=1800)
        except ServiceError as exc:
            return f"could not tear down cluster {cluster_name(job_id)}: {exc}; run `sky down {cluster_name(job_id)}`"
        return f"cluster {cluster_name(job_id)} was torn down, nothing is billing"

