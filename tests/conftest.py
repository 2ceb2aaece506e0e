"""Shared fixtures: every test gets its own LEGALFT_HOME and runs offline."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_QA = ROOT / "data" / "legislation_qa_clean.jsonl"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def legalft_home(tmp_path, monkeypatch) -> Path:
    """Point the app's state folder at a fresh temporary folder for each test."""
    home = tmp_path / "legalft-home"
    monkeypatch.setenv("LEGALFT_HOME", str(home))
    monkeypatch.delenv("NEBIUS_API_KEY", raising=False)
    return home


@pytest.fixture
def standin(monkeypatch):
    """The local Token Factory stand-in on a free port, with legalft pointed at it (fast phases)."""
    from token_factory_server import DEFAULT_KEY, start_server

    from legalft import managed as tf

    server = start_server(phase_seconds=0.05, deploy_seconds=0.05)
    monkeypatch.setenv(tf.URL_ENV, server.base_url)
    monkeypatch.setenv(tf.KEY_ENV, DEFAULT_KEY)
    yield server
    server.shutdown()
    server.server_close()


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def missing(absent: bool, reason: str):
    """A skip for a tool this machine lacks (sshd, SkyPilot's venv); in CI, where `make test` installs
    them, the test runs and fails instead, so a broken set-up is never read as a pass."""
    return pytest.mark.skipif(absent and not os.environ.get("CI"), reason=reason)


def pytest_collection_modifyitems(config, items):
    """Without a CUDA GPU the ``gpu`` tests are deselected (said in the summary), not skipped one by one."""
    gpu = [item for item in items if "gpu" in item.keywords]
    if gpu and not _has_cuda():
        items[:] = [item for item in items if "gpu" not in item.keywords]
        config.hook.pytest_deselected(items=gpu)
        config._legalft_gpu_deselected = len(gpu)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    count = getattr(config, "_legalft_gpu_deselected", 0)
    if count:
        terminalreporter.write_line(f"{count} gpu test(s) not run: no CUDA GPU here (they run on a GPU machine: "
                                    "pytest -m gpu)")


def chromium_path() -> str:
    """The system Chromium; in CI its absence is a failure, not a skip."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing in CI: `make test` installs it with apt-get when run as root")
    pytest.skip("Chromium is not installed (sudo apt-get install chromium)")


def open_app_page(page: str | None = None, timeout: float = 120, **state):
    """The app through AppTest as a user meets it: ``app.py`` run once (with ``state`` set in the
    session first), then ``page`` opened; asserts that neither raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    assert not at.exception, at.exception
    return at
