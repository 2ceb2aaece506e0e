"""A GPU VM the user already has, reached with the system OpenSSH client and rsync.

The system client is used on purpose (not paramiko): it honours the user's ``~/.ssh/config``
(``Include``, ``ProxyJump``, the agent, ``ControlMaster``). One multiplexed connection per host lives
under ``LEGALFT_HOME/ssh``, so the follower's poll every few seconds is one round trip on an open
connection. Secrets (``HF_TOKEN``) travel on the SSH session's stdin to the trainer's environment:
never on a command line, in a file or in a log, on either side.

The remote layout, under ``remote_root`` (default ``~/legalft``):

    app/            this project's code and lock files (rsync, each launch)
    venv/           the pinned environment, built once from requirements.lock (cached by its hash)
    home/           the remote LEGALFT_HOME (the smoke model, caches)
    runs/<job id>/  the run folder, as on this machine
    models/         local base-model folders copied over for a run
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from legalft import procs
from legalft.errors import LegalftError, ServiceError, Unreachable, UsageError
from legalft.home import home_dir, project_root
from legalft.jobs import utc_now
from legalft.polling import poll_until
from legalft.targets import serve_host
from legalft.targets.base import Target, TargetCheck

if TYPE_CHECKING:
    from legalft.endpoints import Endpoint

log = logging.getLogger(__name__)

#: Environment settings (not secrets) passed on to the remote trainer when set here.
PASSED_SETTINGS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT")
#: Secrets passed to the remote trainer's environment over stdin, when set here.
PASSED_SECRETS = ("HF_TOKEN",)
SSH_CONFIG_ENV = "LEGALFT_SSH_CONFIG"
#: What of this checkout the GPU host needs to train (and to bootstrap its environment).
CODE_PATHS = ("legalft", "recipes", "pyproject.toml", "requirements.lock", "scripts/remote_setup.sh",
              # the corpus the built-in smoke model's tokenizer is trained on (a "builtin:smoke" run builds it there)
              "data/legislation_qa_clean.jsonl")
#: A Unix socket path holds at most 103 bytes (macOS; 107 on Linux). ssh's control socket is
#: ``DIR/%C`` (40 hex digits) plus, while it is made, a 17-character temporary suffix: DIR gets 45.
_MAX_SOCKET_DIR = 103 - 1 - 40 - 17


class SshHost:
    """``ssh``/``rsync`` command lines for one host, over one multiplexed connection."""

    def __init__(self, spec: str, ssh_config: str | None = None):
        self.spec = spec
        self.ssh_config = ssh_config or os.environ.get(SSH_CONFIG_ENV) or None
        destination, port = spec, None
        if ":" in spec and spec.rsplit(":", 1)[1].isdigit():
            destination, port = spec.rsplit(":", 1)
        self.destination, self.port = destination, port

    def _control_dir(self) -> Path:
        folder = home_dir() / "ssh"
        if len(str(folder)) > _MAX_SOCKET_DIR:
            digest = hashlib.sha256(str(folder).encode()).hexdigest()[:10]
            folder = Path(tempfile.gettempdir()) / f"legalft-ssh-{os.getuid()}-{digest}"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        return folder

    def options(self) -> list[str]:
        """Options for every ssh call: never prompt, one shared connection, notice a dead link fast."""
        options = []
        if self.ssh_config:
            options += ["-F", self.ssh_config]
        options += ["-o", "BatchMode=yes", "-o", "ControlMaster=auto",
                    "-o", f"ControlPath={self._control_dir()}/%C", "-o", "ControlPersist=300",
                    "-o", "ConnectTimeout=10", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=2"]
        if self.port:
            options += ["-p", self.port]
        return options

    def tunnel_options(self) -> list[str]:
        """Options for a long-lived tunnel: its own connection (its process is the tunnel: stopping it
        closes the tunnel), failing at once when the local port cannot be forwarded."""
        options = []
        if self.ssh_config:
            options += ["-F", self.ssh_config]
        options += ["-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none",
                    "-o", "ExitOnForwardFailure=yes", "-o", "ConnectTimeout=10",
                    "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.port:
            options += ["-p", self.port]
        return options

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 120.0,
            what: str = "running a command") -> str:
        """Run a shell command on the host; its stdout. Raises ``Unreachable`` when ssh itself fails."""
        argv = ["ssh", *self.options(), self.destination, command]
        try:
            result = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Unreachable(f"{what} on {self.spec}: no answer within {timeout:.0f} s") from None
        if result.returncode == 255:
            reason = (result.stderr.strip().splitlines() or ["ssh failed"])[-1]
            raise Unreachable(f"{what}: cannot reach {self.spec} over SSH ({reason})")
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-6:])
            raise ServiceError(f"{what} on {self.spec} failed (exit {result.returncode}): {tail}")
        return result.stdout

    def rsync(self, sources: list[str], target: str, *, upload: bool, delete: bool = False,
              excludes: tuple[str, ...] = ("__pycache__", "*.pyc"), timeout: float = 3600.0,
              what: str = "copying files", checksum: bool = False) -> None:
        """``rsync -a`` over the same connection; ``upload`` from here to the host, else back.
        ``checksum`` compares contents, not size and time: for a file this side also writes (the
        live mirror of the metrics), whose size and second can match a different content there."""
        shell = shlex.join(["ssh", *self.options()])
        remote = lambda path: f"{self.destination}:{path}"
        argv = ["rsync", "-a", "--partial", "-e", shell, *[f"--exclude={e}" for e in excludes]]
        if checksum:
            argv.append("--checksum")
        if delete:
            argv.append("--delete")
        argv += sources if upload else [remote(s) for s in sources]
        argv.append(remote(target) if upload else target)
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Unreachable(f"{what} with {self.spec}: not done within {timeout:.0f} s") from None
        if result.returncode in (12, 30, 35, 255):  # rsync's codes for a broken or timed-out link
            raise Unreachable(f"{what}: the connection to {self.spec} broke ({result.stderr.strip()[-300:]})")
        if result.returncode != 0:
            raise ServiceError(f"{what} with {self.spec} failed (rsync exit {result.returncode}): "
                               f"{result.stderr.strip()[-500:]}")


class ProbeSession:
    """One ``probe serve`` kept open over SSH: each poll is a line out and a line back."""

    def __init__(self, host: SshHost, command: str):
        self.host = host
        self.process = subprocess.Popen(["ssh", *host.options(), host.destination, command], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, request: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        import selectors

        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._broken("the connection closed") from None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise self._broken(f"no answer within {timeout:.0f} s")
        line = self.process.stdout.readline()
        if not line:
            raise self._broken("the connection closed")
        return json.loads(line)

    def _broken(self, why: str) -> Unreachable:
        self.close()
        reason = ""
        try:
            reason = (self.process.stderr.read() or "").strip().splitlines()[-1:]
            reason = f": {reason[0]}" if reason else ""
        except (OSError, ValueError):
            pass
        return Unreachable(f"reading the run: cannot reach {self.host.spec} over SSH ({why}{reason})")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            pass

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def passed_environment() -> dict[str, str]:
    """The settings and secrets a remote trainer gets from here (sent over stdin or as SkyPilot secrets)."""
    return {name: os.environ[name] for name in (*PASSED_SETTINGS, *PASSED_SECRETS) if os.environ.get(name)}


def remote_env(root: str) -> str:
    """The environment prefix of every legalft command on the host."""
    return f"LEGALFT_HOME={shlex.quote(root + '/home')} PYTHONPATH={shlex.quote(root + '/app')}"


def _quote_remote(path: str) -> str:
    """A remote path for the remote shell: ``~/x`` keeps its home expansion, the rest is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


@dataclass
class SshTarget(Target):
    """A GPU VM over SSH: ``host`` is anything ``ssh`` accepts (an ssh_config alias, ``user@host[:port]``)."""

    kind: str = "ssh"
    host: str = ""
    remote_root: str = "~/legalft"
    remote_python: str | None = None
    """A python that already has the pinned set; when unset, ``remote_root/venv`` is built once."""
    ssh_config: str | None = None
    hourly_rate: float | None = None
    """What the VM costs per hour, when the user says (for the run's cost); None: not known."""

    def describe(self) -> str:
        return f"{self.host} over SSH ({self.remote_root})"

    @property
    def bills_by_itself(self) -> bool:
        return True  # the owner's VM: the product never stops it

    def connection(self) -> SshHost:
        if not self.host:
            raise UsageError("an SSH target needs a host")
        return SshHost(self.host, self.ssh_config)

    # --- before anything runs ---------------------------------------------------------------------

    def check(self) -> TargetCheck:
        check = TargetCheck(target=f"ssh:{self.host}")
        for tool in ("ssh", "rsync"):
            if not shutil.which(tool):
                check.problems.append(f"`{tool}` is not installed here: sudo apt-get install "
                                      f"{'openssh-client' if tool == 'ssh' else 'rsync'}")
        if check.problems:
            return check
        host = self.connection()
        try:
            root = self.resolve_root(host)
            check.facts["remote_root"] = root
            if not host.run("command -v rsync >/dev/null && echo yes || echo no", what="checking rsync").strip() \
                    == "yes":
                check.problems.append(f"rsync is not installed on {self.host}: run `sudo apt-get install rsync` there")
            python = self.python_path(root)
            probe = host.run(f"{shlex.quote(python)} -c 'import sys; print(sys.version_info[:2] >= (3, 11))' "
                             "2>/dev/null || echo missing", what="checking python")
            if probe.strip() == "missing":
                if self.remote_python:
                    check.problems.append(f"{self.remote_python} does not run on {self.host}")
                else:
                    check.warnings.append(f"no environment on {self.host} yet: the first launch builds it from "
                                          "requirements.lock (several minutes; cached for later runs)")
            else:
                check.facts.update(self.facts(host, root, python))
                if check.facts.get("missing"):
                    check.problems.append(f"the python on {self.host} lacks {check.facts['missing']}: "
                                          "drop --remote-python to let legalft build its own environment")
                elif not check.facts.get("gpus"):
                    check.warnings.append(f"{self.host} has no NVIDIA GPU (nvidia-smi not found): it trains on its CPU")
        except (Unreachable, ServiceError) as exc:
            check.problems.append(f"{exc}. Check that `ssh {self.host}` works from this machine without a "
                                  "password prompt (a key in the agent or ssh_config)")
        if self.bills_by_itself:
            check.warnings.append(f"{self.host} is your own VM: legalft never stops it, so it keeps billing "
                                  "after the run until you stop it")
        return check

    def resolve_root(self, host: SshHost) -> str:
        """The remote root as an absolute path (created if missing)."""
        output = host.run(f"mkdir -p {_quote_remote(self.remote_root)} && cd {_quote_remote(self.remote_root)} "
                          "&& pwd", what="preparing the remote folder")
        return output.strip().splitlines()[-1]

    def python_path(self, root: str) -> str:
        return self.remote_python or f"{root}/venv/bin/python"

    def facts(self, host: SshHost, root: str, python: str) -> dict[str, Any]:
        from legalft.targets import probe

        script = Path(probe.__file__).read_text(encoding="utf-8")  # runs before any code is copied there
        output = host.run(f"{remote_env(root)} {shlex.quote(python)} - facts 2>/dev/null || echo '{{}}'",
                          stdin=script, what="reading the host's GPUs")
        try:
            return json.loads(output.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {}

    # --- lifecycle (the follower calls these) -----------------------------------------------------

    def launch(self, job_id: str, run_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
        """Copy code and run folder over, build the environment if needed, start the trainer."""
        info = self.prepare(job_id, run_dir, say)
        info["attempt"] = self.start(self.connection(), info["root"], job_id, info["remote_run"])
        return info

    def prepare(self, job_id: str, run_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
        """Everything but the start: code, environment (built once), run folder, config."""
        host = self.connection()
        started = time.monotonic()
        root = self.resolve_root(host)
        say("setting up")
        root_app = project_root()
        nested = sorted({str(Path(p).parent) for p in CODE_PATHS if "/" in p})
        host.run(f"mkdir -p {' '.join(shlex.quote(f'{root}/app/{d}') for d in nested)} "
                 f"{shlex.quote(root)}/runs {shlex.quote(root)}/models", what="preparing the remote folder")
        host.rsync([str(root_app / p) for p in CODE_PATHS if (root_app / p).exists() and "/" not in p],
                   f"{root}/app/", upload=True, delete=True, what="copying the code")
        for folder in nested:  # single files under a folder (the set-up script, the bundled corpus)
            host.rsync([str(root_app / p) for p in CODE_PATHS if str(Path(p).parent) == folder and (root_app / p).exists()],
                       f"{root}/app/{folder}/", upload=True, what=f"copying {folder}/")
        python = self.python_path(root)
        if not self.remote_python:
            host.run(f"bash {shlex.quote(root)}/app/scripts/remote_setup.sh {shlex.quote(root)}", timeout=3600,
                     what="building the environment from requirements.lock")
        setup_seconds = time.monotonic() - started
        remote_run = f"{root}/runs/{job_id}"
        host.run(f"mkdir -p {shlex.quote(remote_run)}", what="creating the run folder")
        host.rsync([f"{run_dir}/"], f"{remote_run}/", upload=True, what="copying the run folder",
                   excludes=("__pycache__", "follow.log", "follow.lock", "sync.json", "target.json", "config.yaml",
                             "adapter", "merged"))
        host.run(f"cat > {shlex.quote(remote_run)}/config.yaml", stdin=self._remote_config(host, root, run_dir),
                 what="writing the run's config")
        return {"root": root, "python": python, "remote_run": remote_run,
                "phase_seconds": {"setup": round(time.monotonic() - started, 1)}, "env_seconds": round(setup_seconds, 1)}

    def resume(self, job_id: str, run_dir: Path, info: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
        """Start the trainer again in the remote run folder: it continues from its last checkpoint."""
        host = self.connection()
        attempt = self.start(host, info["root"], job_id, info["remote_run"])
        return {**info, "attempt": attempt, "phase_seconds": {}}

    def _remote_config(self, host: SshHost, root: str, run_dir: Path) -> str:
        """The run's config with a local base-model folder replaced by its copy on the host."""
        from legalft.train.config import TrainConfig

        config = TrainConfig.load(run_dir / "config.yaml")
        base = Path(config.base_model).expanduser()
        if base.is_dir():
            digest = hashlib.sha256(str(base.resolve()).encode()).hexdigest()[:8]
            remote_model = f"{root}/models/{base.name}-{digest}"
            host.rsync([f"{base}/"], f"{remote_model}/", upload=True, what="copying the base model")
            config = config.with_overrides({"base_model": remote_model})
        import yaml

        return yaml.safe_dump(config.to_dict(), sort_keys=False)

    def start(self, host: SshHost, root: str, job_id: str, remote_run: str) -> dict[str, Any]:
        """Start (or resume) the trainer there. A link that breaks during the call does not leave a run
        started but recorded as failed: the host's launch record says whether the attempt began."""
        before = self._attempts(host, remote_run)
        env = passed_environment()
        try:
            output = host.run(f"{remote_env(root)} {shlex.quote(self.python_path(root))} -m legalft.targets.probe "
                              f"start {shlex.quote(job_id)} {shlex.quote(remote_run)}", stdin=json.dumps(env) + "\n",
                              what="starting the trainer")
            return json.loads(output.strip().splitlines()[-1])["attempt"]
        except Unreachable:
            for _ in range(5):
                time.sleep(2)
                try:
                    attempts = self._attempts(host, remote_run)
                except Unreachable:
                    continue
                if len(attempts) > len(before):
                    log.warning("the link broke while starting the trainer on %s, but it started", self.host)
                    return attempts[-1]
                break
            raise

    @staticmethod
    def _attempts(host: SshHost, remote_run: str) -> list[dict[str, Any]]:
        output = host.run(f"cat {shlex.quote(remote_run)}/run.json 2>/dev/null || echo '{{}}'",
                          what="reading the launch record")
        try:
            return json.loads(output or "{}").get("attempts") or []
        except ValueError:
            return []

    def probe(self, info: dict[str, Any], metrics_from: int, log_from: int,
              metrics_file: str | None = None) -> dict[str, Any]:
        """One poll on a long-lived ``probe serve`` session (opened again after a broken link)."""
        session = getattr(self, "_session", None)
        if session is None or not session.alive:
            session = ProbeSession(self.connection(), f"{remote_env(info['root'])} {shlex.quote(info['python'])} "
                                                      "-m legalft.targets.probe serve")
            self._session = session
        return session.ask({"run_dir": info["remote_run"], "metrics_from": int(metrics_from),
                            "log_from": int(log_from), "metrics_file": metrics_file})

    def cancel(self, info: dict[str, Any], grace_seconds: float) -> dict[str, Any]:
        host = self.connection()
        output = host.run(f"{remote_env(info['root'])} {shlex.quote(info['python'])} -m legalft.targets.probe cancel "
                          f"{shlex.quote(info['remote_run'])} --grace {grace_seconds:g}", timeout=grace_seconds + 60,
                          what="cancelling the run")
        return json.loads(output.strip().splitlines()[-1])

    def pull(self, info: dict[str, Any], run_dir: Path, succeeded: bool = True) -> None:
        """Bring back what a finished run made: the adapter (and a merge), metrics, log and status."""
        host = self.connection()
        remote_run = info["remote_run"]
        listing = host.run(f"cd {shlex.quote(remote_run)} && ls -d adapter merged merge.json 2>/dev/null || true",
                           what="listing the results")
        for name in listing.split():
            source = f"{remote_run}/{name}" + ("/" if name in ("adapter", "merged") else "")
            target = str(run_dir / name) + ("/" if name in ("adapter", "merged") else "")
            host.rsync([source], target, upload=False, what=f"fetching {name}")
        # The mirror here is replaced by what the trainer wrote there, whatever the mirror holds.
        host.rsync([f"{remote_run}/metrics.jsonl", f"{remote_run}/train.log", f"{remote_run}/status.json"],
                   f"{run_dir}/", upload=False, what="fetching the metrics and log", checksum=True)

    def merge_there(self, info: dict[str, Any], job_id: str) -> dict[str, Any]:
        """Merge on the GPU host before the results come back (``after: merge``)."""
        output = self.connection().run(
            f"{remote_env(info['root'])} {shlex.quote(info['python'])} -m legalft.targets.probe merge "
            f"{shlex.quote(job_id)} {shlex.quote(info['remote_run'])}", timeout=7200, what="merging the adapter")
        return json.loads(output.strip().splitlines()[-1])

    def after_training(self, info: dict[str, Any], job_id: str, run_dir: Path, status: dict[str, Any]) -> str:
        """Nothing to release: the VM is the owner's, and it is said plainly; ``after: serve`` serves it there."""
        note = f"{self.host} is your own VM: legalft did not stop it, and it keeps billing until you stop it"
        if self.after == "serve" and status.get("state") == "succeeded":
            note = f"{self.serve_note(info, job_id)[1]}; {note}"
        return note

    # --- after: serve ------------------------------------------------------------------------------

    def serve_note(self, info: dict[str, Any], job_id: str,
                   start: Callable[[dict[str, Any], str], None] | None = None) -> tuple[bool, str]:
        """Serve the run there: whether it serves, and a sentence saying where or why not (a failed serve
        does not fail the run)."""
        try:
            endpoint = self.serve_there(info, job_id, start=start)
        except LegalftError as exc:
            return False, f"serving on {self.host} failed: {exc}; serve the pulled adapter from the Chat page"
        return True, (f"serving as endpoint {endpoint.id} ({endpoint.name}) through an SSH tunnel at {endpoint.base_url}; "
                f"the server stops after {self.serve_idle_minutes:g} idle minutes")

    def start_serving(self, info: dict[str, Any], command: str) -> None:
        """Run the host-side server (``serve_host``) detached from this connection."""
        # setsid -f: the server leaves this SSH session at once (nothing of it holds the channel open).
        self.connection().run(f"cd {shlex.quote(info['remote_run'])} || exit 1; setsid -f nohup env {command} > "
                              f"{serve_host.SERVE_LOG} 2>&1 < /dev/null; echo started", what="starting the model server")

    def serve_there(self, info: dict[str, Any], job_id: str, *, timeout: float = 1800.0,
                    start: Callable[[dict[str, Any], str], None] | None = None) -> "Endpoint":
        """Start the model server on the host (127.0.0.1 there), open a tunnel to it from here, and record
        it as an endpoint for the Chat page and the legal API. The tunnel's remote side waits for the
        server: when the server stops (idle), the tunnel ends and the endpoint reads ``stopped``."""
        from legalft import serve
        from legalft.endpoints import save_endpoint
        from legalft.home import subdir
        from legalft.jobs import get_job

        host, remote_run = self.connection(), info["remote_run"]
        host.run(f"rm -f {shlex.quote(remote_run)}/{serve_host.SERVE_FILE}", what="preparing to serve")
        (start or self.start_serving)(info, f"{remote_env(info['root'])} {shlex.quote(info['python'])} -m "
                                 f"legalft.targets.serve_host {shlex.quote(remote_run)} "
                                 f"--idle-minutes {float(self.serve_idle_minutes):g}")

        def read() -> dict[str, Any]:
            text = host.run(f"cat {shlex.quote(remote_run)}/{serve_host.SERVE_FILE} 2>/dev/null || echo '{{}}'",
                            what="reading the model server's state")
            try:
                return json.loads(text.strip() or "{}")
            except ValueError:
                return {}

        state = poll_until(read, lambda s: s.get("state") in ("active", "failed", "stopped"), interval=2.0,
                           timeout=timeout, what=f"starting the model server on {self.host}")
        if state.get("state") != "active":
            raise ServiceError(state.get("reason") or f"the model server on {self.host} did not start")
        local_port = serve.free_port()
        wait_remote = (f"while kill -0 {int(state['pid'])} 2>/dev/null; do sleep 5; done; "
                       f"tr -d '\\n' < {shlex.quote(remote_run)}/{serve_host.SERVE_FILE}; echo")  # one line of JSON
        argv = ["ssh", *host.tunnel_options(), "-L", f"127.0.0.1:{local_port}:127.0.0.1:{int(state['port'])}",
                host.destination, wait_remote]
        log_path = subdir("servers") / f"tunnel-{local_port}.log"
        process = procs.spawn_detached(argv, log_path=log_path, banner=f"\n=== {utc_now()} tunnel to {self.host}\n")
        job = get_job(job_id)
        label = (job.name if job and job.name else job_id)
        base_url = f"http://127.0.0.1:{local_port}/v1"
        details = {"pid": process.pid, "process": process.to_dict(), "port": local_port, "host": "127.0.0.1",
                   "log": str(log_path), "server": f"{state.get('server')} on {self.host}", "started_at": utc_now(),
                   "remote": {"target": f"{self.kind}:{self.host}", "host": self.host, "ssh_config": self.ssh_config,
                              "remote_run": remote_run, "pid": state["pid"], "port": state["port"],
                              "idle_minutes": self.serve_idle_minutes}}
        kind, models = state["kind"], state.get("models") or {}
        endpoint = save_endpoint(kind=kind, name=f"{label} on {self.host}", base_url=base_url, model=models["model"],
                                 status="starting", job_id=job_id, details=details)
        if "base" in models:
            save_endpoint(kind=kind, name=f"{label} on {self.host} base", base_url=base_url, model=models["base"],
                          status="starting", details={**details, "role": "base", "adapter_endpoint_id": endpoint.id})
        endpoint, report = serve.wait_until_ready(endpoint, timeout=120)
        if not report.ok:
            stop_remote_server(endpoint.details)
            raise ServiceError(f"the tunnel to the model server on {self.host} did not answer: {report.detail}")
        return endpoint


def stop_remote_server(details: dict[str, Any], grace_seconds: float = 15.0) -> None:
    """Stop a model server ``serve_there`` started (the host-side process, then the tunnel). Idempotent:
    a host that cannot be reached leaves the server to its idle timeout, which is said in the log."""
    remote = details.get("remote") or {}
    if remote.get("host"):
        host = SshHost(remote["host"], remote.get("ssh_config"))
        try:
            host.run(f"kill -TERM {int(remote['pid'])} 2>/dev/null; true", what="stopping the model server")
        except LegalftError as exc:
            log.warning("could not stop the model server on %s (%s); it stops itself after %s idle minutes",
                        remote["host"], exc, remote.get("idle_minutes"))
    record = details.get("process") or {"pid": details.get("pid")}
    if record.get("pid"):
        procs.stop(record, grace_seconds=grace_seconds)
