"""The training process: ``python -m legalft.train RUN_DIR`` trains from ``RUN_DIR/config.yaml``.

It continues from the last complete checkpoint when the run directory has one (after a cancel, a
``kill -9`` or a crash), so starting the same command again is how a job resumes. Everything it
reports goes to the run directory; the app reads it from there.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from legalft.jobs import utc_now
from legalft.train.config import TrainConfig, TrainConfigError, check_library_fields
from legalft.train.errors import DatasetError, ModelUnavailableError, describe_model_error, describe_oom
from legalft.train.rundir import (
    ADAPTER_DIR,
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    TRAIN_LOCK_FILE,
    in_run,
    last_checkpoint,
    read_metrics,
    truncate_metrics,
)
from legalft.train.status import StatusWriter, is_main_process

logger = logging.getLogger("legalft.train")


def resolve_device(config: TrainConfig) -> str:
    import torch

    if config.device == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    if config.device == "cuda":
        raise TrainConfigError(["device is cuda but torch sees no CUDA GPU: set device: auto (or cpu)"])
    return "cpu"


def resolve_precision(config: TrainConfig, device: str) -> str:
    """auto: bf16 on a GPU that has it, fp16 on an older GPU, fp32 on the CPU."""
    import torch

    if config.precision != "auto":
        return config.precision
    if device == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _load_model(config: TrainConfig, model_path: str, device: str, precision: str):
    import importlib.util

    import torch
    import transformers

    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    # LoRA keeps the frozen base in the compute dtype; full fine-tuning keeps fp32 master weights
    # and lets mixed precision autocast the compute.
    dtype = torch.float32 if config.method == "full" else dtypes[precision]
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": config.trust_remote_code}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    if config.method in ("qlora", "lora-8bit"):
        if device != "cuda":
            raise TrainConfigError([f"method {config.method} needs a CUDA GPU: set method: lora to train on the CPU"])
        if importlib.util.find_spec("bitsandbytes") is None:
            raise TrainConfigError([f"method {config.method} needs bitsandbytes: pip install bitsandbytes"])
        compute = dtypes[precision] if precision != "fp32" else torch.bfloat16
        if config.method == "qlora":
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute,
                bnb_4bit_use_double_quant=True)
        else:
            kwargs["quantization_config"] = transformers.BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    cls = (transformers.AutoModelForImageTextToText if config.model_class == "image-text-to-text"
           else transformers.AutoModelForCausalLM)
    try:
        model = cls.from_pretrained(model_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(describe_model_error(config.base_model, exc)) from exc
    if config.method == "full" and config.freeze_modules:
        import re

        patterns = [re.compile(p) for p in config.freeze_modules]
        frozen = 0
        for name, param in model.named_parameters():
            if any(p.search(name) for p in patterns):
                param.requires_grad_(False)
                frozen += param.numel()
        logger.info("froze %.1fM parameters matching %s", frozen / 1e6, config.freeze_modules)
    return model


def train(run_dir: Path, status: StatusWriter) -> dict[str, Any]:
    """Train the run in ``run_dir``; returns what goes into the final status."""
    import datasets
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from legalft.train.callbacks import RunDirCallback
    from legalft.train.preflight import inspect_chat_template, load_records, load_tokenizer, resolve_base_model
    from legalft.train.tracking import extend_training

    config = TrainConfig.load(run_dir / CONFIG_FILE)
    problems = check_library_fields(config)
    if problems:
        raise TrainConfigError(problems)
    device = resolve_device(config)
    precision = resolve_precision(config, device)
    status.update(force=True, phase="loading model", device=device, precision=precision)
    logger.info("training %s (%s) on %s in %s", config.base_model, config.method, device, precision)

    if not config.train_file:
        raise DatasetError("there is no training file: pick one on the Dataset page, or pass --dataset FILE")
    train_dataset = datasets.Dataset.from_list(load_records(in_run(run_dir, config.train_file)))
    eval_dataset = (datasets.Dataset.from_list(load_records(in_run(run_dir, config.validation_file)))
                    if config.validation_file else None)

    model_path = resolve_base_model(config.base_model)
    tokenizer = load_tokenizer(config, model_path)
    if config.assistant_only_loss and "messages" in train_dataset.column_names:
        report = inspect_chat_template(tokenizer, config.base_model)
        if report.problem:
            raise TrainConfigError([report.problem])
    model = _load_model(config, model_path, device, precision)

    resume = last_checkpoint(run_dir)
    tokens_offset = 0.0
    main_process = is_main_process()
    if resume:
        if main_process:
            # Steps after the checkpoint are trained again: their rows would be duplicates.
            truncate_metrics(run_dir, resume[0])
        previous = [row for row in read_metrics(run_dir)
                    if row.get("tokens_seen") is not None and int(row.get("step") or 0) <= resume[0]]
        tokens_offset = float(previous[-1]["tokens_seen"]) if previous else 0.0
        logger.info("resuming from %s (step %d)", resume[1].name, resume[0])
        status.update(force=True, resumed_from_step=resume[0])
    elif main_process:
        truncate_metrics(run_dir, 0)

    sft = dict(config.sft)
    if eval_dataset is not None:
        # A validation file means evaluation, at each checkpoint unless the config says otherwise.
        sft.setdefault("eval_strategy", "steps")
        if sft["eval_strategy"] == "steps":
            sft.setdefault("eval_steps", sft.get("save_steps") or 50)
    # The log is a file read by people and the Monitor page; progress bars only clutter it
    # (progress lives in status.json).
    sft.setdefault("disable_tqdm", True)
    model, report_to, has_adapter = extend_training(config, run_dir, model, sft)  # tracking, init_adapter
    args = SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        report_to=report_to,
        **sft,
    )
    peft_config = LoraConfig(task_type="CAUSAL_LM", **config.lora) if config.uses_lora and not has_adapter else None
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[RunDirCallback(run_dir, status, tokens_offset=tokens_offset)],
    )
    status.update(force=True, phase="training", total_steps=trainer.state.max_steps or None)
    result = trainer.train(resume_from_checkpoint=str(resume[1]) if resume else None)

    status.update(force=True, phase="saving")
    adapter_dir = run_dir / ADAPTER_DIR
    trainer.save_model(str(adapter_dir))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(adapter_dir))
    return {
        "step": trainer.state.global_step,
        "total_steps": trainer.state.max_steps,
        "train_loss": result.training_loss,
        "adapter_dir": str(adapter_dir),
    }


def _install_cancel_handler(status: StatusWriter) -> None:
    """SIGTERM/SIGINT (``legalft jobs cancel``) end the run as cancelled, at once.

    The process exits without unwinding: an interrupted checkpoint is skipped on resume (it lacks
    trainer_state.json), and nothing else needs cleaning up.
    """

    def handler(signum, frame):
        logger.warning("received %s: cancelling", signal.Signals(signum).name)
        try:
            status.finish("cancelled", error=None)
        finally:
            logging.shutdown()
            os._exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run(run_dir: str | Path) -> int:
    """Train the run in ``run_dir`` and record the outcome; returns the exit code.

    The main process holds ``train.lock`` in the run folder while it trains: a second trainer of
    the same folder (two resumes at once) exits with code 3 before writing anything.
    """
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir).resolve()
    lock = FileLock(run_dir / TRAIN_LOCK_FILE) if is_main_process() else None
    try:
        if lock:
            lock.acquire(timeout=0)
    except Timeout:
        print(f"another training process is already writing {run_dir}; not starting a second one",
              file=sys.stderr)
        return 3
    try:
        return _run_locked(run_dir)
    finally:
        if lock:
            lock.release()


def _run_locked(run_dir: Path) -> int:
    status = StatusWriter(run_dir, enabled=is_main_process())
    status.update(force=True, state="running", phase="starting", pid=os.getpid(), started_at=utc_now(),
                  finished_at=None, error=None)
    status.start_heartbeat()
    _install_cancel_handler(status)
    config: TrainConfig | None = None
    try:
        config = TrainConfig.load(run_dir / CONFIG_FILE)
        outcome = train(run_dir, status)
    except (TrainConfigError, DatasetError, ModelUnavailableError) as exc:
        logger.error("%s", exc)
        status.finish("failed", error=str(exc))
        return 1
    except Exception as exc:  # noqa: BLE001 - every failure must reach status.json
        logger.error("training failed:\n%s", traceback.format_exc())
        status.finish("failed", error=_describe_failure(exc, config, status.data.get("step")))
        return 1
    finally:
        status.stop_heartbeat()
    status.finish("succeeded", **outcome)
    logger.info("training finished: %s", outcome)
    return 0


def _describe_failure(exc: BaseException, config: TrainConfig | None, step: int | None) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if "out of memory" in text.lower() or type(exc).__name__ == "OutOfMemoryError":
        return describe_oom(config, step)
    first = " ".join(str(exc).split())[:500]
    return f"{type(exc).__name__}: {first} (the log has the traceback)"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m legalft.train", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a run directory holding config.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_dir = Path(args.run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        print(f"{run_dir / CONFIG_FILE} does not exist: a run directory holds the config to train from",
              file=sys.stderr)
        return 2
    return run(run_dir)
