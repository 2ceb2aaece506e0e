"""Estimate beside actual for every job: a managed stand-in run, a smoke run on the CPU, a GPU run."""

from __future__ import annotations

import json

import pytest
from token_factory_server import DEFAULT_KEY

from legalft import costs
from legalft import managed as tf
from legalft.cli import main as cli_main
from legalft.jobs import create_job, get_job, list_jobs, update_job
from legalft.train import build_smoke_model
from tests.conftest import REFERENCE_QA


def test_managed_stand_in_run_actual_is_billed_tokens_times_price(standin, tmp_path):
    report = tf.preflight_dataset(REFERENCE_QA, out_dir=tmp_path)
    job = tf.launch_job(report, tf.LaunchConfig(n_epochs=2),
                        client=tf.TokenFactoryClient(DEFAULT_KEY, standin.base_url, max_retries=1))
    before = costs.job_cost(get_job(job.id))
    tokens = costs.estimate_trained_tokens(report.upload_path, epochs=2)
    assert before.estimate == pytest.approx(costs.estimate_managed_training(tokens).cost)
    job = tf.wait_for_job(job.id, poll_seconds=0.05)
    assert job.status == "succeeded"
    spent = costs.job_cost(job)
    billed = job.progress["trained_tokens"]
    assert spent.actual == pytest.approx(billed * 0.40 / 1e6)
    assert spent.actual_basis == f"{billed:,} billed trained tokens × $0.4 per 1M"
    assert spent.estimate == job.estimated_cost


def test_a_gpu_run_is_billed_by_its_measured_minutes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"state": "succeeded", "device": "cuda"}))
    job = create_job("local", status="running", run_dir=str(run_dir), base_model="acme/model-8B", estimated_cost=2.31)
    assert costs.job_cost(job).actual is None  # still running
    job = update_job(job.id, status="succeeded", started_at="2026-12-01T10:00:00+00:00",
                     finished_at="2026-12-01T10:12:00+00:00")
    spent = costs.job_cost(job)
    assert spent.actual == pytest.approx(12 / 60 * 2.95)  # 12 measured minutes at $2.95/GPU-hour
    assert spent.actual_basis.startswith("12.0 measured minutes on cuda × $2.95/GPU-hour")
    assert spent.estimate == 2.31


@pytest.mark.slow
def test_smoke_run_on_the_cpu_costs_nothing_and_gives_a_measured_throughput(tmp_path):
    smoke = build_smoke_model(tmp_path / "smoke")
    lines = REFERENCE_QA.read_text(encoding="utf-8").splitlines()[1:33]
    data = tmp_path / "records.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert cli_main(["train", "--recipe", "smoke", "--model", str(smoke), "--dataset", str(data), "--wait"]) == 0
    job = list_jobs(path="local")[0]
    assert job.status == "succeeded"
    spent = costs.job_cost(job)
    assert spent.actual == 0.0 and spent.actual_basis == costs.CPU_BASIS
    # The CLI records the launch's estimate (the one-time GPU cost the GPU budget counted), as the page does.
    assert job.estimated_cost == spent.estimate == round(47 / 60 * 2.95, 2)
    assert spent.estimate_basis == "estimated before launch"
    runs = costs.measured_runs()
    assert [run.job_id for run in runs] == [job.id]
    assert runs[0].device == "cpu" and runs[0].tokens_per_second > 0 and runs[0].minutes > 0

    # The Costs page can use that measured speed in place of the reference article's minutes.
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/costs.py")
    at.run()
    at.selectbox(key="costs_measured_run").set_value(job.id).run()
    assert not at.exception, at.exception
    sequence = costs.estimate_trained_tokens(REFERENCE_QA, epochs=3).sequence_total
    minutes = sequence / runs[0].tokens_per_second / 60
    shown = next(m.value for m in at.metric if m.label == "Training (estimated)")
    assert shown == f"{minutes:.1f}"
    assert any("That run was on a CPU" in c.value for c in at.caption)


def test_monitor_page_shows_estimate_beside_actual_for_a_cpu_run(tmp_path):
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "status.json").write_text(json.dumps({"state": "succeeded", "device": "cpu"}))
    job = create_job("local", status="succeeded", run_dir=str(run_dir), base_model="builtin:smoke",
                     estimated_cost=2.31, started_at="2026-12-01T10:00:00+00:00",
                     finished_at="2026-12-01T10:02:00+00:00")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["monitor_job_id"] = job.id
    at.run()
    at.switch_page("views/monitor.py")
    at.run()
    assert not at.exception, at.exception
    cost = next(m for m in at.metric if m.label == "Cost (est. → actual)")
    assert cost.value == "$2.31" and cost.proto.delta == "actual $0.00"
    assert costs.CPU_BASIS in cost.proto.help


def test_a_job_recorded_without_an_estimate_shows_the_planners_figure_and_says_so():
    job = create_job("local", status="running", base_model="acme/model-8B")  # from before launches recorded one
    spent = costs.job_cost(job)
    assert spent.estimate == pytest.approx(47 / 60 * 2.95) and "none was recorded" in spent.estimate_basis
