"""What the Train and Monitor pages show of the managed path, computed here so pages only display it:
checkpoint labels, deployments followed to a settled status, why a base model has no price."""

from __future__ import annotations

import logging
import time
from datetime import datetime

from legalft.endpoints import Endpoint, list_endpoints
from legalft.errors import ServiceError
from legalft.jobs import list_checkpoints
from legalft.managed.client import PATH
from legalft.managed.deploy import SETTLED_STATUSES, poll_deployment

log = logging.getLogger(__name__)

#: A deployment being validated is asked about at most this often, however many tabs show it.
DEPLOY_POLL_SECONDS = 3.0


def checkpoint_label(epoch: int, metrics: dict) -> str:
    """``epoch 3 · valid loss 0.7500`` (the validation loss when there is one, else the training loss)."""
    for key, name in (("valid_loss", "valid loss"), ("full_valid_loss", "full valid loss"),
                      ("train_loss", "train loss")):
        if isinstance(metrics.get(key), (int, float)):
            return f"epoch {epoch} · {name} {metrics[key]:.4f}"
    return f"epoch {epoch}"


def checkpoint_choices(job_id: str) -> list[tuple[str, str]]:
    """(checkpoint id, label) of a managed job's checkpoints, latest first (one per epoch, by step)."""
    checkpoints = list_checkpoints(job_id)
    labelled = [(c["checkpoint_id"], checkpoint_label(i, c["metrics"])) for i, c in enumerate(checkpoints, start=1)]
    return labelled[::-1]


def job_deployments(job_id: str) -> list[Endpoint]:
    return [e for e in list_endpoints(PATH) if e.job_id == job_id]


def needs_following(job_id: str) -> bool:
    """Whether a deployment of the job has not settled (active, error or deleted) yet."""
    return any(e.status not in SETTLED_STATUSES for e in job_deployments(job_id))


def follow_deployments(job_id: str, *, max_age: float = DEPLOY_POLL_SECONDS) -> tuple[list[Endpoint], str | None]:
    """The job's deployments, each one not settled read from the service when last read over
    ``max_age`` seconds ago; a warning (not an exception) when the service did not answer."""
    warning = None
    for endpoint in job_deployments(job_id):
        if endpoint.status in SETTLED_STATUSES or _age(endpoint) < max_age:
            continue
        try:
            poll_deployment(endpoint.model)
        except ServiceError as exc:
            warning = f"Could not read deployment {endpoint.model}: {exc}"
    return job_deployments(job_id), warning


def _age(endpoint: Endpoint) -> float:
    checked = (endpoint.details or {}).get("checked_at")
    if not checked:
        return float("inf")
    try:
        return time.time() - datetime.fromisoformat(checked).timestamp()
    except ValueError:
        return float("inf")


def price_note(model: str) -> str:
    """Why a base model has no training price, and what to do about it."""
    from legalft.costs import effective_prices, model_size_billion

    size = model_size_billion(model)
    if size is None:
        return (f"No training price: the size of {model} cannot be read from its name, and the price list is "
                "by size. Set a price on the Costs page to see an estimate.")
    tiers = [p.max_params_billion for p in effective_prices().of_kind("training") if p.max_params_billion]
    largest = f"under {max(tiers):g}B parameters" if tiers else "no model size"
    return (f"No training price: the price list has tiers for {largest} only, and {model} has {size:g}B. "
            "Set a price on the Costs page to see an estimate.")


def continuation_choices() -> dict[str, str]:
    """``JOB:CHECKPOINT`` -> label for every checkpoint of a managed job, newest job first: what
    "continue from" offers on the Train page and ``LaunchConfig.from_checkpoint`` takes."""
    from legalft.jobs import list_jobs

    choices = {}
    for job in list_jobs():
        if job.path != PATH or not job.remote_id:
            continue
        for checkpoint_id, label in checkpoint_choices(job.id):
            choices[f"{job.remote_id}:{checkpoint_id}"] = f"{job.name or job.id} · {label}"
    return choices
