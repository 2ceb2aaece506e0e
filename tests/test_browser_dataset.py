"""The Dataset page in a real Chromium against a real `streamlit run app.py`."""

from __future__ import annotations

import json

import pytest

from tests.browser import chromium_page, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_upload_with_malformed_line_in_real_browser(tmp_path, legalft_home):
    upload = tmp_path / "acts.jsonl"
    upload.write_text("\n".join([
        json.dumps({"messages": [{"role": "user", "content": "What does section 1 provide?"},
                                 {"role": "assistant", "content": "Section 1 establishes ARIA."}]}),
        json.dumps({"messages": [{"role": "human", "content": "Q2"}, {"role": "assistant", "content": "A2"}]}),
        "{this line is broken",
        json.dumps({"instruction": "Explain section 2", "output": "Section 2 sets out ARIA's functions."}),
    ]) + "\n")
    with streamlit_server(legalft_home) as server, chromium_page() as page:
        page.goto(f"{server.url}/dataset")
        page.get_by_text("Records read").first.wait_for()
        page.get_by_text("Upload a file").click()
        page.locator("input[type=file]").set_input_files(str(upload))
        metric = page.locator('[data-testid="stMetric"]', has_text="Dropped")
        metric.get_by_text("1", exact=True).wait_for()
        records = page.locator('[data-testid="stMetric"]', has_text="Records read")
        assert records.get_by_text("4", exact=True).is_visible()
        kept = page.locator('[data-testid="stMetric"]', has_text="Kept")
        assert kept.get_by_text("3", exact=True).is_visible()
        issues = page.locator('[data-testid="stTable"]')
        issues.get_by_text("line 3: the line is not valid JSON").wait_for()
        assert issues.get_by_text("invalid_json").is_visible()
        page.screenshot(path=str(tmp_path / "dataset.png"), full_page=True)
