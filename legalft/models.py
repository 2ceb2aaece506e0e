"""Models that move between the paths: adapters merged for a CPU server, managed checkpoints brought
home, local adapters deployed to the managed service.

- ``merged_for_serving(adapter_dir)``: ``transformers serve`` cannot load an unmerged PEFT adapter
  ("Unrecognized model"), so a CPU server gets the adapter merged into its base once, into a cache
  keyed by the adapter's content (``LEGALFT_HOME/cache/merged/<sha12>/``); the run folder is never
  written.
- ``import_checkpoint(job_id, checkpoint_id)``: a managed checkpoint's files downloaded into
  ``LEGALFT_HOME/models/<job>-<checkpoint>/`` (``model.json`` says where it came from), a folder that
  ``legalft serve start`` serves like any other (vLLM on a GPU, transformers on the CPU).
- ``deploy_adapter(folder, name)``: a local adapter packed, uploaded and deployed with the file as
  ``source``, when its base is one the service deploys; refused with the reason where it is not.

Heavy libraries (torch, transformers, peft) are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legalft.errors import Conflict, UsageError
from legalft.home import subdir

log = logging.getLogger(__name__)

MODEL_RECORD = "model.json"
_MERGE_DONE = "merged.json"


def _adapter_digest(adapter_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in adapter_dir.rglob("*") if p.is_file()):
        digest.update(path.relative_to(adapter_dir).as_posix().encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model an adapter folder names (``base_model_name_or_path``)."""
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        base = json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} cannot be read as an adapter config: {exc}") from None
    if not base:
        raise UsageError(f"{path} names no base model (base_model_name_or_path)")
    return str(base)


def merged_for_serving(adapter_dir: str | Path) -> Path:
    """A full model folder for ``adapter_dir``: its base with the adapter merged in (fp32, CPU),
    built once per adapter content and reused; the tokenizer and chat template come from the adapter."""
    adapter_dir = Path(adapter_dir).resolve()
    target = (subdir("cache") / "merged") / _adapter_digest(adapter_dir)
    if (target / _MERGE_DONE).is_file():
        return target
    import torch
    import transformers
    from peft import PeftModel

    base = adapter_base(adapter_dir)
    started = time.monotonic()
    log.info("merging %s into %s for a CPU server (cache %s)", adapter_dir, base, target)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(staging), safe_serialization=True)
    tokenizer_source = adapter_dir if (adapter_dir / "tokenizer_config.json").is_file() else base
    transformers.AutoTokenizer.from_pretrained(str(tokenizer_source)).save_pretrained(str(staging))
    for name in ("chat_template.jinja",):
        if (adapter_dir / name).is_file() and not (staging / name).is_file():
            shutil.copy2(adapter_dir / name, staging / name)
    (staging / _MERGE_DONE).write_text(json.dumps({
        "adapter": str(adapter_dir), "base_model": base, "seconds": round(time.monotonic() - started, 2)}))
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    return target


# --- managed checkpoints brought home -------------------------------------------------------------


@dataclass
class ImportedModel:
    """A managed checkpoint's files, downloaded into a local folder that can be served."""

    path: Path
    job_id: str
    checkpoint_id: str
    files: list[str]
    base_model: str | None
    already_there: bool = False


def import_checkpoint(job_id: str, checkpoint_id: str | None = None, *, client: Any = None) -> ImportedModel:
    """Download a managed job's checkpoint (the latest by default) into ``LEGALFT_HOME/models/``.

    Every result file is fetched through ``GET /v1/files/{id}/content`` under its own file name, into
    a staging folder renamed into place once all have arrived; a second call returns the folder.
    """
    from legalft.jobs import list_checkpoints, require_job
    from legalft.managed.client import PATH, client_for

    job = require_job(job_id)
    if job.path != PATH or not job.remote_id:
        raise UsageError(f"job {job_id} is not a managed job with checkpoints; its run folder is already local")
    checkpoints = list_checkpoints(job_id)
    if not checkpoints:
        raise Conflict(f"job {job_id} has no checkpoints yet ({job.status}); wait for its first epoch")
    chosen = checkpoints[-1] if checkpoint_id is None else next(
        (c for c in checkpoints if c["checkpoint_id"] == checkpoint_id), None)
    if chosen is None:
        known = ", ".join(c["checkpoint_id"] for c in checkpoints)
        raise UsageError(f"job {job_id} has no checkpoint {checkpoint_id!r}; it has {known}")
    file_ids = chosen["metrics"].get("result_files") or []
    if not file_ids:
        raise Conflict(f"checkpoint {chosen['checkpoint_id']} lists no files to download")
    target = subdir("models") / f"{job_id}-{chosen['checkpoint_id']}"
    record_path = target / MODEL_RECORD
    if record_path.is_file():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        return ImportedModel(target, job_id, chosen["checkpoint_id"], record["files"], record.get("base_model"),
                             already_there=True)
    client = client or client_for(job)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    names = []
    for file_id in file_ids:
        meta = client.retrieve_file(file_id)
        name = Path(meta.get("filename") or file_id).name  # never a path from the service
        client.download_file(file_id, staging / name)
        names.append(name)
    base = job.base_model
    if (staging / "adapter_config.json").is_file():
        try:
            base = adapter_base(staging)
        except UsageError:
            log.warning("checkpoint %s names no base model; recorded as %s", chosen["checkpoint_id"], base)
    (staging / MODEL_RECORD).write_text(json.dumps({
        "source": "token_factory", "job_id": job_id, "remote_job": job.remote_id,
        "checkpoint_id": chosen["checkpoint_id"], "files": names, "base_model": base,
        "trained_from": job.base_model, "metrics": {k: v for k, v in chosen["metrics"].items() if k != "result_files"},
    }, indent=2))
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)
    log.info("imported checkpoint %s of %s into %s", chosen["checkpoint_id"], job_id, target)
    return ImportedModel(target, job_id, chosen["checkpoint_id"], names, base)


def list_local_models() -> list[dict[str, Any]]:
    """Models brought home (``LEGALFT_HOME/models/*/model.json``), with their folder."""
    found = []
    for record in sorted(subdir("models").glob(f"*/{MODEL_RECORD}")):
        try:
            found.append({**json.loads(record.read_text(encoding="utf-8")), "path": str(record.parent)})
        except ValueError:
            log.warning("unreadable %s; skipped", record)
    return found


# --- local adapters deployed to the managed service -----------------------------------------------


def deployable_base(adapter_dir: str | Path) -> str:
    """The service's deployment name for the adapter's base, or ``UsageError`` saying why it has none."""
    from legalft.managed.catalogue import load_model_catalogue

    base = adapter_base(adapter_dir)
    for model in load_model_catalogue().models:
        if base in (model.id, model.deploy_as):
            if not model.lora_deploy:
                raise UsageError(f"cannot deploy {adapter_dir} to Token Factory: the service does not deploy "
                                 f"LoRA adapters of {base}; serve it here instead (`legalft serve start`)")
            return model.deploy_as
    raise UsageError(
        f"cannot deploy {adapter_dir} to Token Factory: its base {base!r} is not a model the service deploys "
        "adapters for (see `legalft tf models`); serve it here instead (`legalft serve start`)")


def pack_adapter(adapter_dir: str | Path, dest: str | Path) -> Path:
    """The adapter folder as one ``.tar.gz`` (files at the top level) for upload."""
    adapter_dir, dest = Path(adapter_dir), Path(dest)
    with tarfile.open(dest, "w:gz") as archive:
        for path in sorted(p for p in adapter_dir.iterdir() if p.is_file()):
            archive.add(path, arcname=path.name)
    return dest


def deploy_adapter(adapter_dir: str | Path, *, name: str, client: Any = None, description: str | None = None):
    """Upload a local adapter and deploy it (``/v0/models`` with the file as ``source``).

    Refused before any upload when the adapter's base is not in the service's catalogue.
    Returns the endpoint (``validating``); ``legalft.managed.poll_deployment`` follows it.
    """
    from legalft.managed.client import TokenFactoryClient
    from legalft.managed.deploy import _record_deployment

    adapter_dir = Path(adapter_dir)
    if not (adapter_dir / "adapter_config.json").is_file():
        raise UsageError(f"{adapter_dir} is not an adapter folder (no adapter_config.json); the service "
                         "deploys LoRA adapters")
    base = deployable_base(adapter_dir)
    client = client or TokenFactoryClient()
    archive = pack_adapter(adapter_dir, subdir("cache") / f"adapter-{_adapter_digest(adapter_dir)}.tar.gz")
    uploaded = client.upload_file(archive, purpose="user_data", content_type="application/gzip")
    deployment = client.create_deployment(name=name, base_model=base, source=uploaded["id"], description=description)
    return _record_deployment(client, deployment, job_id=None, extra={
        "source": uploaded["id"], "base_model": base, "requested_name": name, "adapter_dir": str(adapter_dir),
        "deployed_at": time.time()})
