"""The Train and Monitor pages in a real Chromium: launch, restart the server mid-run, cancel, resume."""

from __future__ import annotations

import re
import time

import pytest

from legalft.data.registry import register_dataset
from legalft.data.sanitize import sanitize_file
from legalft.jobs import list_jobs
from tests.browser import chromium_page, streamlit_server
from tests.conftest import REFERENCE_QA

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEP = re.compile(r"step (\d+) of (\d+)")


def status_of(page) -> str:
    return page.locator('[data-testid="stMetric"]', has_text="Status").locator(
        '[data-testid="stMetricValue"]').inner_text().strip().lower()  # the page says "Running"


def wait_for_status(page, wanted: set[str], timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = status_of(page)
        except Exception:
            status = ""
        if status in wanted:
            return status
        time.sleep(0.5)
    raise AssertionError(f"status never became {wanted}; last {status!r}")


def current_step(page) -> int:
    text = page.get_by_text(STEP).first.inner_text()
    return int(STEP.search(text).group(1))


def wait_for_step_above(page, floor: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            step = current_step(page)
        except Exception:
            step = -1
        if step > floor:
            return step
        time.sleep(0.5)
    raise AssertionError(f"the step never passed {floor}")


def test_launch_restart_server_cancel_resume_in_real_browser(tmp_path, legalft_home):
    clean = tmp_path / "clean.jsonl"
    report = sanitize_file(REFERENCE_QA, clean)
    register_dataset(clean, "reference.jsonl", report.to_dict())
    try:
        with streamlit_server(legalft_home) as server, chromium_page() as page:
            page.goto(f"{server.url}/train")
            epochs = page.get_by_label("Epochs")
            epochs.fill("20")  # long enough to restart, cancel and resume mid-run on a fast machine (~10 steps/s)
            epochs.press("Tab")
            page.get_by_role("button", name="Launch training").click()
            page.wait_for_url(re.compile(r"/monitor\?job=run-"), timeout=90_000)
            wait_for_status(page, {"running"})
            before = wait_for_step_above(page, 2)

            # Restart the Streamlit server while the job runs; reload; the job is still there and moving.
            server.restart()
            page.reload()
            assert wait_for_status(page, {"running"}) == "running"
            after = wait_for_step_above(page, before)
            assert after > before
            page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)

            # Cancel, then resume from the last checkpoint.
            page.get_by_role("button", name="Cancel").click()
            assert wait_for_status(page, {"cancelled"}, timeout=60) == "cancelled"
            stopped_at = current_step(page)
            page.get_by_role("button", name="Resume").click()
            assert wait_for_status(page, {"running", "succeeded"}, timeout=90) in ("running", "succeeded")
            from legalft.train import refresh_job

            deadline = time.monotonic() + 60
            job = refresh_job(list_jobs()[0].id)
            while job.progress.get("resumed_from_step") is None and time.monotonic() < deadline:
                time.sleep(0.5)
                job = refresh_job(job.id)
            assert job.progress["attempt"] == 2
            assert 0 < job.progress["resumed_from_step"] <= stopped_at
    finally:
        from legalft.train import cancel_job

        for job in list_jobs():
            if not job.is_terminal:
                cancel_job(job.id)
