"""Managed jobs: launch (recorded before the first byte leaves), sync, wait, cancel, close.

Every step is recorded in the job store as it happens (``legalft.jobs``), so closing the browser
loses nothing, and the Monitor page can show a job's history offline.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from legalft.audit import action
from legalft.budget import launch_estimate
from legalft.errors import NotFound, ServiceError
from legalft.jobs import Job, add_events, claim_poll, create_job, require_job, update_job, upsert_checkpoint, utc_now
from legalft.jobs import close_job as jobs_close
from legalft.managed.client import PATH, ProgressCallback, TokenFactoryClient, _iso, client_for
from legalft.managed.config import LaunchConfig
from legalft.managed.preflight import PreflightError, UploadPreflight, preflight_dataset
from legalft.polling import poll_until

log = logging.getLogger(__name__)

#: The Monitor page asks for news this often at most, however many tabs show the job.
MANAGED_POLL_SECONDS = 10.0


@action("managed.launch", cost=launch_estimate, budget="managed")
def launch_job(
    dataset: str | Path | UploadPreflight,
    config: LaunchConfig | None = None,
    *,
    validation: str | Path | UploadPreflight | None = None,
    name: str | None = None,
    client: TokenFactoryClient | None = None,
    progress: ProgressCallback | None = None,
) -> Job:
    """Pre-flight, upload, create the job; the job is recorded before the first byte leaves.

    ``dataset``/``validation`` are paths (pre-flight runs here) or reports already shown to the user.
    Raises ``PreflightError`` when a file breaks the service's rules (nothing is recorded then), and
    ``ServiceError`` when the service fails; the recorded job then says ``failed`` and why.
    """
    from legalft.managed.integrations import build_integrations

    config = config or LaunchConfig()
    client = client or TokenFactoryClient()
    # Read now, before anything is recorded or uploaded: a missing secret stops the launch here.
    integrations = build_integrations(config.integrations, run_name=name or config.suffix)
    say = progress or (lambda message, fraction: None)
    reports = {}
    for role, item in (("training", dataset), ("validation", validation)):
        if item is None:
            continue
        report = item if isinstance(item, UploadPreflight) else preflight_dataset(item)
        if not report.ok:
            raise PreflightError(report)
        reports[role] = report
    train = reports["training"]
    no_validation = "no validation file: a 10-20% validation split shows over-fitting"
    if "validation" not in reports and no_validation not in train.warnings:
        train.warnings.append(no_validation)
    job = create_job(
        PATH, status="validating_files", name=name or config.suffix, base_model=config.model,
        dataset_path=train.upload_path, config={**asdict(config), "hyperparameters": config.hyperparameters()},
        remote={"base_url": client.base_url}, estimated_cost=train.estimated_cost(
            config.model, config.n_epochs, config.packing, config.context_length),
        progress={"stage": "uploading", "preflight": {r: rep.to_dict() for r, rep in reports.items()}},
    )
    log.info("launching Token Factory job %s on %s", job.id, config.model)
    remote: dict[str, Any] = {"base_url": client.base_url}
    try:
        for role, report in reports.items():
            say(f"uploading the {role} file", 0.0)
            uploaded = client.upload_file(report.upload_path, progress)
            remote[f"{role}_file"] = uploaded["id"]
            remote[f"{role}_file_bytes"] = uploaded.get("bytes")
            job = update_job(job.id, remote=remote)
        say("creating the fine-tuning job", None)
        created = client.create_job(
            model=config.model, training_file=remote["training_file"],
            validation_file=remote.get("validation_file"), hyperparameters=config.hyperparameters(),
            suffix=config.suffix, seed=config.seed, from_checkpoint=config.start_from(),
            integrations=integrations, tags=config.tags)
    except ServiceError as exc:
        update_job(job.id, status="failed", error=str(exc), progress={"stage": "launch failed"})
        _discard_files(client, remote)
        raise
    remote["job"] = created["id"]
    job = update_job(job.id, remote_id=created["id"], remote=remote, status=_status(created["status"]),
                     progress={"stage": "created", "remote_status": created["status"]})
    say(f"created {created['id']}", 1.0)
    return job


def _discard_files(client: TokenFactoryClient, remote: dict[str, Any]) -> None:
    """Best effort: files uploaded for a job that was never created only take up quota."""
    for role in ("training", "validation"):
        file_id = remote.get(f"{role}_file")
        if file_id:
            try:
                client.delete_file(file_id)
            except ServiceError as exc:
                log.warning("could not delete uploaded file %s: %s", file_id, exc)


def _status(remote_status: str | None) -> str:
    from legalft.jobs import STATUSES

    if remote_status in STATUSES:
        return remote_status
    log.warning("unknown remote job status %r, shown as running", remote_status)
    return "running"


def sync_job(job_id: str, client: TokenFactoryClient | None = None, *, max_age: float | None = None) -> Job:
    """Pull the job's status, events and checkpoints into the database and return the job.

    With ``max_age`` the service is asked only when nobody (another tab, the CLI) asked in the last
    ``max_age`` seconds; otherwise the recorded job is returned as it is. On a network or service
    failure this raises ``ServiceError`` and changes nothing locally, so the recorded history stays
    as it was; a job the service no longer knows (404) is marked ``remote_missing`` in its progress,
    and ``close_job`` (or cancel) closes it.
    """
    job = require_job(job_id)
    if job.path != PATH:
        raise ValueError(f"job {job_id} is a {job.path} job, not a Token Factory one")
    if not job.remote_id or job.is_terminal and job.progress.get("synced_at") and max_age is not None:
        return job  # never created remotely (the launch failed), or ended and already pulled
    if max_age is not None and not claim_poll(job_id, max_age):
        return job
    client = client or client_for(job)
    try:
        remote = client.retrieve_job(job.remote_id)
    except NotFound as exc:
        update_job(job_id, progress={**job.progress, "remote_missing": str(exc)})
        raise
    events = client.list_events(job.remote_id)
    checkpoints = client.list_checkpoints(job.remote_id)
    add_events(job_id, [
        {"remote_id": e["id"], "created_at": _iso(e.get("created_at")), "level": e.get("level") or "info",
         "message": e.get("message") or ""} for e in events])
    for ckpt in checkpoints:
        metrics = {k: v for k, v in (ckpt.get("metrics") or {}).items() if v is not None}
        if ckpt.get("result_files"):
            metrics["result_files"] = ckpt["result_files"]
        upsert_checkpoint(job_id, ckpt["id"], step=ckpt.get("step_number"), metrics=metrics,
                          created_at=_iso(ckpt.get("created_at")))
    status = _status(remote.get("status"))
    trained_tokens = remote.get("trained_tokens")
    steps, total = remote.get("trained_steps"), remote.get("total_steps")
    progress = {
        "stage": remote.get("status"), "remote_status": remote.get("status"),
        "trained_tokens": trained_tokens, "trained_steps": steps, "total_steps": total,
        "fraction": round(steps / total, 4) if steps is not None and total else None,
        "estimated_finish": _iso(remote.get("estimated_finish")), "synced_at": utc_now(),
        "checkpoints": len(checkpoints),
    }
    fields: dict[str, Any] = {"status": status, "progress": progress, "output": {
        "fine_tuned_model": remote.get("fine_tuned_model"), "result_files": remote.get("result_files") or []}}
    if trained_tokens:
        fields["actual_cost"] = _training_cost(job.base_model or remote.get("model", ""), trained_tokens)
    elif status in ("failed", "cancelled"):
        fields["actual_cost"] = 0.0  # billed on trained tokens: ended before training, nothing to pay
    if status == "failed":
        fields["error"] = _job_error(remote.get("error"))
    if status in ("succeeded", "failed", "cancelled") and remote.get("finished_at"):
        fields["finished_at"] = _iso(remote["finished_at"])
    return update_job(job_id, **fields)


def _training_cost(model: str, trained_tokens: int) -> float | None:
    from legalft.costs import training_price_per_million

    price = training_price_per_million(model)
    return None if price is None else trained_tokens * price / 1e6


def _job_error(error: dict[str, Any] | None) -> str:
    if not error:
        return "the service reported the job failed without a reason; see its events"
    code, message, param = error.get("code"), error.get("message"), error.get("param")
    text = f"{code}: {message}" if code else str(message)
    return f"{text} (parameter: {param})" if param else text


def wait_for_job(
    job_id: str,
    *,
    poll_seconds: float = 15.0,
    timeout: float | None = None,
    client: TokenFactoryClient | None = None,
    on_update: Callable[[Job], None] | None = None,
    max_consecutive_errors: int = 5,
) -> Job:
    """Sync until the job ends (or ``timeout`` seconds pass); passing network trouble is waited out."""
    client = client or client_for(require_job(job_id))
    return poll_until(lambda: sync_job(job_id, client), lambda job: job.is_terminal, interval=poll_seconds,
                      timeout=timeout, on_update=on_update, max_transient=max_consecutive_errors - 1,
                      what=f"sync of {job_id}")


@action("managed.cancel")
def cancel_job(job_id: str, client: TokenFactoryClient | None = None) -> Job:
    """Cancel the remote job and record it; a job that has already ended is returned unchanged."""
    job = require_job(job_id)
    if job.path != PATH:
        raise ValueError(f"job {job_id} is a {job.path} job, not a Token Factory one")
    if job.is_terminal:
        log.info("job %s already %s; nothing to cancel", job_id, job.status)
        return job
    if not job.remote_id:
        return update_job(job_id, status="cancelled")
    client = client or client_for(job)
    try:
        client.cancel_job(job.remote_id)
    except NotFound as exc:
        return close_job(job_id, reason=_missing_reason(job, exc))
    return sync_job(job_id, client)


def _missing_reason(job: Job, exc: Exception) -> str:
    return (f"closed here: the service at {job.remote.get('base_url') or 'its URL'} no longer knows job "
            f"{job.remote_id} ({exc}); nothing is running or billed there for it")


def close_job(job_id: str, reason: str | None = None) -> Job:
    """Close a managed job the service no longer knows: marked failed with the reason (kept if it ended)."""
    job = require_job(job_id)
    if job.path != PATH:
        raise ValueError(f"job {job_id} is a {job.path} job, not a Token Factory one")
    missing = job.progress.get("remote_missing")
    return jobs_close(job_id, reason or _missing_reason(job, missing or "closed by the user"))


# --- deployments ----------------------------------------------------------------------------------
