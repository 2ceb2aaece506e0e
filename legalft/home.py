"""Where legalft keeps its state: ``LEGALFT_HOME`` (default ``~/.legalft``)."""

from __future__ import annotations

import os
from pathlib import Path

from legalft.errors import HomeNotWritable


def home_dir() -> Path:
    """The state folder, created on first use. Tests point ``LEGALFT_HOME`` at a temporary folder."""
    path = Path(os.environ.get("LEGALFT_HOME") or Path.home() / ".legalft").expanduser()
    _make(path)
    return path


def _make(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HomeNotWritable(f"cannot create the state folder {path} ({exc.strerror}); set LEGALFT_HOME to a "
                              "folder you can write, or fix its permissions") from None


def subdir(name: str) -> Path:
    """A named folder under the home (``datasets``, ``runs``, ...), created on first use."""
    path = home_dir() / name
    _make(path)
    return path


def project_root() -> Path:
    """The source checkout (holds ``data/`` and ``recipes/``)."""
    return Path(__file__).resolve().parent.parent


def bundled_data_dir() -> Path:
    """The data shipped with the project (reference Q&A set, Acts subset, prices)."""
    return project_root() / "data"
