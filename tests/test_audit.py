"""The audit trail (a row per action, with the right user), budgets (refusal, admin override, spend from
the job records) and deleting a managed job's data at the provider (against the managed stand-in)."""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from token_factory_server import DEFAULT_KEY, start_server

from legalft import auth, costs
from legalft import managed as tf
from legalft.audit import activity_summary, audit_csv, list_audit, record
from legalft.auth import User, acting_as
from legalft.budget import budget_status, override_budget, set_budget
from legalft.cli import main
from legalft.db import connect
from legalft.endpoints import list_endpoints
from legalft.errors import AccessDenied, BudgetExceeded, JobStateError
from legalft.jobs import create_job, get_job, list_jobs, update_job
from legalft.managed.cleanup import delete_provider_data, provider_footprint

TRAINER = User(id="tom@firm.co.uk", name="Tom", role="trainer", source="sign-in")
ADMIN = User(id="ada@firm.co.uk", name="Ada", role="admin", source="sign-in")
ROOT = Path(__file__).resolve().parent.parent


def _qa(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What does section {i} of the Example Act 2000 say?"},
                         {"role": "assistant", "content": f"Section {i} provides that the Act applies to item {i}."}]}


def _data(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(_qa(i)) + "\n" for i in range(n)))
    return path


def _at_provider(server, file_id: str) -> bool:
    """Whether the stand-in still holds a file (GET /v1/files/ID)."""
    request = urllib.request.Request(f"{server.base_url}/files/{file_id}",
                                     headers={"Authorization": f"Bearer {tf.resolve_api_key()[0]}"})
    try:
        with urllib.request.urlopen(request):
            return True
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        return False


def test_the_audit_log_is_append_only():
    row = record("chat", target="x")
    with connect() as conn:
        for sql in ("UPDATE audit_log SET user_id = 'someone-else'", "DELETE FROM audit_log"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert [e.id for e in list_audit()] == [row]


def test_each_local_action_is_recorded_with_its_user(tmp_path):
    from legalft.data.registry import register_dataset
    from legalft.data.workbench import save_upload
    from legalft.serve import start_server, stop_server
    from legalft.train import cancel_job, merge_run, resume_job

    data = _data(tmp_path, 3)
    done = create_job("local", job_id="local-done", status="succeeded", name="done", run_dir=str(tmp_path / "gone"))
    with acting_as(TRAINER):
        upload = save_upload("matter.jsonl", data.read_bytes())
        dataset = register_dataset(upload, "matter 7731")
        assert cancel_job(done.id).status == "succeeded"  # already ended: returned unchanged, still recorded
        with pytest.raises(JobStateError):
            resume_job(done.id)
        with pytest.raises(Exception):  # noqa: B017 - whatever merge says about a run without an adapter
            merge_run(done.id)
        with pytest.raises(Exception):  # noqa: B017 - a target that is not a model
            start_server(str(tmp_path / "no-model"))
        with pytest.raises(Exception):  # noqa: B017 - an endpoint that does not exist
            stop_server(999)
    with acting_as(ADMIN):
        costs.set_price_override("tf_training_small", 0.5)
        assert costs.clear_price_override("tf_training_small") is True
        set_budget("managed", 100.0)
    rows = {(e.action, e.outcome): e for e in list_audit()}
    assert set(rows) == {
        ("dataset.upload", "ok"), ("dataset.register", "ok"), ("train.cancel", "ok"), ("train.resume", "failed"),
        ("train.merge", "failed"), ("serve.start", "failed"), ("serve.stop", "failed"), ("prices.override", "ok"),
        ("budget.set", "ok")}
    for (name, _), entry in rows.items():
        expected = ADMIN if name in ("prices.override", "budget.set") else TRAINER
        assert (entry.user_id, entry.role, entry.source) == (expected.id, expected.role, "sign-in"), name
    assert rows[("dataset.register", "ok")].target == f"matter 7731 (#{dataset.id})"
    assert rows[("train.cancel", "ok")].target == "local-done"
    assert "local-done" in rows[("train.resume", "failed")].details["error"]
    assert rows[("budget.set", "ok")].details == {"monthly_usd": 100.0}
    assert len([e for e in list_audit() if e.action == "prices.override"]) == 2


def test_a_cli_action_is_recorded_under_the_os_user(capsys):
    assert main(["budget", "set", "gpu", "250"]) == 0
    assert "GPU time" in capsys.readouterr().out
    entry = list_audit(action_prefix="budget")[0]
    assert entry.user_id == f"os:{auth.os_user()}" and entry.source == "cli" and entry.role == "admin"
    assert main(["audit", "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("id,at,user_id") and "budget.set" in lines[1]


def test_managed_launch_cancel_deploy_delete_are_recorded_with_the_estimate(standin, tmp_path):
    report = tf.preflight_dataset(_data(tmp_path))
    config = tf.LaunchConfig(n_epochs=2)
    estimate = report.estimated_cost(config.model, config.n_epochs)
    assert estimate and estimate > 0
    with acting_as(TRAINER):
        job = tf.launch_job(report, config)
        job = tf.wait_for_job(job.id, poll_seconds=0.05)
        with pytest.raises(AccessDenied):
            tf.deploy_checkpoint(job.id, name="uk-legal")
        slow = start_server(phase_seconds=30)
        try:
            client = tf.TokenFactoryClient(DEFAULT_KEY, slow.base_url, max_retries=1)
            other = tf.launch_job(tf.preflight_dataset(_data(tmp_path)), config, client=client)
            assert tf.cancel_job(other.id, client=client).status == "cancelled"
        finally:
            slow.shutdown()
            slow.server_close()
    with acting_as(ADMIN):
        endpoint = tf.deploy_checkpoint(job.id, name="uk-legal")
        tf.delete_model(endpoint.model)
    entries = list_audit()
    launch = [e for e in entries if e.action == "managed.launch"]
    assert len(launch) == 2 and {e.user_id for e in launch} == {TRAINER.id}
    assert launch[-1].target == job.id and launch[-1].estimated_cost == pytest.approx(estimate)
    assert [(e.action, e.outcome, e.user_id) for e in entries if e.action in ("managed.deploy", "managed.delete_model",
                                                                             "managed.cancel")] == [
        ("managed.delete_model", "ok", ADMIN.id), ("managed.deploy", "ok", ADMIN.id),
        ("managed.cancel", "ok", TRAINER.id), ("managed.deploy", "denied", TRAINER.id)]
    exported = audit_csv(entries).splitlines()
    assert exported[0] == "id,at,user_id,role,source,action,target,outcome,estimated_cost,details"
    assert len(exported) == len(entries) + 1 and f"{estimate:.2f}" in exported[-1]
    summary = activity_summary(entries)
    assert summary["users"] == 2 and summary["refused"] == 1
    assert summary["estimated_cost"] == pytest.approx(2 * estimate, abs=0.01)


def test_budget_refuses_a_launch_over_what_is_left_and_an_admin_may_override(standin, tmp_path):
    report = tf.preflight_dataset(_data(tmp_path))
    config = tf.LaunchConfig(n_epochs=2)
    estimate = report.estimated_cost(config.model, config.n_epochs)
    # Spend so far comes from the job records: actual cost where known, else the estimate.
    create_job("token_factory", status="succeeded", estimated_cost=9.0, actual_cost=4.0)
    create_job("token_factory", status="running", estimated_cost=3.0)
    create_job("local", status="succeeded", estimated_cost=50.0)  # GPU time: another budget
    with acting_as(ADMIN):
        set_budget("managed", 7.0 + estimate / 2)
    status = budget_status("managed")
    assert (status.spent, status.jobs, status.left) == (7.0, 2, pytest.approx(estimate / 2, abs=0.01))
    assert budget_status("gpu").spent == 50.0 and budget_status("gpu").limit is None

    with acting_as(TRAINER):
        with pytest.raises(BudgetExceeded, match=r"over what is left of this month's managed training"):
            tf.launch_job(report, config)
        assert len(list_jobs("token_factory")) == 2  # nothing recorded, nothing uploaded
        with override_budget("partner approved, matter 7731"), pytest.raises(AccessDenied, match="admin"):
            tf.launch_job(report, config)  # a trainer cannot override
    assert list_jobs("token_factory")[0].remote.get("training_file") is None
    with acting_as(ADMIN), override_budget("partner approved, matter 7731"):
        job = tf.launch_job(report, config)
    assert get_job(job.id).estimated_cost == pytest.approx(estimate)
    rows = [(e.action, e.outcome, e.user_id) for e in list_audit(action_prefix="managed.launch")]
    assert rows == [("managed.launch", "ok", ADMIN.id), ("managed.launch", "refused", TRAINER.id)]
    override = list_audit(action_prefix="budget.override", outcome="override")
    assert len(override) == 1 and override[0].user_id == ADMIN.id and override[0].outcome == "override"
    assert override[0].details["reason"] == "partner approved, matter 7731"
    denied = list_audit(outcome="denied")
    assert [e.action for e in denied] == ["budget.override"] and denied[0].user_id == TRAINER.id


def test_a_gpu_budget_refuses_a_local_start_before_anything_runs():
    from legalft.train import load_recipe, start_training

    with acting_as(ADMIN):
        set_budget("gpu", 1.0)
    with pytest.raises(BudgetExceeded, match="GPU time"):
        start_training(load_recipe("smoke"), estimated_cost=2.5)
    assert list_jobs() == []
    assert list_audit()[0].outcome == "refused" and list_audit()[0].estimated_cost == 2.5


def test_budget_values_are_checked():
    with pytest.raises(Exception, match="finite"):
        set_budget("managed", float("nan"))
    with pytest.raises(Exception, match="unknown budget"):
        set_budget("tokens", 1.0)


def test_provider_data_is_listed_and_deleted(standin, tmp_path, capsys):
    validation = tf.preflight_dataset(_data(tmp_path, 5))
    job = tf.launch_job(tf.preflight_dataset(_data(tmp_path)), tf.LaunchConfig(n_epochs=1), validation=validation)
    with pytest.raises(JobStateError, match="cancel it first"):
        delete_provider_data(job.id)  # still running at the service
    job = tf.wait_for_job(job.id, poll_seconds=0.05)
    endpoint = tf.deploy_checkpoint(job.id, name="matter-7731")
    footprint = provider_footprint(job.id)
    roles = {item.role: item for item in footprint.items}
    assert {"training file", "validation file", "deployment"} <= set(roles)
    assert roles["training file"].present and roles["validation file"].present and roles["deployment"].present
    files = [job.remote["training_file"], job.remote["validation_file"]]
    assert all(_at_provider(standin, f) for f in files)

    with acting_as(TRAINER), pytest.raises(AccessDenied, match="admin"):
        delete_provider_data(job.id)
    assert main(["provider-data", job.id]) == 0
    assert "training file" in capsys.readouterr().out
    report = delete_provider_data(job.id)
    assert report.ok and endpoint.model in report.deleted and job.remote["training_file"] in report.deleted
    assert not any(_at_provider(standin, f) for f in files)
    assert list_endpoints("token_factory") == [] and tf.list_models() == []
    after = provider_footprint(job.id)
    assert after.present == [] and after.deleted_at
    # Again: everything already gone, nothing fails.
    again = delete_provider_data(job.id)
    assert again.ok and again.deleted == [] and set(again.already_gone) >= {job.remote["training_file"]}
    entries = list_audit(action_prefix="managed.cleanup")
    assert [(e.outcome, e.target) for e in entries] == [("ok", job.id), ("ok", job.id), ("denied", job.id),
                                                            ("failed", job.id)]


def test_a_local_job_has_nothing_at_a_provider():
    job = create_job("local", status="succeeded")
    with pytest.raises(JobStateError, match="nothing of it is at a provider"):
        provider_footprint(job.id)
    update_job(job.id, status="failed")


# --- the Activity and Monitor pages (AppTest, through the router) ----------------------------------


def _open(page: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_activity_page_shows_filters_exports_and_sets_a_budget(tmp_path):
    from legalft.data.registry import register_dataset

    with acting_as(TRAINER):
        register_dataset(_data(tmp_path, 3), "matter 7731")
    with acting_as(User(id="vera@firm.co.uk", name="Vera", role="viewer", source="sign-in")), \
            pytest.raises(AccessDenied):
        set_budget("gpu", 1.0)
    at = _open("views/activity.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Entries"] == "2" and metrics["Users"] == "2" and metrics["Refused"] == "1"
    table = at.dataframe[0].value
    assert list(table["action"]) == ["budget.set", "dataset.register"] and list(table["outcome"]) == ["denied", "ok"]
    # Filter by user.
    at.selectbox(key="activity_user").set_value(TRAINER.id).run()
    assert list(at.dataframe[0].value["user"]) == [TRAINER.id]
    # Without sign-in the app's user is this machine's user, an admin: the budget form is offered and audited.
    at.selectbox(key="activity_budget_kind").set_value("gpu")
    at.number_input(key="activity_budget_amount").set_value(300.0)
    next(b for b in at.button if b.label == "Save budget").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert budget_status("gpu").limit == 300.0
    entry = list_audit(action_prefix="budget.set", outcome="ok")[0]
    assert entry.user_id == f"os:{auth.os_user()}" and entry.source == "local"


def test_monitor_page_lists_and_deletes_data_at_the_provider(standin, tmp_path):
    job = tf.wait_for_job(tf.launch_job(tf.preflight_dataset(_data(tmp_path)), tf.LaunchConfig(n_epochs=1)).id,
                          poll_seconds=0.05)
    at = _open("views/monitor.py")
    at.query_params["job"] = job.id
    at.run()
    rows = at.dataframe[-1].value
    assert list(rows["role"]) == ["training file"] and list(rows["id"]) == [job.remote["training_file"]]
    # The service also holds the job's result files (the last checkpoint's): they go too.
    results = tf.TokenFactoryClient().retrieve_job(job.remote_id)["result_files"]
    assert results and all(_at_provider(standin, file_id) for file_id in results)
    next(b for b in at.button if b.label == "Delete at the provider").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"Deleted {1 + len(results)} item(s) at the provider" in s.value for s in at.success)
    assert not any(_at_provider(standin, file_id) for file_id in [job.remote["training_file"], *results])
    assert get_job(job.id).remote["provider_data_deleted_at"]


def test_train_page_shows_the_estimate_against_the_budget_and_an_admin_overrides(standin, tmp_path):
    from legalft.data.registry import register_dataset
    from legalft.data.sanitize import sanitize_file

    clean = tmp_path / "clean.jsonl"
    sanitize_file(ROOT / "data" / "legislation_qa_clean.jsonl", clean)
    register_dataset(clean, "reference.jsonl")
    set_budget("managed", 0.0)
    at = _open("views/train.py")
    at.radio(key="train_path").set_value("Nebius Token Factory (managed)").run()
    line = next(c.value for c in at.caption if c.value.startswith("Budget:"))
    assert "against $0.00 left of $0.00" in line and "OVER what is left" in line
    # The page's user (this machine's, an admin without sign-in) is offered the override; without a
    # reason the launch is refused, with one it goes ahead and both are recorded.
    at.button(key="train_tf_launch").click().run()
    assert any("Not launched" in e.value and "budget" in e.value for e in at.error)
    assert list_jobs("token_factory") == []
    at.text_input(key="train_tf_budget_reason").input("partner approved").run()
    at.button(key="train_tf_launch").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(list_jobs("token_factory")) == 1
    outcomes = [(e.action, e.outcome) for e in list_audit()][:3]
    assert outcomes == [("managed.launch", "ok"), ("budget.override", "override"), ("managed.launch", "refused")]


def test_the_launch_estimate_follows_the_target():
    from legalft.targets import parse_target

    default = costs.one_time_gpu_cost(costs.effective_prices())
    assert costs.launch_gpu_cost(None).cost == costs.launch_gpu_cost(parse_target("local")).cost == default.cost
    eight = costs.launch_gpu_cost(parse_target("skypilot:nebius/eu-north1", accelerators="H100:8", hourly_rate=3.0))
    assert eight.cost == pytest.approx(47 / 60 * 3.0 * 8) and "× 8 GPUs" in eight.basis
    vm = costs.launch_gpu_cost(parse_target("ssh:gpu-box", hourly_rate=1.5))
    assert vm.cost == pytest.approx(47 / 60 * 1.5) and "your rate" in vm.basis


def test_the_estimate_and_the_runs_cost_bill_the_same_gpus(tmp_path):
    """Two nodes of H100:2 are four GPUs for the estimate before launch and for the minutes after."""
    from legalft.targets.follow import run_cost
    from legalft.targets.skypilot import SkyPilotTarget
    from legalft.train.rundir import SYNC_FILE, TARGET_FILE, write_json_atomic

    target = SkyPilotTarget(infra="nebius/eu-north1", accelerators="H100:2", num_nodes=2, hourly_rate=3.0)
    assert costs.launch_gpu_cost(target).cost == pytest.approx(47 / 60 * 3.0 * 4)
    write_json_atomic(tmp_path / TARGET_FILE, target.to_dict())
    write_json_atomic(tmp_path / SYNC_FILE, {"phases": {"provision": 120, "train": 480}})
    cost = run_cost(tmp_path)
    assert cost["gpus"] == 4 and cost["cost"] == pytest.approx(10 / 60 * 3.0 * 4)


def test_a_cli_training_launch_counts_against_the_gpu_budget(tmp_path, capsys):
    from legalft.train import cancel_job

    data = _data(tmp_path)
    estimate = round(costs.launch_gpu_cost(None).cost, 2)
    assert main(["budget", "set", "gpu", "1"]) == 0
    capsys.readouterr()
    argv = ["train", "--recipe", "smoke", "--model", str(tmp_path / "no-model"), "--no-check", "--dataset", str(data)]
    assert main(argv) == BudgetExceeded.exit_code
    out, err = capsys.readouterr()
    assert f"Budget: estimate ${estimate:,.2f} against $1.00 left of $1.00" in out and "OVER" in out
    assert "over what is left of this month's GPU time" in err
    assert list_jobs() == []  # nothing started
    refused = list_audit(action_prefix="train.start")[0]
    assert (refused.outcome, refused.estimated_cost, refused.user_id) == ("refused", estimate, f"os:{auth.os_user()}")

    # The CLI's user is an admin (no OS user on the allow-list): it may go over, with a reason.
    assert main([*argv, "--over-budget", "matter 7731, partner approved"]) == 0
    job = list_jobs()[0]
    cancel_job(job.id)
    assert job.estimated_cost == estimate  # kept on the job: this month's spend counts it
    assert budget_status("gpu").spent == estimate
    override = list_audit(action_prefix="budget.override")[0]
    assert override.details["reason"] == "matter 7731, partner approved" and override.details["for"] == "train.start"
    assert [e.outcome for e in list_audit(action_prefix="train.start")][:1] == ["ok"]

    # A trainer at the shell (an OS user on the allow-list) is refused the override.
    assert main(["users", "add", f"os:{auth.os_user()}", "--role", "trainer"]) == 0
    assert main([*argv, "--over-budget", "again"]) == AccessDenied.exit_code
    assert len(list_jobs()) == 1


def test_a_cli_managed_launch_shows_the_budget_and_takes_an_override(standin, tmp_path, capsys):
    data = _data(tmp_path)
    assert main(["budget", "set", "managed", "0"]) == 0
    argv = ["tf", "launch", "--dataset", str(data), "--epochs", "1"]
    assert main(argv) == BudgetExceeded.exit_code
    out, err = capsys.readouterr()
    assert "against $0.00 left of $0.00" in out and "OVER" in out and "managed training" in err
    assert list_jobs("token_factory") == []
    assert main([*argv, "--over-budget", "urgent matter"]) == 0
    assert len(list_jobs("token_factory")) == 1
    assert [(e.action, e.outcome) for e in list_audit()][:3] == [
        ("managed.launch", "ok"), ("budget.override", "override"), ("managed.launch", "refused")]


def test_an_evaluation_is_recorded_with_its_user_and_needs_a_role():
    from legalft.endpoints import save_endpoint
    from legalft.evaluate.runs import EvalTarget, create_run
    from legalft.evaluate.sets import EvalItem, EvalSet

    endpoint = save_endpoint(kind="vllm", name="tuned", base_url="http://127.0.0.1:9/v1", model="tuned",
                             status="ready")
    evalset = EvalSet(name="held-out", source="test", items=[EvalItem("What is s. 1?", "It says so.")])
    viewer = User(id="vic@firm.co.uk", name="Vic", role="viewer", source="sign-in")
    with acting_as(viewer):
        run_id = create_run(evalset, [EvalTarget(endpoint.id, label="tuned")])
    entry = list_audit(action_prefix="evaluate")[0]
    assert (entry.action, entry.outcome, entry.user_id, entry.target) == ("evaluate.run", "ok", viewer.id, run_id)
    assert entry.details == {"set": "held-out", "questions": 1, "endpoints": ["tuned"]}
    stranger = User(id="eve@elsewhere.com", name="Eve", role=None, source="sign-in")
    with acting_as(stranger), pytest.raises(AccessDenied, match="allow-list"):
        create_run(evalset, [EvalTarget(endpoint.id)])
    assert list_audit(action_prefix="evaluate")[0].outcome == "denied"
