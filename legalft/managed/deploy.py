"""Deployments of managed checkpoints (``/v0/models``), followed to ``active``, and chat with them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from legalft.audit import action
from legalft.chat import DEFAULT_SYSTEM_PROMPT
from legalft.endpoints import Endpoint, delete_endpoint, list_endpoints, save_endpoint
from legalft.errors import Conflict, DeployFailed, NotFound
from legalft.jobs import list_checkpoints, require_job, utc_now
from legalft.managed.catalogue import deployment_base_model
from legalft.managed.client import PATH, TokenFactoryClient, client_for, configured_base_url
from legalft.managed.jobs import sync_job
from legalft.polling import poll_until

log = logging.getLogger(__name__)

SMOKE_TEST_QUESTION = "What does section 1 of the Interpretation Act 1978 say about gender?"


@action("managed.deploy")
def deploy_checkpoint(
    job_id: str,
    *,
    name: str,
    checkpoint_id: str | None = None,
    description: str | None = None,
    client: TokenFactoryClient | None = None,
) -> Endpoint:
    """Deploy a checkpoint (the latest by default) of a Token Factory job; records the endpoint.

    The endpoint starts ``validating``; ``poll_deployment`` follows it to ``active`` or ``error``.
    """
    job = require_job(job_id)
    if job.path != PATH or not job.remote_id:
        raise ValueError(f"job {job_id} has no Token Factory job to deploy from")
    name = name.strip()
    if not name:
        raise ValueError("a deployment needs a name, e.g. uk-legal")
    client = client or client_for(job)
    checkpoints = list_checkpoints(job_id)
    if not checkpoints:
        job = sync_job(job_id, client)
        checkpoints = list_checkpoints(job_id)
    if not checkpoints:
        raise Conflict(f"job {job_id} has no checkpoints yet ({job.status}); wait for its first epoch")
    if checkpoint_id is None:
        checkpoint_id = checkpoints[-1]["checkpoint_id"]
    elif checkpoint_id not in {c["checkpoint_id"] for c in checkpoints}:
        known = ", ".join(c["checkpoint_id"] for c in checkpoints)
        raise ValueError(f"job {job_id} has no checkpoint {checkpoint_id!r}; it has {known}")
    if not job.config.get("lora", True):
        log.warning("job %s is a full fine-tune; the service may refuse to deploy it serverlessly", job_id)
    base = deployment_base_model(job.base_model or "")
    source = f"{job.remote_id}:{checkpoint_id}"
    deployment = client.create_deployment(name=name, base_model=base, source=source, description=description)
    return _record_deployment(client, deployment, job_id=job_id, extra={
        "checkpoint_id": checkpoint_id, "source": source, "base_model": base, "requested_name": name,
        "deployed_at": time.time()})


#: Right after ``POST /v0/models`` the service may not have a status yet (a 404, or none): for this
#: long a deployment just made is read as still ``validating`` rather than as gone.
NEW_DEPLOYMENT_GRACE_SECONDS = 120.0
#: Statuses after which a deployment changes no more by itself.
SETTLED_STATUSES = ("active", "error", "deleted")


def _record_deployment(client: TokenFactoryClient, deployment: dict[str, Any], *, job_id: str | None,
                       extra: dict[str, Any] | None = None) -> Endpoint:
    model = deployment["name"]
    previous = next((e for e in list_endpoints(PATH) if e.model == model), None)
    details = {**(previous.details if previous else {}), **(extra or {}),
               "status_reason": deployment.get("status_reason"), "checked_at": utc_now()}
    # No status yet (just created): it is still being validated.
    status = deployment.get("status") or (previous.status if previous else None) or "validating"
    return save_endpoint(kind=PATH, name=details.get("requested_name") or model, base_url=client.base_url,
                         model=model, status=status, job_id=job_id, details=details)


def just_deployed(endpoint: Endpoint | None) -> bool:
    deployed_at = (endpoint.details or {}).get("deployed_at") if endpoint else None
    return bool(deployed_at) and time.time() - float(deployed_at) < NEW_DEPLOYMENT_GRACE_SECONDS


def read_deployment(client: TokenFactoryClient, model: str, known: Endpoint | None) -> dict[str, Any]:
    """The service's view of a deployment; a 404 just after it was made reads as not stored yet
    (``status`` None: still validating), later as gone (``NotFound``)."""
    try:
        return client.get_deployment(model)
    except NotFound:
        if not just_deployed(known):
            raise
        log.info("deployment %s not visible yet; still validating", model)
        return {"name": model, "status": None}


def poll_deployment(
    model: str,
    *,
    wait: bool = False,
    timeout: float = 1800.0,
    poll_seconds: float = 10.0,
    client: TokenFactoryClient | None = None,
    on_update: Callable[[Endpoint], None] | None = None,
) -> Endpoint:
    """Read a deployment's status into its endpoint; with ``wait``, until ``active``, ``error`` or ``deleted``.

    An ``error`` is returned, not raised: ``endpoint.details["status_reason"]`` says why. A 404 in
    the first ``NEW_DEPLOYMENT_GRACE_SECONDS`` after the deployment was made reads as ``validating``.
    """
    known = next((e for e in list_endpoints(PATH) if e.model == model), None)
    client = client or TokenFactoryClient(base_url=known.base_url if known else None)

    def read() -> Endpoint:
        deployment = read_deployment(client, model, known)
        return _record_deployment(client, deployment, job_id=known.job_id if known else None)

    if not wait:
        endpoint = read()
        if on_update:
            on_update(endpoint)
        return endpoint
    return poll_until(read, lambda e: e.status in SETTLED_STATUSES, interval=poll_seconds, timeout=timeout,
                      on_update=on_update, what=f"following deployment {model}")


def list_models(client: TokenFactoryClient | None = None) -> list[dict[str, Any]]:
    """The custom models deployed on the account (``deleted`` ones left out); recorded endpoints get
    their current status, and a recorded one the service lists as deleted is forgotten."""
    client = client or TokenFactoryClient()
    deployments = client.list_deployments()
    recorded = {e.model: e for e in list_endpoints(PATH)}
    for deployment in deployments:
        endpoint = recorded.get(deployment.get("name"))
        if endpoint and deployment.get("status") == "deleted":
            delete_endpoint(endpoint.id)
        elif endpoint:
            _record_deployment(client, deployment, job_id=endpoint.job_id)
    return [d for d in deployments if d.get("status") != "deleted"]


@action("managed.delete_model")
def delete_model(name: str, client: TokenFactoryClient | None = None) -> None:
    """Delete a deployed model and forget its endpoint."""
    known = next((e for e in list_endpoints(PATH) if e.model == name), None)
    client = client or TokenFactoryClient(base_url=known.base_url if known else None)
    client.delete_deployment(name)
    if known:
        delete_endpoint(known.id)


# --- chat -----------------------------------------------------------------------------------------


@dataclass
class ChatAnswer:
    """One answer from a model."""

    model: str
    text: str
    usage: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def chat(
    model: str,
    question: str,
    *,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    max_tokens: int = 512,
    temperature: float = 0.3,
    on_token: Callable[[str], None] | None = None,
    client: TokenFactoryClient | None = None,
) -> ChatAnswer:
    """Ask a deployed model one question; with ``on_token`` the answer is streamed into it as it arrives.

    Goes through ``legalft.chat``, the one chat client every endpoint uses; only the base URL (the
    service the model is deployed on) and the key differ.
    """
    from legalft import chat as chat_client

    if not question.strip():
        raise ValueError("the question is empty")
    known = next((e for e in list_endpoints(PATH) if e.model == model), None)
    base_url = client.base_url if client else (known.base_url if known else configured_base_url())
    endpoint = known if known and known.base_url == base_url else Endpoint(
        id=0, kind=PATH, name=model, base_url=base_url, model=model, status="unknown",
        created_at=utc_now(), updated_at=utc_now())
    messages = chat_client.build_messages(question, system_prompt)
    if on_token is None:
        reply = chat_client.chat(endpoint, messages, max_tokens=max_tokens, temperature=temperature)
    else:
        with chat_client.stream_chat(endpoint, messages, max_tokens=max_tokens, temperature=temperature) as stream:
            for piece in stream:
                on_token(piece)
        reply = stream.reply
    return ChatAnswer(model=model, text=reply.text, usage=reply.usage, seconds=reply.seconds)


def smoke_test(model: str, client: TokenFactoryClient | None = None) -> ChatAnswer:
    """Ask a deployed model one legal question; raises ``DeployFailed`` on an empty answer."""
    answer = chat(model, SMOKE_TEST_QUESTION, max_tokens=256, client=client)
    if not answer.text.strip():
        raise DeployFailed(f"{model} answered with nothing; check the deployment's status")
    return answer
