"""``status.json`` as the training process writes it: state, pid, heartbeat, progress, error.

The heartbeat runs on its own thread, so a long step, a model download or a checkpoint save still
shows the process alive; a heartbeat that stops means the interpreter itself stopped.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from legalft.jobs import utc_now
from legalft.train.rundir import STATUS_FILE, read_status, write_json_atomic

HEARTBEAT_SECONDS = 5.0
#: How often progress updates reach the file at most; state changes are written at once.
WRITE_INTERVAL_SECONDS = 1.0


class StatusWriter:
    """Holds the run's status and writes it atomically; only the main process of a job writes."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.path = Path(run_dir) / STATUS_FILE
        self.enabled = enabled
        # Re-entrant: the cancel signal handler runs on the main thread, possibly inside update().
        self._lock = threading.RLock()
        self._data: dict[str, Any] = read_status(run_dir) if enabled else {}
        self._last_write = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def data(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._data)

    def update(self, force: bool = False, **fields: Any) -> None:
        if not self.enabled:
            return
        with self._lock:
            if "state" in fields and fields["state"] != self._data.get("state"):
                force = True
            self._data.update(fields)
            now = time.time()
            if force or now - self._last_write >= WRITE_INTERVAL_SECONDS:
                self._write(now)

    def _write(self, now: float) -> None:
        self._data["heartbeat"] = now
        self._data["heartbeat_at"] = utc_now()
        write_json_atomic(self.path, self._data)
        self._last_write = now

    def finish(self, state: str, error: str | None = None, **fields: Any) -> None:
        """Write the final state (succeeded, failed, cancelled)."""
        self.update(force=True, state=state, error=error, finished_at=utc_now(), phase="done", **fields)

    def start_heartbeat(self, interval: float = HEARTBEAT_SECONDS) -> None:
        if not self.enabled or self._thread:
            return

        def beat() -> None:
            while not self._stop.wait(interval):
                with self._lock:
                    self._write(time.time())

        self._thread = threading.Thread(target=beat, name="legalft-heartbeat", daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None


def is_main_process() -> bool:
    """Rank 0 of a (possibly distributed) job; ``accelerate launch`` sets RANK for each process."""
    return os.environ.get("RANK", "0") == "0"
