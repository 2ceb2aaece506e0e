"""A real `streamlit run app.py` server and the system Chromium, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.conftest import ROOT, chromium_path

CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class StreamlitServer:
    """`streamlit run app.py` on a free port, with its own LEGALFT_HOME; can be restarted."""

    def __init__(self, home: Path, env: dict[str, str] | None = None, *, as_make_run: bool = False,
                 args: list[str] | None = None) -> None:
        self.home = home
        self.args = list(args or [])  # more `streamlit run` flags (e.g. --secrets.files for sign-in)
        self.as_make_run = as_make_run  # only the flags `make run` passes: the rest from .streamlit/config.toml
        self.port = free_port()
        self.env = {**os.environ, "LEGALFT_HOME": str(home), **(env or {})}
        self.process: subprocess.Popen | None = None
        self.log = home.parent / f"streamlit-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(self.port)]
        if not self.as_make_run:
            cmd += ["--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats",
                    "false", "--server.fileWatcherType", "none"]
        cmd += self.args
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=open(self.log, "ab"),
                                        stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"streamlit exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"streamlit did not answer within {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def streamlit_server(home: Path, env: dict[str, str] | None = None) -> Iterator[StreamlitServer]:
    server = StreamlitServer(home, env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium_page(viewport=(1400, 1000)):
    """A Playwright page in the system Chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()
