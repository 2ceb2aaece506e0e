"""The managed form of the Train page and the managed panel of the Monitor page, through AppTest."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest
from test_token_factory import control, launched, small_client

from legalft import managed as tf
from legalft.jobs import get_job, list_checkpoints
from tests.conftest import ROOT
from tests.test_pages_train_monitor import metric, registered_reference

APP = str(ROOT / "app.py")


def managed_form(tmp_path) -> AppTest:
    registered_reference(tmp_path)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/train.py")
    at.run()
    at.radio(key="train_path").set_value("Nebius Token Factory (managed)").run()
    assert not at.exception, at.exception
    return at


def test_managed_form_is_held_to_the_service_limits_and_says_why_a_price_is_missing(standin, tmp_path):
    at = managed_form(tmp_path)
    assert at.number_input(key="train_tf_epochs").max == 20
    assert at.number_input(key="train_tf_context").max == 131072
    assert at.number_input(key="train_tf_r").min == 8
    at.number_input(key="train_tf_context").set_value(4096).run()  # below the service's 8,192
    assert any("context length must be from 8,192 to 131,072 (the service's limit)" in e.value for e in at.error)
    at.number_input(key="train_tf_context").set_value(0).run()
    at.selectbox(key="train_tf_model").set_value("meta-llama/Llama-3.3-70B-Instruct").run()
    assert metric(at, "Training cost") == "no price"
    assert any("has 70B" in c.value and "Costs page" in c.value for c in at.caption)


def test_managed_form_continues_from_a_checkpoint_and_names_missing_integration_secrets(standin, tmp_path):
    first = tf.wait_for_job(launched(standin, tmp_path, epochs=2), poll_seconds=0.05)
    at = managed_form(tmp_path)
    picker = at.selectbox(key="train_tf_from")
    latest = list_checkpoints(first.id)[-1]["checkpoint_id"]
    assert picker.options[1].endswith("· epoch 2 · train loss 0.9800")  # the latest first, labelled
    picker.set_value(f"{first.remote_id}:{latest}").run()
    at.multiselect(key="train_tf_integrations").set_value(["wandb"]).run()
    assert any("needs WANDB_API_KEY" in w.value for w in at.warning)
    at.button(key="train_tf_launch").click().run()
    assert any("needs WANDB_API_KEY" in e.value for e in at.error)  # refused before any upload
    at.multiselect(key="train_tf_integrations").set_value([]).run()
    at.button(key="train_tf_launch").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    job = next(j for j in tf_jobs() if j.id != first.id)
    assert job.config["from_checkpoint"] == f"{first.remote_id}:{latest}"
    remote = small_client(standin).retrieve_job(job.remote_id)
    assert remote["from_checkpoint"]["checkpoint_id"] == latest


def tf_jobs():
    from legalft.jobs import list_jobs

    return [j for j in list_jobs() if j.path == "token_factory"]


def test_monitor_shows_a_short_status_readable_events_and_no_cost_for_a_job_cancelled_early(standin, tmp_path):
    control(standin, {"delay": 0.0})
    standin.state.phase_seconds = 30  # it stays validating until cancelled
    job_id = launched(standin, tmp_path, epochs=1)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/monitor.py")
    at.run()
    assert metric(at, "Status") == "Validating"
    tf.cancel_job(job_id, small_client(standin))
    at.run()
    assert metric(at, "Status") == "Cancelled"
    cost = next(m for m in at.metric if m.label == "Cost (est. → actual)")
    assert get_job(job_id).actual_cost == 0.0 and cost.proto.delta == "actual $0.00"
    events = next(c for c in at.code).value.splitlines()
    assert events[0].split(" ", 1)[1].startswith("info  Validating training file")
    assert len(events[0]) < 60  # the time of day only, so the message stays in view
