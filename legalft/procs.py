"""The one process layer: start a detached process, know it again later, stop its whole group.

Training runs and model servers both outlive the command or page that started them, so both are
started here in their own session (a closed tab or a restarted app does not touch them), recorded
as a ``ProcessRecord`` (pid + start time + host: a reused pid is never mistaken for ours), checked
with ``is_running`` and stopped with ``stop`` (SIGTERM to the group, SIGKILL after a grace period,
children reaped). psutil does the process bookkeeping; nothing here parses ``/proc`` by hand.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: Two start times further apart than this are two processes (psutil reports them to ~10 ms).
_SAME_PROCESS_SECONDS = 1.0


@dataclass
class ProcessRecord:
    """Enough to find a detached process again from another process, or after a restart."""

    pid: int
    create_time: float | None
    host: str
    started_at: str
    command: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "ProcessRecord | None":
        if not data or not data.get("pid"):
            return None
        return cls(pid=int(data["pid"]), create_time=data.get("create_time"), host=data.get("host") or "",
                   started_at=data.get("started_at") or "", command=list(data.get("command") or []))


def checkout_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a legalft child process: this one's, with this checkout first on
    PYTHONPATH (it imports this code even when legalft is not installed) and unbuffered output."""
    from legalft.home import project_root

    env = dict(os.environ)
    root = str(project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env


def spawn_detached(command: list[str], *, log_path: str | Path, cwd: str | Path | None = None,
                   env: dict[str, str] | None = None, banner: str | None = None) -> ProcessRecord:
    """Start ``command`` in its own session with stdout and stderr appended to ``log_path``.

    Raises ``OSError`` when the program cannot be run. The Popen object is dropped on purpose: the
    process outlives this one; ``reap`` collects it if it ends while we still run.
    """
    import psutil

    with open(log_path, "ab") as log_file:
        if banner:
            log_file.write(banner.encode("utf-8", "replace"))
            log_file.flush()
        process = subprocess.Popen(
            command, cwd=str(cwd) if cwd else None, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
    try:
        create_time = psutil.Process(process.pid).create_time()
    except psutil.Error:
        create_time = None
    return ProcessRecord(pid=process.pid, create_time=create_time, host=socket.gethostname(),
                         started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), command=list(command))


def reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _lookup(record: ProcessRecord | dict[str, Any] | None):
    """(running, process): running is True, False, or None when it cannot be told here (another host,
    no record, no permission); process is the live ``psutil.Process`` when running."""
    import psutil

    if record is not None and not isinstance(record, ProcessRecord):
        record = ProcessRecord.from_dict(record)
    if record is None or (record.host and record.host != socket.gethostname()):
        return None, None
    reap(record.pid)
    try:
        process = psutil.Process(record.pid)
        if record.create_time and abs(process.create_time() - float(record.create_time)) > _SAME_PROCESS_SECONDS:
            return False, None  # the pid was reused by another process
        if process.status() == psutil.STATUS_ZOMBIE:
            reap(record.pid)
            return False, None
        return True, process
    except psutil.NoSuchProcess:
        return False, None
    except psutil.Error:
        return None, None


def find(record: ProcessRecord | dict[str, Any] | None):
    """The ``psutil.Process`` of a record if it still runs and is the same process, else None."""
    return _lookup(record)[1]


def is_running(record: ProcessRecord | dict[str, Any] | None) -> bool | None:
    """True or False; None when it cannot be told here (another host, no record, no permission)."""
    return _lookup(record)[0]


def _group_members(pgid: int) -> list:
    import psutil

    members = []
    for process in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def stop(record: ProcessRecord | dict[str, Any] | None, *, grace_seconds: float = 10.0) -> bool:
    """Stop the process and its whole group: SIGTERM, then SIGKILL after ``grace_seconds``.

    The recorded process leads its own session, so its pid is the group id: workers it started
    (accelerate ranks, dataloader workers, vLLM engines) go with it. Returns whether it was running.
    """
    import psutil

    process = find(record)
    if process is None:
        return False
    pgid = process.pid
    members = [process, *process.children(recursive=True)]
    members += [m for m in _group_members(pgid) if m.pid not in {p.pid for p in members}]
    try:
        os.killpg(pgid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        for member in members:
            try:
                member.terminate()
            except psutil.Error:
                pass
    deadline = time.monotonic() + grace_seconds
    _, alive = psutil.wait_procs(members, timeout=grace_seconds, callback=lambda p: reap(p.pid))
    if alive:
        log.warning("pid %d did not stop within %.0f s; killing its process group", pgid, grace_seconds)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        for member in alive:
            try:
                member.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=max(5.0, deadline - time.monotonic()), callback=lambda p: reap(p.pid))
    reap(pgid)
    return True
