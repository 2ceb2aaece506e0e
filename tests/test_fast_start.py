"""Fast start: the app's pages and the CLI load no torch, transformers, trl, peft, vllm or openai."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("torch", "transformers", "trl", "peft", "vllm", "openai")

RUN_EVERY_PAGE = f"""
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({str(ROOT / "app.py")!r}, default_timeout=60)
at.run()
errors = [str(e.message) for e in at.exception]
for page in ("views/dataset.py", "views/train.py", "views/monitor.py", "views/costs.py", "views/chat.py",
             "views/evaluate.py",
             "views/activity.py"):
    at.switch_page(page)
    at.run()
    errors += [f"{{page}}: {{e.message}}" for e in at.exception]
print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules], "errors": errors}}))
"""


def test_every_page_renders_without_heavy_imports(legalft_home):
    result = subprocess.run([sys.executable, "-c", RUN_EVERY_PAGE], capture_output=True, text=True, cwd=ROOT,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == []
    assert report["heavy"] == [], f"imported at start-up: {report['heavy']}"
