"""Train and Monitor pages through AppTest: both paths launched from the page and followed to the end."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest
from token_factory_server import DEFAULT_KEY

from legalft.data.registry import register_dataset
from legalft.data.sanitize import sanitize_file
from legalft.endpoints import list_endpoints
from legalft.jobs import get_job, list_jobs
from tests.conftest import REFERENCE_QA, ROOT, open_app_page

APP = str(ROOT / "app.py")


def registered_reference(tmp_path):
    clean = tmp_path / "clean.jsonl"
    report = sanitize_file(REFERENCE_QA, clean)
    return register_dataset(clean, "reference.jsonl", report.to_dict())


def open_page(page: str) -> AppTest:
    return open_app_page(page)


def metric(at: AppTest, label: str) -> str | None:
    return next((m.value for m in at.metric if m.label == label), None)


def follow_to_end(at: AppTest, timeout: float = 240) -> str:
    """Re-run the Monitor page as its fragment would, until the job ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, at.exception
        status = (metric(at, "Status") or "").lower()
        if status in ("succeeded", "failed", "cancelled"):
            return status
        time.sleep(1)
    raise AssertionError(f"the job did not end within {timeout} s (status {metric(at, 'Status')})")


def test_train_page_without_a_dataset_points_to_the_dataset_page():
    at = open_page("views/train.py")
    assert "No dataset is registered" in at.info[0].value


def test_monitor_page_without_jobs_says_so():
    at = open_page("views/monitor.py")
    assert "No fine-tuning job yet" in at.info[0].value


def test_cloud_settings_show_memory_and_cost_and_reject_contradictions(tmp_path):
    registered_reference(tmp_path)
    at = open_page("views/train.py")
    assert metric(at, "Records") == "148"
    assert metric(at, "Fits in memory") == "yes"
    assert metric(at, "One-time GPU cost (setup, training, merge, server start)").startswith("$")
    assert any("CPU" in c.value for c in at.caption)  # no GPU here, said plainly
    assert not at.button(key="train_launch").disabled
    at.selectbox(key="train_method").set_value("qlora").run()  # the Method setting (config key "method")
    # The real reason is the headline, not a caption under a "fits: no" that contradicts the figures.
    [error] = [e.value for e in at.error]
    assert error.startswith("**This cannot train here:**") and "needs a CUDA GPU" in error
    assert not any("needs a CUDA GPU" in c.value for c in at.caption)
    assert metric(at, "Fits in memory") == "yes"
    assert at.button(key="train_launch").disabled  # refused before a click, not 8 s after one
    at.button(key="train_use_lora").click().run()  # the fix, one click away
    assert at.selectbox(key="train_method").value == "lora" and not at.error
    assert not at.button(key="train_launch").disabled


@pytest.mark.slow
def test_local_smoke_run_launched_from_train_page_and_followed_to_succeeded(tmp_path):
    dataset = registered_reference(tmp_path)
    at = open_page("views/train.py")
    at.button(key="train_launch").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    job_id = list_jobs()[0].id
    job = get_job(job_id)
    assert job.path == "local" and job.dataset_id == dataset.id and job.estimated_cost is not None
    at.switch_page("views/monitor.py")
    assert follow_to_end(at) == "succeeded"
    charts = at.get("plotly_chart")
    assert charts, "the loss chart is drawn"
    figure = charts[0].proto.spec
    assert "train loss" in figure and "validation loss" in figure
    assert job_id in str(at.query_params["job"])  # the URL names the job, so a refresh comes back to it
    # Next step: merge, from the page.
    at.button(key=f"monitor_merge_{job_id}").click().run()
    assert not at.exception, at.exception
    assert get_job(job_id).output.get("merged")
    at.run()
    assert any("parity check passed" in s.value for s in at.success)



@pytest.mark.slow
def test_managed_run_launched_from_train_page_followed_and_deployed(tmp_path, standin):
    registered_reference(tmp_path)
    at = open_page("views/train.py")
    at.radio(key="train_path").set_value("Nebius Token Factory (managed)").run()
    assert not at.exception, at.exception
    assert any("API key configured" in s.value for s in at.success)
    assert DEFAULT_KEY not in str([s.value for s in at.success] + [c.value for c in at.caption])
    assert metric(at, "Training cost").startswith("$")
    at.number_input(key="train_tf_epochs").set_value(2).run()
    at.button(key="train_tf_launch").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    job_id = list_jobs()[0].id
    assert get_job(job_id).remote_id.startswith("ftjob-")
    at.switch_page("views/monitor.py")
    assert follow_to_end(at, timeout=60) == "succeeded"
    figure = at.get("plotly_chart")[0].proto.spec
    assert "train loss" in figure and "validation loss" in figure
    assert "Events" in str([m.value for m in at.markdown])
    # The checkpoint picker names each by epoch and validation loss.
    picker = at.selectbox(key=f"monitor_deploy_ckpt_{job_id}")
    assert picker.options[0].startswith("epoch 2 · valid loss ")
    # Deploy the latest checkpoint from the Monitor page: the page follows it to active by itself
    # (each run below is what the panel's timer does), through the service's first 404.
    form_submit = next(b for b in at.button if b.label == "Deploy")
    form_submit.click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        endpoints = [e for e in list_endpoints("token_factory") if e.job_id == job_id]
        if endpoints and endpoints[0].status == "active":
            break
        assert not [b for b in at.button if b.label == "Check deployment"]
        at.run()
        time.sleep(0.5)
    assert endpoints and endpoints[0].status == "active"
    at.run()
    assert any("**active**" in m.value for m in at.markdown)
    assert [j.id for j in list_jobs()] == [job_id]
