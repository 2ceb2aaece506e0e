"""Merging a run's adapter into full weights, with a parity check recorded in the run.

The base model comes from the run's own ``config.yaml``, never from the caller, so the adapter is
merged into the model it was trained on. Greedy outputs of adapter-on-base and of the merged model
(reloaded from disk) are compared on fixed prompts; the result goes to ``merge.json`` so nothing
serves a merged model that behaves unlike the trained one. A second merge is a no-op that says so.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legalft.audit import action
from legalft.jobs import utc_now
from legalft.train.config import TrainConfig
from legalft.train.launch import JobStateError, refresh_job
from legalft.train.rundir import ADAPTER_DIR, CONFIG_FILE, MERGE_FILE, MERGED_DIR, read_json, write_json_atomic

logger = logging.getLogger(__name__)

#: Fixed prompts for the parity check: short legal questions in the training domain.
PARITY_PROMPTS = (
    "What does section 1 of the Open-Ended Investment Companies Act (Northern Ireland) 2002 provide?",
    "When did the Companies Act 2006 come into force?",
    "Which department may make orders under this Act?",
)


@dataclass
class MergeReport:
    """The outcome of ``merge_run``."""

    job_id: str
    merged_dir: str
    already_merged: bool
    message: str
    parity_ok: bool | None = None
    """True when adapter-on-base and merged model agree on every prompt; None when not checked."""
    parity: list[dict[str, Any]] = field(default_factory=list)
    """Per prompt: prompt, adapter output, merged output, match."""
    base_model: str | None = None
    dtype: str | None = None
    seconds: float | None = None


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[tuple[list[int], str]]:
    import torch

    outputs = []
    device = next(model.parameters()).device
    for prompt in prompts:
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(device)
        with torch.no_grad():
            generated = model.generate(
                **inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            )
        new_tokens = generated[0, inputs["input_ids"].shape[1]:].tolist()
        outputs.append((new_tokens, tokenizer.decode(new_tokens, skip_special_tokens=True)))
    return outputs


def _report_from_record(job_id: str, merged_dir: Path, record: dict[str, Any], message: str) -> MergeReport:
    parity = record.get("parity") or {}
    return MergeReport(job_id=job_id, merged_dir=str(merged_dir), already_merged=True, message=message,
                       parity_ok=parity.get("match"), parity=parity.get("prompts") or [],
                       base_model=record.get("base_model"), dtype=record.get("dtype"), seconds=record.get("seconds"))


@action("train.merge")
def merge_run(
    job_id: str, *, prompts: list[str] | None = None, max_new_tokens: int = 24, force: bool = False
) -> MergeReport:
    """Merge a succeeded local job's adapter into its base model (bf16 on a GPU, fp32 on the CPU).

    Writes ``RUN_DIR/merged`` (safetensors, tokenizer, chat template) and ``RUN_DIR/merge.json``.
    Merging again returns the recorded result without work unless ``force``.
    """
    job = refresh_job(job_id)
    if job.path != "local" or not job.run_dir:
        raise JobStateError(f"job {job_id} is not a local run: Token Factory models are deployed, not merged")
    report = merge_run_dir(Path(job.run_dir), job_id, status=job.status, prompts=prompts,
                           max_new_tokens=max_new_tokens, force=force)
    refresh_job(job_id)
    return report


def merge_run_dir(
    run_dir: Path, job_id: str, *, status: str | None = None, prompts: list[str] | None = None,
    max_new_tokens: int = 24, force: bool = False,
) -> MergeReport:
    """``merge_run`` on the folder alone: what a GPU host runs (``legalft.targets.probe merge``)."""
    if status is None:
        from legalft.train.rundir import read_status

        status = read_status(run_dir).get("state")
    merged_dir = run_dir / MERGED_DIR
    record = read_json(run_dir / MERGE_FILE)
    if record and (merged_dir / "config.json").exists() and not force:
        parity = (record.get("parity") or {}).get("match")
        verdict = "parity check passed" if parity else "PARITY CHECK FAILED: do not serve it"
        return _report_from_record(job_id, merged_dir, record,
                                   f"job {job_id} is already merged into {merged_dir} ({verdict})")
    if status != "succeeded":
        raise JobStateError(f"job {job_id} is {status}: only a succeeded run can be merged"
                            + (" (resume it first)" if status in ("failed", "cancelled") else ""))
    config = TrainConfig.load(run_dir / CONFIG_FILE)
    adapter_dir = run_dir / ADAPTER_DIR
    if not config.uses_lora:
        return MergeReport(job_id=job_id, merged_dir=str(adapter_dir), already_merged=True,
                           message=f"job {job_id} trained all weights: {adapter_dir} is already a whole model",
                           base_model=config.base_model)
    if not (adapter_dir / "adapter_config.json").exists():
        raise JobStateError(f"job {job_id} has no adapter in {adapter_dir}: the run did not save one")

    import torch
    import transformers
    from peft import PeftModel

    from legalft.train.preflight import resolve_base_model

    started = time.monotonic()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    dtype_name = "bf16" if dtype == torch.bfloat16 else "fp32"
    base_path = resolve_base_model(config.base_model)
    cls = (transformers.AutoModelForImageTextToText if config.model_class == "image-text-to-text"
           else transformers.AutoModelForCausalLM)
    logger.info("merging %s into %s (%s, %s)", adapter_dir, config.base_model, device, dtype_name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(adapter_dir))
    base = cls.from_pretrained(base_path, dtype=dtype, trust_remote_code=config.trust_remote_code).to(device)
    model = PeftModel.from_pretrained(base, str(adapter_dir))
    model.eval()
    prompts = list(prompts or PARITY_PROMPTS)
    adapter_outputs = _generate(model, tokenizer, prompts, max_new_tokens)

    merged = model.merge_and_unload()
    staging = run_dir / ".merged.partial"
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(str(staging), safe_serialization=True)
    tokenizer.save_pretrained(str(staging))
    del merged, model, base

    # Reload from disk: the parity must hold for what will actually be served.
    reloaded = cls.from_pretrained(str(staging), dtype=dtype).to(device)
    reloaded.eval()
    merged_outputs = _generate(reloaded, tokenizer, prompts, max_new_tokens)
    del reloaded

    checks = [
        {"prompt": p, "adapter": a[1], "merged": m[1], "match": a[0] == m[0]}
        for p, a, m in zip(prompts, adapter_outputs, merged_outputs)
    ]
    match = all(c["match"] for c in checks)
    shutil.rmtree(merged_dir, ignore_errors=True)
    staging.rename(merged_dir)
    seconds = round(time.monotonic() - started, 2)
    record = {
        "created_at": utc_now(), "base_model": config.base_model, "base_path": base_path,
        "adapter": str(adapter_dir), "merged": str(merged_dir), "device": device, "dtype": dtype_name,
        "seconds": seconds, "parity": {"match": match, "max_new_tokens": max_new_tokens, "prompts": checks},
    }
    write_json_atomic(run_dir / MERGE_FILE, record)
    verdict = "parity check passed" if match else "PARITY CHECK FAILED: the merged model differs; do not serve it"
    logger.info("merged job %s into %s in %.1f s (%s)", job_id, merged_dir, seconds, verdict)
    return MergeReport(job_id=job_id, merged_dir=str(merged_dir), already_merged=False,
                       message=f"merged job {job_id} into {merged_dir} ({dtype_name}; {verdict})",
                       parity_ok=match, parity=checks, base_model=config.base_model, dtype=dtype_name,
                       seconds=seconds)
