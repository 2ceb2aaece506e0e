"""The suite collects the same way under the `pytest` console script and `python -m pytest`
(the console script once failed on `from tests.conftest import ...`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

MODULE = "tests/test_pages_train_monitor.py"


@pytest.mark.parametrize("runner", ["console script", "module"])
def test_the_suite_collects_under_both_runners(runner):
    script = Path(sys.executable).parent / "pytest"
    command = [str(script)] if runner == "console script" else [sys.executable, "-m", "pytest"]
    result = subprocess.run([*command, "--collect-only", "-q", "-p", "no:randomly", MODULE], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error" not in result.stdout.lower().split("collected")[0]
    assert f"{MODULE}::" in result.stdout
