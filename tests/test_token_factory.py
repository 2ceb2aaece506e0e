"""The managed path against the local stand-in, driven by the real openai SDK over HTTP."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from token_factory_server import DEFAULT_KEY, start_server

from legalft import managed as tf
from legalft.costs import training_price_per_million
from legalft.endpoints import list_endpoints
from legalft.errors import ServiceError
from legalft.jobs import get_job, list_checkpoints, list_events, list_jobs
from legalft.managed import preflight as preflight_module
from legalft.managed.preflight import check_service_rules
from legalft.polling import poll_until
from tests.managed import control

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_QA = ROOT / "data" / "legislation_qa_clean.jsonl"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"





def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def qa(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What does section {i} of the Example Act 2000 say?"},
                         {"role": "assistant", "content": f"Section {i} provides that the Act applies to item {i}."}]}


def small_client(server, **kwargs) -> tf.TokenFactoryClient:
    return tf.TokenFactoryClient(DEFAULT_KEY, server.base_url, **{"max_retries": 1, **kwargs})


def launched(server, tmp_path, epochs: int = 2, **config) -> str:
    data = write_jsonl(tmp_path / "train.jsonl", [qa(i) for i in range(20)])
    return tf.launch_job(data, tf.LaunchConfig(n_epochs=epochs, **config), client=small_client(server)).id


# --- the whole flow -------------------------------------------------------------------------------


def test_whole_flow_upload_train_deploy_chat(standin, tmp_path):
    validation = write_jsonl(tmp_path / "val.jsonl", [qa(i) for i in range(100, 110)])
    report = tf.preflight_dataset(REFERENCE_QA)
    assert report.ok and report.records == 148 and report.estimated_tokens > 10_000
    fractions = []
    job = tf.launch_job(report, tf.LaunchConfig(n_epochs=3, suffix="uk-legal"), validation=validation,
                        progress=lambda message, fraction: fractions.append(fraction))
    # Recorded at once, with the remote ids.
    stored = get_job(job.id)
    assert stored.remote_id.startswith("ftjob-") and stored.status == "validating_files"
    assert stored.remote["training_file"].startswith("file-") and stored.remote["validation_file"].startswith("file-")
    assert stored.config["hyperparameters"] == {
        "n_epochs": 3, "learning_rate": 1e-5, "lora": True, "lora_r": 16, "lora_alpha": 16,
        "lora_dropout": 0.05, "packing": True}
    assert stored.estimated_cost == pytest.approx(report.estimated_tokens * 3 * 0.40 / 1e6, rel=1e-3)
    assert 1.0 in fractions  # the upload reported its end

    seen = []
    job = tf.wait_for_job(job.id, poll_seconds=0.05, on_update=lambda j: seen.append(j.status))
    assert job.status == "succeeded" and seen[-1] == "succeeded"
    assert job.finished_at and job.progress["trained_steps"] == job.progress["total_steps"]
    price = training_price_per_million(MODEL)
    assert job.actual_cost == pytest.approx(job.progress["trained_tokens"] * price / 1e6, rel=1e-6)

    events = list_events(job.id)
    messages = [e["message"] for e in events]
    assert messages[0] == "Validating training file" and messages[-1] == "The job has successfully completed"
    assert messages.index("Epoch 1/3 completed: train loss 1.4") < messages.index("Epoch 3/3 completed: train loss 0.686")
    tf.sync_job(job.id)  # again: nothing is recorded twice
    assert len(list_events(job.id)) == len(events)

    checkpoints = list_checkpoints(job.id)
    assert len(checkpoints) == 3
    train_losses = [c["metrics"]["train_loss"] for c in checkpoints]
    valid_losses = [c["metrics"]["valid_loss"] for c in checkpoints]
    assert train_losses == sorted(train_losses, reverse=True) and len(set(train_losses)) == 3
    assert valid_losses == sorted(valid_losses, reverse=True)

    endpoint = tf.deploy_checkpoint(job.id, name="uk-legal")
    assert endpoint.status == "validating" and endpoint.details["checkpoint_id"] == checkpoints[-1]["checkpoint_id"]
    assert endpoint.model.startswith("meta-llama/Meta-Llama-3.1-8B-Instruct-LoRa:uk-legal-")
    endpoint = tf.poll_deployment(endpoint.model, wait=True, poll_seconds=0.05)
    assert endpoint.status == "active"
    assert [(e.model, e.status, e.job_id) for e in list_endpoints("token_factory")] == [
        (endpoint.model, "active", job.id)]

    answer = tf.smoke_test(endpoint.model)
    assert "Interpretation Act 1978" in answer.text and endpoint.model in answer.text
    tokens = []
    streamed = tf.chat(endpoint.model, "What is a statutory instrument?", on_token=tokens.append)
    assert len(tokens) > 5 and "".join(tokens) == streamed.text == answer.text

    assert [m["name"] for m in tf.list_models()] == [endpoint.model]
    tf.delete_model(endpoint.model)  # the service keeps it as "deleted"; the list leaves it out
    assert tf.list_models() == [] and list_endpoints("token_factory") == []


def test_deploy_an_earlier_checkpoint_and_refuse_an_unknown_one(standin, tmp_path):
    job_id = launched(standin, tmp_path, epochs=2)
    tf.wait_for_job(job_id, poll_seconds=0.05)
    first = list_checkpoints(job_id)[0]["checkpoint_id"]
    endpoint = tf.deploy_checkpoint(job_id, name="first-epoch", checkpoint_id=first)
    assert endpoint.details["source"].endswith(":" + first)
    with pytest.raises(ValueError, match="no checkpoint 'ftckpt_nope'"):
        tf.deploy_checkpoint(job_id, name="x", checkpoint_id="ftckpt_nope")


def test_deployment_error_reports_its_reason(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    tf.wait_for_job(job_id, poll_seconds=0.05)
    control(standin, {"deploy_error": "adapter rank exceeds the serving limit"})
    endpoint = tf.deploy_checkpoint(job_id, name="broken")
    endpoint = tf.poll_deployment(endpoint.model, wait=True, poll_seconds=0.05)
    assert endpoint.status == "error"
    assert endpoint.details["status_reason"] == "adapter rank exceeds the serving limit"


def test_cancel_records_cancelled_and_is_idempotent(monkeypatch, tmp_path):
    server = start_server(phase_seconds=5)  # slow enough to cancel mid-way
    monkeypatch.setenv(tf.KEY_ENV, DEFAULT_KEY)
    try:
        job_id = launched(server, tmp_path)
        job = tf.cancel_job(job_id)
        assert job.status == "cancelled" and job.finished_at
        assert list_events(job_id)[-1]["message"] == "Job cancelled"
        calls = len(control(server, path="/_control/requests"))
        assert tf.cancel_job(job_id).status == "cancelled"
        assert len(control(server, path="/_control/requests")) == calls  # no second remote call
    finally:
        server.shutdown()
        server.server_close()


# --- errors ---------------------------------------------------------------------------------------


def test_rejected_key_says_so_and_marks_the_launch_failed(standin, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [qa(i) for i in range(20)])
    client = tf.TokenFactoryClient("wrong-key-123456", standin.base_url)
    with pytest.raises(ServiceError) as caught:
        tf.launch_job(data, client=client)
    assert caught.value.kind == "auth" and "the key was rejected" in str(caught.value)
    [job] = list_jobs()
    assert job.status == "failed" and "the key was rejected" in job.error and job.remote_id is None


def test_missing_key_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(tf.KEY_ENV, raising=False)
    with pytest.raises(ServiceError, match="no Nebius API key: set NEBIUS_API_KEY") as caught:
        tf.TokenFactoryClient()
    assert caught.value.kind == "no_key"


def test_rate_limit_is_retried_after_the_wait_the_service_asks(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    control(standin, {"faults": [{"status": 429, "count": 1, "retry_after": 1, "path": "/v1/fine_tuning/jobs/"}]})
    job = tf.sync_job(job_id, small_client(standin))
    assert job.remote_id
    log = [r for r in control(standin, path="/_control/requests") if r["path"].startswith("/v1/fine_tuning/jobs/")]
    limited = next(i for i, r in enumerate(log) if r["status"] == 429)
    assert log[limited + 1]["status"] == 200 and log[limited + 1]["path"] == log[limited]["path"]
    assert log[limited + 1]["time"] - log[limited]["time"] >= 0.95  # Retry-After: 1 honoured


def test_rate_limit_that_persists_gives_a_clear_message(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    before = get_job(job_id)
    control(standin, {"faults": [{"status": 429, "count": 10, "retry_after": 0.1}]})
    with pytest.raises(ServiceError) as caught:
        tf.sync_job(job_id, small_client(standin))
    assert caught.value.kind == "rate_limit" and caught.value.transient
    assert "HTTP 429" in str(caught.value) and "after 1 retries" in str(caught.value)
    assert "wait 0.1 s" in str(caught.value)
    assert get_job(job_id) == before


def test_server_errors_are_retried_then_reported(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    control(standin, {"faults": [{"status": 500, "count": 1}]})
    assert tf.sync_job(job_id, small_client(standin)).remote_id  # one 500, then fine
    control(standin, {"faults": [{"status": 500, "count": 10}]})
    with pytest.raises(ServiceError, match=r"the service failed \(HTTP 500\) after 1 retries") as caught:
        tf.sync_job(job_id, small_client(standin))
    assert caught.value.kind == "server"
    statuses = [r["status"] for r in control(standin, path="/_control/requests")]
    assert statuses[-2:] == [500, 500]  # the first try and its retry


def test_timeout_is_retried_then_reported(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    control(standin, {"delay": 0.6})
    with pytest.raises(ServiceError, match="did not answer within 0.2 s") as caught:
        tf.sync_job(job_id, small_client(standin, timeout=0.2))
    assert caught.value.kind == "timeout"


def test_unreachable_service_leaves_local_state_intact(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    job = tf.wait_for_job(job_id, poll_seconds=0.05)
    before = (job, list_events(job_id), list_checkpoints(job_id))
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    client = tf.TokenFactoryClient(DEFAULT_KEY, dead, max_retries=0)
    with pytest.raises(ServiceError, match="cannot reach 127.0.0.1") as caught:
        tf.sync_job(job_id, client)
    assert caught.value.kind == "network" and "nothing was changed locally" in str(caught.value)
    assert (get_job(job_id), list_events(job_id), list_checkpoints(job_id)) == before


def test_failed_job_reports_its_code_and_message(standin, tmp_path):
    control(standin, {"fail_jobs": {"code": "out_of_memory", "message": "the GPU ran out of memory at step 3"}})
    job = tf.wait_for_job(launched(standin, tmp_path), poll_seconds=0.05)
    assert job.status == "failed"
    assert job.error == "out_of_memory: the GPU ran out of memory at step 3"
    assert list_events(job.id)[-1]["level"] == "error"


def test_wait_rides_out_a_passing_outage(standin, tmp_path):
    job_id = launched(standin, tmp_path)
    control(standin, {"faults": [{"status": 503, "count": 4, "path": "/v1/fine_tuning/jobs/"}]})
    client = small_client(standin, max_retries=0)
    job = tf.wait_for_job(job_id, poll_seconds=0.05, client=client)
    assert job.status == "succeeded"


# --- the stand-in is as strict as the service -----------------------------------------------------


def sdk(server, key: str = DEFAULT_KEY):
    import openai

    return openai.OpenAI(api_key=key, base_url=server.base_url, max_retries=0)


def test_standin_rejects_missing_and_wrong_keys(standin):
    import openai

    for key in ("wrong", ""):
        client = sdk(standin, key) if key else sdk(standin, "placeholder")
        headers = {"Authorization": ""} if not key else None
        with pytest.raises(openai.AuthenticationError):
            client.files.list(extra_headers=headers) if headers else client.files.list()


def test_standin_rejects_bad_uploads_and_validates_job_requests_like_the_service(standin, tmp_path):
    import openai

    client = sdk(standin)
    data = write_jsonl(tmp_path / "t.jsonl", [qa(1), qa(2)])
    with pytest.raises(openai.BadRequestError, match="purpose must be 'fine-tune'"):
        client.files.create(file=data.open("rb"), purpose="assistants")
    file_id = client.files.create(file=data.open("rb"), purpose="fine-tune").id
    # Unknown hyperparameter names are accepted and ignored (additionalProperties: true).
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, hyperparameters={"lora_rank": 4})
    assert "lora_rank" not in job.hyperparameters.model_dump() and job.hyperparameters.lora_r == 8
    # Request validation is HTTP 422 with FastAPI's detail list.
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, suffix="x" * 65,
                                       hyperparameters={"lora_r": 4, "n_epochs": 21, "max_grad_norm": 0})
    detail = caught.value.body["detail"]
    assert [(d["loc"], d["type"]) for d in detail] == [
        (["body", "hyperparameters", "lora_r"], "greater_than_equal"),
        (["body", "hyperparameters", "n_epochs"], "less_than_equal"),
        (["body", "hyperparameters", "max_grad_norm"], "greater_than"),
        (["body", "suffix"], "string_too_long")]
    assert detail[0]["msg"] == "Input should be greater than or equal to 8" and detail[0]["input"] == 4
    with pytest.raises(openai.BadRequestError, match="not available for fine-tuning"):
        client.fine_tuning.jobs.create(model="gpt-4o-mini", training_file=file_id)


@pytest.mark.parametrize("name, value, low_or_high", [
    ("lora_r", 7, "greater_than_equal"), ("lora_r", 129, "less_than_equal"),
    ("lora_alpha", 7, "greater_than_equal"), ("batch_size", 0, "greater_than_equal"),
    ("batch_size", 65, "less_than_equal"), ("n_epochs", 0, "greater_than_equal"),
    ("n_epochs", 21, "less_than_equal"), ("context_length", 8191, "greater_than_equal"),
    ("context_length", 131073, "less_than_equal"), ("max_grad_norm", 0.0, "greater_than"),
])
def test_standin_enforces_each_published_range(standin, tmp_path, name, value, low_or_high):
    import openai

    client = sdk(standin)
    file_id = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", [qa(1)]).open("rb"), purpose="fine-tune").id
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, hyperparameters={name: value})
    assert [(d["loc"][-1], d["type"]) for d in caught.value.body["detail"]] == [(name, low_or_high)]


def test_standin_lists_oldest_first_with_the_published_vocabulary(standin, tmp_path):
    client = sdk(standin)
    train = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", [qa(i) for i in range(8)]).open("rb"),
                                purpose="fine-tune").id
    valid = client.files.create(file=write_jsonl(tmp_path / "v.jsonl", [qa(9)]).open("rb"), purpose="fine-tune").id
    bare = client.fine_tuning.jobs.create(model=MODEL, training_file=train, hyperparameters={"n_epochs": 2})
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=train, validation_file=valid,
                                         hyperparameters={"n_epochs": 2})
    poll_until(lambda: client.fine_tuning.jobs.retrieve(job.id), lambda j: j.status == "succeeded",
               interval=0.05, timeout=20)
    page = client.fine_tuning.jobs.list_events(job.id, limit=100)
    stamps = [e.created_at for e in page.data]
    assert stamps == sorted(stamps) and page.data[0].message == "Validating training file"
    raw = client.get(f"/fine_tuning/jobs/{job.id}/events", cast_to=object)
    assert raw["first_id"] == page.data[0].id and raw["last_id"] == page.data[-1].id
    metrics = [e for e in page.data if e.type == "metrics"]
    assert len(metrics) == 2 and metrics[0].data["train_loss"] > metrics[1].data["train_loss"]
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == sorted(c.step_number for c in checkpoints)
    assert all(c.metrics.full_valid_loss is not None for c in checkpoints)
    poll_until(lambda: client.fine_tuning.jobs.retrieve(bare.id), lambda j: j.status == "succeeded",
               interval=0.05, timeout=20)
    levels = {e.level for e in client.fine_tuning.jobs.list_events(bare.id, limit=100).data}
    assert levels == {"info", "warn"}  # no validation file: a warning
    assert [j.id for j in client.fine_tuning.jobs.list().data] == [bare.id, job.id]


def test_standin_takes_the_new_job_fields_and_never_echoes_secrets(standin, tmp_path):
    import openai

    client = sdk(standin)
    file_id = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", [qa(1)]).open("rb"), purpose="fine-tune").id
    integrations = [{"type": "wandb", "wandb": {"project": "uk", "api_key": "wandb-secret"}},
                    {"type": "hf", "hf": {"output_repo_name": "me/uk-legal", "api_token": "hf-secret"}}]
    job = client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, extra_body={
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        "integrations": integrations, "tags": ["uk", "legal"],
        "from_checkpoint": {"type": "hf", "repo": "org/model", "token": "hf-secret"}})
    text = json.dumps(job.model_dump())
    assert "secret" not in text and job.tags == ["uk", "legal"] and job.hyperparameters.n_epochs == 1
    exported = job.model_dump()["integrations"][1]
    assert exported["type"] == "hf" and exported["hf"] == {"output_repo_name": "me/uk-legal"}
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client.fine_tuning.jobs.create(model=MODEL, training_file=file_id, extra_body={
            "integrations": [{"type": "wandb", "wandb": {"project": "uk"}}],
            "from_checkpoint": {"type": "ft", "job_id": job.id}})
    assert [d["loc"][1:] for d in caught.value.body["detail"]] == [
        ["integrations", 0, "wandb", "api_key"], ["from_checkpoint", "checkpoint_id"]]


def test_standin_fails_a_conversation_that_does_not_end_with_the_assistant(standin, tmp_path):
    record = qa(2)
    record["messages"].append({"role": "user", "content": "And section 3?"})
    data = write_jsonl(tmp_path / "t.jsonl", [qa(1), record])
    client = small_client(standin)
    file_id = client.upload_file(data)["id"]  # bypassing pre-flight on purpose
    remote = client.create_job(model=MODEL, training_file=file_id, hyperparameters={"n_epochs": 1})
    remote = poll_until(lambda: client.retrieve_job(remote["id"]), lambda r: r["status"] == "failed",
                        interval=0.05, timeout=10)
    assert remote["status"] == "failed"
    assert remote["error"]["code"] == "invalid_training_file"
    assert "line 2: the conversation must end with an assistant message" in remote["error"]["message"]


def test_service_validation_error_reads_as_a_list_of_fields(standin, tmp_path):
    client = small_client(standin)
    file_id = client.upload_file(write_jsonl(tmp_path / "t.jsonl", [qa(1)]))["id"]
    with pytest.raises(ServiceError) as caught:
        client.create_job(model=MODEL, training_file=file_id, hyperparameters={"lora_r": 4, "batch_size": 100})
    assert caught.value.kind == "bad_request" and caught.value.status_code == 422
    assert str(caught.value) == (
        "creating the fine-tuning job: the service refused these fields (HTTP 422): "
        "hyperparameters.lora_r: Input should be greater than or equal to 8 (got 4); "
        "hyperparameters.batch_size: Input should be less than or equal to 64 (got 100)")
    assert "{" not in str(caught.value) and "[" not in str(caught.value)


def test_upload_meeting_a_429_and_a_500_is_retried(standin, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", [qa(i) for i in range(20)])
    control(standin, {"faults": [{"status": 429, "count": 1, "retry_after": 0.1, "path": "/v1/files"},
                                 {"status": 500, "count": 1, "path": "/v1/files"}]})
    fractions = []
    job = tf.launch_job(data, tf.LaunchConfig(n_epochs=1), client=small_client(standin, max_retries=2),
                        progress=lambda message, fraction: fractions.append(fraction))
    uploads = [r["status"] for r in control(standin, path="/_control/requests") if r["path"] == "/v1/files"]
    assert uploads == [429, 500, 200]
    assert get_job(job.id).remote["training_file"].startswith("file-") and fractions[-1] == 1.0


@pytest.mark.parametrize("overrides, message", [
    ({"n_epochs": 50}, "epochs must be from 1 to 20 (the service's limit), not 50"),
    ({"context_length": 1_000_000}, "context length must be from 8,192 to 131,072 (the service's limit)"),
    ({"lora_r": 4}, "LoRA rank must be from 8 to 128"),
    ({"lora_r": 256}, "LoRA rank must be from 8 to 128"),
    ({"lora_alpha": 4}, "LoRA alpha must be at least 8"),
    ({"batch_size": 65}, "batch size must be from 1 to 64"),
    ({"max_grad_norm": 0.0}, "max grad norm must be greater than 0"),
])
def test_each_service_limit_is_refused_before_anything_is_uploaded(standin, overrides, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        tf.LaunchConfig(**overrides)
    assert control(standin, path="/_control/requests") == [] and list_jobs() == []


def test_full_fine_tune_is_not_held_to_the_lora_limits():
    assert "lora_r" not in tf.LaunchConfig(lora=False, lora_r=4).hyperparameters()


def test_unknown_setting_names_are_refused_as_this_products_rule():
    with pytest.raises(ValueError, match="unknown setting 'lora_rank': the service would ignore it"):
        tf.LaunchConfig.from_mapping({"lora_rank": 8})
    assert tf.LaunchConfig.from_mapping({"lora_r": 32}).lora_r == 32


@pytest.mark.parametrize("first_get", ["404", "empty"])
def test_deploy_polling_rides_through_the_first_get_without_a_status(standin, tmp_path, first_get):
    control(standin, {"deploy_first_get": first_get})
    job_id = launched(standin, tmp_path, epochs=1)
    tf.wait_for_job(job_id, poll_seconds=0.05)
    endpoint = tf.deploy_checkpoint(job_id, name="uk-legal")
    first = tf.poll_deployment(endpoint.model)
    assert first.status == "validating"
    assert tf.poll_deployment(endpoint.model, wait=True, poll_seconds=0.05).status == "active"
    gets = [r["status"] for r in control(standin, path="/_control/requests") if r["path"].startswith("/v0/models/")]
    assert gets[0] == (404 if first_get == "404" else 200) and gets[-1] == 200


def test_a_deployment_unknown_long_after_it_was_made_is_not_found(standin, tmp_path, monkeypatch):
    job_id = launched(standin, tmp_path, epochs=1)
    tf.wait_for_job(job_id, poll_seconds=0.05)
    endpoint = tf.deploy_checkpoint(job_id, name="uk-legal")
    monkeypatch.setattr(tf.deploy, "NEW_DEPLOYMENT_GRACE_SECONDS", 0.0)
    with pytest.raises(ServiceError) as caught:
        tf.poll_deployment(endpoint.model)
    assert caught.value.kind == "not_found"


def test_deleted_deployment_reads_as_deleted_and_leaves_the_list(standin, tmp_path):
    job_id = launched(standin, tmp_path, epochs=1)
    tf.wait_for_job(job_id, poll_seconds=0.05)
    model = tf.poll_deployment(tf.deploy_checkpoint(job_id, name="gone").model, wait=True, poll_seconds=0.05).model
    small_client(standin).delete_deployment(model)  # deleted elsewhere (the console)
    assert tf.poll_deployment(model).status == "deleted"
    assert tf.list_models() == [] and list_endpoints("token_factory") == []


def test_continue_from_an_earlier_checkpoint(standin, tmp_path):
    first = tf.wait_for_job(launched(standin, tmp_path, epochs=2), poll_seconds=0.05)
    checkpoint = list_checkpoints(first.id)[-1]
    reference = f"{first.remote_id}:{checkpoint['checkpoint_id']}"
    second = tf.wait_for_job(launched(standin, tmp_path, epochs=1, from_checkpoint=reference), poll_seconds=0.05)
    remote = small_client(standin).retrieve_job(second.remote_id)
    assert remote["from_checkpoint"] == {"type": "ft", "job_id": first.remote_id,
                                         "checkpoint_id": checkpoint["checkpoint_id"]}
    assert get_job(second.id).config["from_checkpoint"] == reference
    # Training went on from there: the new first epoch starts below where the first job ended.
    assert list_checkpoints(second.id)[0]["metrics"]["train_loss"] == pytest.approx(checkpoint["metrics"]["train_loss"])
    with pytest.raises(ServiceError, match="does not exist"):
        launched(standin, tmp_path, epochs=1, from_checkpoint=f"{first.remote_id}:ftckpt_unknown")


def test_integrations_take_their_secrets_from_the_environment_and_never_store_them(
        standin, tmp_path, monkeypatch, legalft_home):
    with pytest.raises(ServiceError, match="needs WANDB_API_KEY"):
        launched(standin, tmp_path, epochs=1, integrations=["wandb"])
    assert list_jobs() == []  # refused before anything was recorded or uploaded
    monkeypatch.setenv("WANDB_API_KEY", "wandb-key-not-to-store")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://mlflow.example")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "me")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mlflow-pass-not-to-store")
    job_id = launched(standin, tmp_path, epochs=1, integrations=["wandb", "mlflow"], tags=["uk"])
    remote = small_client(standin).retrieve_job(get_job(job_id).remote_id)
    assert [i["type"] for i in remote["integrations"]] == ["wandb", "mlflow"]
    assert remote["integrations"][0]["wandb"]["project"] == "legalft" and remote["tags"] == ["uk"]
    tf.wait_for_job(job_id, poll_seconds=0.05)
    for path in legalft_home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"not-to-store" not in data, path


def test_standin_runs_from_the_command_line(tmp_path, monkeypatch):
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "token_factory_server.py"), "--port", "0", "--api-key", "cli-key",
         "--phase-seconds", "0.05", "--rate-limit-first", "1", "--retry-after", "0.2"],
        stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert "listening on http://127.0.0.1:" in line
        url = line.rsplit(" ", 1)[1].strip()
        monkeypatch.setenv(tf.KEY_ENV, "cli-key")
        monkeypatch.setenv(tf.URL_ENV, url)
        data = write_jsonl(tmp_path / "train.jsonl", [qa(i) for i in range(12)])
        job = tf.launch_job(data, tf.LaunchConfig(n_epochs=1))  # the first call meets the 429
        assert tf.wait_for_job(job.id, poll_seconds=0.05).status == "succeeded"
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- configuration, pre-flight, catalogue ---------------------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    ("n_epochs", 0, "epochs must be a whole number of at least 1"),
    ("n_epochs", 2.5, "epochs must be a whole number"),
    ("learning_rate", 0.0, "learning rate must be greater than 0"),
    ("learning_rate", -1e-5, "learning rate must be greater than 0"),
    ("lora_r", 0, "LoRA rank must be a positive whole number"),
    ("lora_r", 8.5, "LoRA rank must be a positive whole number"),
    ("lora_dropout", 1.0, "LoRA dropout must be at least 0 and below 1"),
    ("lora_dropout", -0.1, "LoRA dropout must be at least 0 and below 1"),
    ("suffix", "s" * 65, "suffix is 65 characters; the service allows 64"),
    ("batch_size", 0, "batch size must be a whole number of at least 1"),
    ("from_checkpoint", "ftjob-1", "cannot continue from 'ftjob-1'"),
    ("integrations", ["comet"], "unknown integration 'comet'"),
])
def test_launch_config_rejects_values_that_make_no_sense(field, value, message):
    with pytest.raises(ValueError, match=message):
        tf.LaunchConfig(**{field: value})


def test_hyperparameters_use_the_service_names_only():
    config = tf.LaunchConfig(n_epochs=4, batch_size=8, warmup_ratio=0.1, suffix="s" * 64, seed=7)
    assert set(config.hyperparameters()) <= set(tf.HYPERPARAMETER_NAMES)
    assert config.hyperparameters()["warmup_ratio"] == 0.1 and "suffix" not in config.hyperparameters()
    full = tf.LaunchConfig(lora=False).hyperparameters()
    assert full["lora"] is False and not {"lora_r", "lora_alpha", "lora_dropout"} & set(full)


def test_preflight_repairs_and_reports_before_any_upload(tmp_path):
    ends_with_user = qa(2)
    ends_with_user["messages"].append({"role": "user", "content": "And section 3?"})
    source = tmp_path / "mixed.jsonl"
    source.write_text(json.dumps(qa(1)) + "\n{not json\n" + json.dumps(ends_with_user) + "\n"
                      + json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    report = tf.preflight_dataset(source)
    assert report.ok and report.records == 2
    assert report.sanitize["dropped_records"] == 2 and report.sanitize["total_records"] == 4
    assert any("2 of 4 records were dropped" in w for w in report.warnings)
    rejects = [json.loads(line) for line in Path(report.rejects_path).read_text().splitlines()]
    assert [r["line"] for r in rejects] == [2, 4]
    last_roles = [json.loads(line)["messages"][-1]["role"] for line in Path(report.upload_path).read_text().splitlines()]
    assert last_roles == ["assistant", "assistant"]
    assert Path(report.upload_path).is_relative_to(tmp_path / "legalft-home")


def test_preflight_blocks_what_the_service_would_refuse(tmp_path, monkeypatch):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("{not json\n[1, 2]\n")
    report = tf.preflight_dataset(garbage)
    assert not report.ok and "no records are left after cleaning" in report.problems[-1]
    with pytest.raises(tf.PreflightError, match="garbage.jsonl cannot be uploaded"):
        tf.launch_job(report, client=tf.TokenFactoryClient("k-unused", "http://127.0.0.1:9/v1"))
    assert list_jobs() == []  # nothing recorded, nothing sent

    clean = tmp_path / "upload.jsonl"
    clean.write_text(json.dumps(qa(1)) + "\n" + json.dumps({"messages": [{"role": "user", "content": "q"}]}) + "\n")
    checked = tf.UploadPreflight(source_path=str(clean), upload_path=str(clean))
    check_service_rules(clean, checked)
    assert checked.problems == ["1 conversation(s) do not end with an assistant message (clean file lines 2)"]

    monkeypatch.setattr(preflight_module, "MAX_FILE_BYTES", 100)
    big = tf.preflight_dataset(REFERENCE_QA)
    assert not big.ok and "the service's limit is 5 GB" in big.problems[0]
    assert not tf.preflight_dataset(tmp_path / "missing.jsonl").ok


def test_catalogue_is_dated_and_maps_deployment_names(standin):
    catalogue = tf.load_model_catalogue()
    assert catalogue.as_of == "2026-11-28" and MODEL in catalogue.ids()
    assert tf.deployment_base_model(MODEL) == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    assert tf.deployment_base_model("meta-llama/Llama-3.3-70B-Instruct") == "meta-llama/Llama-3.3-70B-Instruct"
    assert tf.deployment_base_model("some/unknown-model") == "some/unknown-model"
    refreshed = tf.refresh_model_catalogue()
    assert refreshed.refreshed_at and all(m.served for m in refreshed.models)
    assert tf.load_model_catalogue().refreshed_at == refreshed.refreshed_at  # cached


def test_catalogue_refresh_failure_keeps_the_shipped_list(monkeypatch):
    monkeypatch.setenv(tf.KEY_ENV, "k")
    client = tf.TokenFactoryClient("k", "http://127.0.0.1:9/v1", max_retries=0)
    catalogue = tf.refresh_model_catalogue(client)
    assert "cannot reach" in catalogue.refresh_error and catalogue.ids() == tf.load_model_catalogue().ids()


def test_base_url_override_and_v0_on_the_same_host(monkeypatch):
    assert tf.configured_base_url() == tf.DEFAULT_BASE_URL
    assert tf.v0_url(tf.DEFAULT_BASE_URL) == "https://api.tokenfactory.nebius.com/v0/"
    monkeypatch.setenv(tf.URL_ENV, "http://127.0.0.1:8765/v1")
    assert tf.configured_base_url() == "http://127.0.0.1:8765/v1/"
    assert tf.v0_url(tf.configured_base_url()) == "http://127.0.0.1:8765/v0/"
    assert tf.describe_connection() == {"base_url": "http://127.0.0.1:8765/v1/", "is_default": False,
                                        "key_source": None, "has_key": False}


def test_key_from_streamlit_secrets_and_none_without_them(tmp_path):
    # A subprocess: st.secrets is a process-wide singleton that would leak into other tests.
    script = "from legalft.managed import resolve_api_key; print(resolve_api_key())"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LEGALFT_HOME": str(tmp_path / "home")}
    project = tmp_path / "project"
    (project / ".streamlit").mkdir(parents=True)
    run = lambda: subprocess.run([sys.executable, "-c", script], cwd=project, env=env, capture_output=True,
                                 text=True, timeout=60)
    without = run()
    assert without.returncode == 0 and without.stdout.strip() == "(None, None)"
    (project / ".streamlit" / "secrets.toml").write_text('NEBIUS_API_KEY = "from-secrets"\n')
    assert run().stdout.strip() == "('from-secrets', 'streamlit secrets')"
    (project / ".streamlit" / "secrets.toml").write_text("NEBIUS_API_KEY = = broken\n")
    broken = run()
    assert broken.returncode == 0 and broken.stdout.strip() == "(None, None)"
