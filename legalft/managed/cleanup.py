"""What a managed job left at the provider (uploaded files, result files, deployments), and one
action to delete it: client data must not stay on someone else's servers longer than needed.

``provider_footprint(job_id)`` lists the items from the job's record (the uploaded file ids,
the deployments recorded for it) and the job's result files as the service reports them, and asks
the service whether each is still there. ``delete_provider_data(job_id)`` deletes the deployments
and the files (admins only, audited), records what was deleted in the job's record, and treats an
item the service no longer has as already gone. A job still running is refused: cancel it first.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from legalft.audit import action
from legalft.endpoints import Endpoint, delete_endpoint, list_endpoints
from legalft.errors import JobStateError, NotFound, ServiceError
from legalft.jobs import Job, require_job, update_job, utc_now
from legalft.managed.client import PATH, TokenFactoryClient
from legalft.managed.deploy import just_deployed, read_deployment

log = logging.getLogger(__name__)

#: Where each path sends a dataset, said plainly on the Train page before anything is launched.
WHERE_DATA_GOES = {
    "local": "Cloud path: the dataset, checkpoints and model stay in this machine's state folder (LEGALFT_HOME); "
             "nothing is sent to a provider.",
    "token_factory": "Managed path: the cleaned dataset is uploaded to Nebius Token Factory, which trains and keeps "
                      "the files, checkpoints and deployed models on its servers until deleted: **Delete at the "
                      "provider**, under the job's **Data at the provider** on the Monitor page, deletes them.",
}


@dataclass
class ProviderItem:
    """One thing at the provider that holds or derives from the job's data."""

    kind: str
    """``file`` or ``deployment``."""
    id: str
    role: str
    """``training file``, ``validation file``, ``result file`` or ``deployment``."""
    present: bool | None = None
    """At the provider now (True/False), or None when it could not be asked."""
    detail: str = ""
    endpoint: Endpoint | None = field(default=None, repr=False, compare=False)
    """The local record of a deployment (when it was made decides how a 404 reads)."""

    def to_row(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "role": self.role, "present": self.present, "detail": self.detail}


@dataclass
class ProviderFootprint:
    job_id: str
    remote_id: str | None
    items: list[ProviderItem] = field(default_factory=list)
    checked: bool = False
    """Whether the provider was asked (False offline: the items are what the record says)."""
    deleted_at: str | None = None

    @property
    def present(self) -> list[ProviderItem]:
        return [item for item in self.items if item.present is not False]

    def to_rows(self) -> list[dict[str, Any]]:
        return [item.to_row() for item in self.items]


@dataclass
class CleanupReport:
    job_id: str
    deleted: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed


def _client(job: Job, client: TokenFactoryClient | None) -> TokenFactoryClient:
    return client or TokenFactoryClient(base_url=job.remote.get("base_url"))


def _managed_job(job_id: str) -> Job:
    job = require_job(job_id)
    if job.path != PATH:
        raise JobStateError(f"job {job_id} ran on this machine; nothing of it is at a provider")
    return job


def _items(job: Job, client: TokenFactoryClient | None) -> tuple[list[ProviderItem], bool]:
    items = [ProviderItem("file", job.remote[f"{role}_file"], f"{role} file")
             for role in ("training", "validation") if job.remote.get(f"{role}_file")]
    for endpoint in list_endpoints(PATH):
        if endpoint.job_id == job.id:
            items.append(ProviderItem("deployment", endpoint.model, "deployment", detail=endpoint.status,
                                      endpoint=endpoint))
    checked = False
    if client is not None and job.remote_id:
        try:
            remote = client.retrieve_job(job.remote_id)
            known = {item.id for item in items}
            items += [ProviderItem("file", file_id, "result file") for file_id in remote.get("result_files") or []
                      if file_id not in known]
            checked = True
        except ServiceError as exc:
            log.warning("could not read job %s at the provider: %s", job.remote_id, exc)
    return items, checked


def _ask(client: TokenFactoryClient, item: ProviderItem) -> None:
    try:
        if item.kind == "file":
            client._call(f"reading file {item.id}", lambda: client.sdk.files.retrieve(item.id))
        else:
            # Just made, the service may not list it yet: that is a deployment being validated, not gone.
            item.detail = str(read_deployment(client, item.id, item.endpoint).get("status") or item.detail)
        item.present = True
    except NotFound:
        item.present = False
    except ServiceError as exc:
        item.present, item.detail = None, str(exc)


def provider_footprint(job_id: str, client: TokenFactoryClient | None = None, *, check: bool = True
                       ) -> ProviderFootprint:
    """The files and deployments the job left at the provider; with ``check``, whether each is still there."""
    job = _managed_job(job_id)
    client = _client(job, client) if check else None
    items, checked = _items(job, client)
    if client is not None:
        for item in items:
            _ask(client, item)
        checked = True
    return ProviderFootprint(job_id=job.id, remote_id=job.remote_id, items=items, checked=checked,
                             deleted_at=job.remote.get("provider_data_deleted_at"))


@action("managed.cleanup")
def delete_provider_data(job_id: str, client: TokenFactoryClient | None = None) -> CleanupReport:
    """Delete the job's deployments and files at the provider; what is gone already is noted, not an error."""
    job = _managed_job(job_id)
    if not job.is_terminal:
        raise JobStateError(f"job {job_id} is {job.status}: cancel it first (the service still reads its files)")
    client = _client(job, client)
    items, _ = _items(job, client)
    report = CleanupReport(job_id=job.id)
    # Deployments first: they are what serves the client's fine-tuned model.
    for item in sorted(items, key=lambda i: i.kind != "deployment"):
        try:
            if item.kind == "deployment":
                client.delete_deployment(item.id)
            else:
                client.delete_file(item.id)
            report.deleted.append(item.id)
        except NotFound:
            if item.kind == "deployment" and just_deployed(item.endpoint):
                # Not stored by the service yet: it may still appear and bill, so it is not "gone".
                report.failed[item.id] = "the service has not stored this deployment yet; try again in a minute"
                continue
            report.already_gone.append(item.id)
        except ServiceError as exc:
            report.failed[item.id] = str(exc)
            continue
        if item.kind == "deployment":
            for endpoint in list_endpoints(PATH):
                if endpoint.model == item.id:
                    delete_endpoint(endpoint.id)
    remote = {**job.remote, "provider_data_deleted": sorted(report.deleted + report.already_gone)}
    if report.ok:
        remote["provider_data_deleted_at"] = utc_now()
    update_job(job.id, remote=remote)
    if not report.ok:
        raise ServiceError.of("server", f"deleted {len(report.deleted)} item(s) of job {job_id} at the provider, "
                              f"but not {', '.join(report.failed)}: {next(iter(report.failed.values()))}; "
                              "try again")
    return report
