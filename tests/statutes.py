"""The statute index over the bundled corpus, built once per test session and copied into each test's home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def statute_db(tmp_path_factory) -> Path:
    """A state database holding the index of the whole bundled corpus (built once: ~2 s)."""
    home = tmp_path_factory.mktemp("statutes-home")
    previous = os.environ.get("LEGALFT_HOME")
    os.environ["LEGALFT_HOME"] = str(home)
    try:
        from legalft.legal.index import StatuteIndex

        StatuteIndex().ensure_bundled()
    finally:
        if previous is None:
            os.environ.pop("LEGALFT_HOME", None)
        else:
            os.environ["LEGALFT_HOME"] = previous
    return home / "legalft.db"


@pytest.fixture
def statute_index(statute_db, legalft_home):
    """This test's home with the bundled corpus indexed (a copy of the session's database)."""
    from legalft.legal.index import default_index

    legalft_home.mkdir(parents=True, exist_ok=True)
    shutil.copy(statute_db, legalft_home / "legalft.db")
    return default_index()
