"""The citation chips on the Chat page and an evaluation on the Evaluate page, in a real Chromium against a
real `streamlit run app.py`, with the managed stand-in serving a fine-tune and its base."""

from __future__ import annotations

import re

import pytest
from managed import control, deployed  # noqa: F401 - fixtures
from statutes import statute_db, statute_index  # noqa: F401 - fixtures

from tests.browser import chromium_page, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARIA = "Advanced Research and Invention Agency Act 2022"


def test_chips_on_the_chat_page_and_a_run_on_the_evaluate_page(deployed, legalft_home, tmp_path):
    control(deployed["server"], {"chat_reply": f"Section 1 of the {ARIA} establishes ARIA; section 99 of that Act "
                                               "sets its budget."})
    with streamlit_server(legalft_home) as server, chromium_page() as page:
        page.goto(f"{server.url}/chat")
        page.get_by_test_id("stChatInputTextArea").fill("What is ARIA?")
        page.get_by_test_id("stChatInputSubmitButton").click()
        page.get_by_text("2 citations: 1 verified, 1 not found").wait_for()
        page.get_by_text(f"✗ s. 99 {ARIA}: not found").first.wait_for()
        page.get_by_role("button", name=re.compile(r"✓ s\. 1 Advanced Research")).first.click()
        page.get_by_text("A body corporate called the Advanced Research and Invention Agency is established").wait_for()
        link = page.get_by_role("link", name="Source on legislation.gov.uk")
        assert link.get_attribute("href") == "https://www.legislation.gov.uk/ukpga/2022/4/section/1"
        page.screenshot(path=str(tmp_path / "chat-chips.png"), full_page=True)

        page.goto(f"{server.url}/evaluate")
        page.get_by_text("Generated from the statute index").click()
        limit = page.get_by_label("Questions at most")
        limit.fill("2")
        limit.press("Enter")
        page.get_by_text("2 questions generated from indexed provisions").wait_for()
        page.get_by_role("button", name="Run evaluation").click()
        page.get_by_text(re.compile(r"succeeded, 2 of 2 answers \(0 failed\)")).wait_for(timeout=120_000)
        page.get_by_role("tab", name="Results").click()
        page.get_by_text(f"s. 99 {ARIA}: not found").first.wait_for()
        page.get_by_text("Question by question").wait_for()
        page.screenshot(path=str(tmp_path / "evaluate.png"), full_page=True)
