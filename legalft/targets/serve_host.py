"""On the GPU host, after training: serve the finished run on 127.0.0.1 and stop when nobody uses it.

``python -m legalft.targets.serve_host RUN_DIR [--idle-minutes N] [--kind auto|local|vllm]``

The app reaches the server through an SSH tunnel (``SshTarget.serve_there``); nothing listens on a
public address. The server is the one ``legalft serve`` would start on that machine (vLLM when it
is installed and a GPU is present, else ``transformers serve``), run as this process's child. Every
few seconds this process counts the TCP connections made to the server's port (the tunnel opens one
per request, and the OpenAI client keeps it while it talks): after ``--idle-minutes`` with none, it
stops the server and exits, so a GPU served for a chat does not bill for the night. For SkyPilot
this process is the cluster's job, so autostop (``wait_for: jobs``) releases the cluster after it.

``RUN_DIR/serve.json`` says what happens, written atomically: ``state`` (``starting``, ``active``,
``failed``, ``stopped``), ``port``, ``kind``, ``models`` (the names requests use), ``reason``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

from legalft.jobs import utc_now
from legalft.train.rundir import write_json_atomic

SERVE_FILE = "serve.json"
SERVE_LOG = "serve.log"
DEFAULT_IDLE_MINUTES = 30
CHECK_SECONDS = 2.0
STOP_GRACE_SECONDS = 15.0


def pick_kind(kind: str) -> str:
    """``vllm`` where it is installed and a GPU is present (the reference's server), else ``local``."""
    if kind != "auto":
        return kind
    from legalft import serve

    try:
        serve.find_vllm()
    except serve.ServeError:
        return "local"
    try:
        import torch

        return "vllm" if torch.cuda.is_available() else "local"
    except ImportError:
        return "local"


def connections_to(port: int) -> int:
    """Established TCP connections to ``port`` on this machine (psutil reads the kernel's table)."""
    import psutil

    return sum(1 for c in psutil.net_connections(kind="tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _tail(path: Path, lines: int = 8) -> str:
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            return "".join(deque(handle, maxlen=lines)).strip()
    except OSError:
        return ""


def _stop(child: subprocess.Popen) -> None:
    if child.poll() is not None:
        return
    try:
        os.killpg(child.pid, signal.SIGTERM)
        child.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


def serve_run(run_dir: Path, *, idle_minutes: float, kind: str = "auto") -> dict[str, Any]:
    """Serve ``run_dir`` until it has been idle ``idle_minutes`` (or this process is told to stop)."""
    from legalft import serve

    run_dir = run_dir.resolve()
    state: dict[str, Any] = {"pid": os.getpid(), "state": "starting", "started_at": utc_now(),
                             "idle_minutes": idle_minutes}

    def write(**changes: Any) -> None:
        state.update(changes)
        write_json_atomic(run_dir / SERVE_FILE, state)

    write()
    try:
        config = serve.ServeConfig(kind=pick_kind(kind))
        source = serve.loadable_by(config, serve.resolve_target(run_dir))
        port = serve.free_port()
        command = serve.build_command(source, config, port)
    except (serve.ServeError, OSError) as exc:
        write(state="failed", reason=str(exc), ended_at=utc_now())
        return state
    write(kind=config.kind, port=port, models=serve.served_models(source, config),
          server="vllm" if config.kind == "vllm" else "transformers serve")
    log_path = run_dir / "server.log"
    with log_path.open("ab") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    write(server_pid=child.pid)
    asked: list[str] = []
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: asked.append("stopped on request"))
    last_used = time.monotonic()
    try:
        while not asked:
            code = child.poll()
            if code is not None:
                tail = _tail(log_path)
                write(state="failed", reason=f"the model server exited (code {code})" + (f":\n{tail}" if tail else ""))
                break
            if state["state"] == "starting" and _healthy(port):
                write(state="active", active_at=utc_now())
                last_used = time.monotonic()
            if connections_to(port):
                last_used = time.monotonic()
            elif state["state"] == "active" and time.monotonic() - last_used >= idle_minutes * 60:
                asked.append(f"nobody used it for {idle_minutes:g} minutes")
                break
            time.sleep(CHECK_SECONDS)
    finally:
        _stop(child)
    if state["state"] != "failed":
        write(state="stopped", reason=asked[0] if asked else "stopped")
    write(ended_at=utc_now())
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m legalft.targets.serve_host", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--idle-minutes", type=float, default=DEFAULT_IDLE_MINUTES)
    parser.add_argument("--kind", choices=("auto", "local", "vllm"), default="auto")
    args = parser.parse_args(argv)
    state = serve_run(args.run_dir, idle_minutes=args.idle_minutes, kind=args.kind)
    return 0 if state["state"] == "stopped" else 1


if __name__ == "__main__":
    sys.exit(main())
