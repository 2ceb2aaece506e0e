"""The SSH target in a real Chromium: launch on "my GPU VM" from the Train page, follow it on the
Monitor page through a Streamlit restart, and see the adapter back here (Merge is offered)."""

from __future__ import annotations

import re
import sys

import pytest

from legalft.data.registry import register_dataset
from legalft.jobs import list_jobs
from tests.browser import chromium_page, streamlit_server
from tests.conftest import REFERENCE_QA, missing
from tests.sshd import ALIAS, Sshd, sshd_path
from tests.test_browser_monitor import wait_for_status

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              missing(not sshd_path(), "needs openssh-server (make test installs it)")]


def _fill(page, label: str, value: str) -> None:
    box = page.get_by_role("textbox", name=label, exact=True)
    box.fill(value)
    box.press("Enter")


def test_launch_on_my_gpu_vm_follow_through_a_restart_and_get_the_adapter(tmp_path, legalft_home):
    sshd = Sshd(tmp_path / "sshd")
    sshd.start()
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(REFERENCE_QA.read_text(encoding="utf-8").splitlines()[1:25]) + "\n")
    register_dataset(data, "slice.jsonl")
    try:
        with streamlit_server(legalft_home, env=sshd.env()) as server, chromium_page() as page:
            page.goto(f"{server.url}/train")
            page.get_by_text("My GPU VM (SSH)").click()
            _fill(page, "Host: an ssh_config alias or user@host[:port]", ALIAS)
            _fill(page, "Folder on the host", str(tmp_path / "gpu-host"))
            _fill(page, "Python with the pinned set (optional)", sys.executable)
            epochs = page.get_by_label("Epochs")
            epochs.fill("1")
            epochs.press("Tab")
            page.get_by_role("button", name="Check the target").click()
            page.get_by_text("is ready").first.wait_for(timeout=120_000)
            assert page.get_by_text("keeps billing").first.is_visible()
            page.get_by_role("button", name="Launch training").click()
            page.wait_for_url(re.compile(r"/monitor\?job=run-"), timeout=120_000)
            wait_for_status(page, {"queued", "running"}, timeout=60)

            server.restart()  # the follower and the remote trainer do not depend on the app
            page.reload()
            ended = wait_for_status(page, {"succeeded", "failed", "cancelled"}, timeout=400)
            assert ended == "succeeded", list_jobs()[0].error
            page.get_by_role("button", name="Merge adapter").wait_for(timeout=60_000)
            page.screenshot(path=str(tmp_path / "monitor-remote.png"), full_page=True)
        job = list_jobs()[0]
        assert job.remote["target"]["host"] == ALIAS
        assert (tmp_path / "gpu-host" / "runs" / job.id / "adapter").is_dir()
        assert job.output.get("adapter", "").startswith(str(legalft_home))
    finally:
        sshd.stop()
