"""Experiment tracking and continue-from-adapter for local runs, applied by the training process.

``TrainConfig.report_to`` names TRL's reporters: ``trackio`` (local-first, no account: its SQLite
files go to ``RUN_DIR/trackio``), ``tensorboard`` (``RUN_DIR/tensorboard``), ``wandb`` and ``mlflow``
(their own environment variables: ``WANDB_API_KEY``, ``MLFLOW_TRACKING_URI``...; never stored).
``tracking_links(run_dir, config)`` says where each one is and how to open it, for the Monitor page.

``TrainConfig.init_adapter`` starts a LoRA run from a finished run's adapter (a job id, a run folder
or an adapter folder) instead of a fresh one: training continues from those weights.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legalft.train.config import TrainConfig, TrainConfigError

logger = logging.getLogger(__name__)

TRACKIO_PROJECT = "legalft"
TRACKIO_DIR = "trackio"
TENSORBOARD_DIR = "tensorboard"
#: The package each reporter needs, and how to install it.
REPORTER_PACKAGES = {"trackio": "trackio", "tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


@dataclass
class TrackingLink:
    """Where a run's tracked metrics are and how to look at them."""

    reporter: str
    where: str
    """A folder (trackio, tensorboard) or the service (wandb, mlflow)."""
    command: str | None = None
    """The local command that opens a dashboard, when there is one."""
    url: str | None = None


def missing_reporters(config: TrainConfig) -> list[str]:
    """Problems for reporters whose package is not installed (pre-flight shows them before a start)."""
    return [f"report_to {name} needs the {REPORTER_PACKAGES[name]} package: "
            f"pip install {REPORTER_PACKAGES[name]}" for name in config.report_to
            if importlib.util.find_spec(REPORTER_PACKAGES[name]) is None]


def tracking_links(run_dir: str | Path, config: TrainConfig) -> list[TrackingLink]:
    """One link per reporter of the run."""
    run_dir = Path(run_dir)
    links = []
    for name in config.report_to:
        if name == "trackio":
            folder = run_dir / TRACKIO_DIR
            links.append(TrackingLink(name, str(folder),
                                      command=f"TRACKIO_DIR={folder} trackio show --project {TRACKIO_PROJECT}"))
        elif name == "tensorboard":
            folder = run_dir / TENSORBOARD_DIR
            links.append(TrackingLink(name, str(folder), command=f"tensorboard --logdir {folder}"))
        elif name == "wandb":
            project = os.environ.get("WANDB_PROJECT", "huggingface")
            links.append(TrackingLink(name, f"Weights & Biases project {project}, run {run_dir.name}",
                                      url="https://wandb.ai/home"))
        elif name == "mlflow":
            uri = os.environ.get("MLFLOW_TRACKING_URI") or str(run_dir.parent.parent / "mlruns")
            remote = uri.startswith("http")
            links.append(TrackingLink(name, f"MLflow at {uri}, run {run_dir.name}", url=uri if remote else None,
                                      command=None if remote else f"mlflow ui --backend-store-uri {uri}"))
    return links


def resolve_init_adapter(value: str) -> Path:
    """The adapter folder for ``init_adapter``: a job id (its run's ``adapter/``), a run folder or an adapter folder."""
    path = Path(value).expanduser()
    if not path.is_dir():
        from legalft.jobs import get_job

        job = get_job(value)
        if job is None:
            raise TrainConfigError([f"init_adapter {value!r} is neither a folder nor a job id"])
        if job.path != "local" or not job.run_dir:
            raise TrainConfigError([f"init_adapter: job {value} ran on Token Factory; bring its checkpoint home "
                                    "first (`legalft tf import`) and give that folder"])
        if job.status != "succeeded":
            raise TrainConfigError([f"init_adapter: job {value} is {job.status}; continue from a run that succeeded"])
        path = Path(job.run_dir)
    if not (path / "adapter_config.json").is_file() and (path / "adapter" / "adapter_config.json").is_file():
        path = path / "adapter"
    if not (path / "adapter_config.json").is_file():
        raise TrainConfigError([f"init_adapter: {path} holds no LoRA adapter (no adapter_config.json)"])
    return path.resolve()


def extend_training(config: TrainConfig, run_dir: Path, model: Any, sft: dict[str, Any]) -> tuple[Any, list[str], bool]:
    """Apply ``report_to`` and ``init_adapter`` in the training process.

    Returns the model (wrapped with the earlier adapter, trainable, when continuing), the
    ``report_to`` list for ``SFTConfig``, and whether the model already carries its adapter (then no
    new ``peft_config`` is made). ``sft`` gets the run's name, project and logging folder.
    """
    problems = missing_reporters(config)
    if problems:
        raise TrainConfigError(problems)
    report_to = list(config.report_to)
    if report_to:
        sft.setdefault("run_name", run_dir.name)
    if "trackio" in report_to:
        os.environ["TRACKIO_DIR"] = str(run_dir / TRACKIO_DIR)  # read when trackio is first imported
        sft.setdefault("project", TRACKIO_PROJECT)
    if "tensorboard" in report_to:
        sft.setdefault("logging_dir", str(run_dir / TENSORBOARD_DIR))
    if not config.init_adapter:
        return model, report_to or ["none"], False
    from peft import PeftModel

    adapter = resolve_init_adapter(config.init_adapter)
    logger.info("continuing from the adapter in %s", adapter)
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), report_to or ["none"], True


def links_for_job(job: Any) -> list[TrackingLink]:
    """The tracking links of a local job, read from its run folder's own config (none when unreadable)."""
    from legalft.train.rundir import CONFIG_FILE

    if getattr(job, "path", None) != "local" or not job.run_dir:
        return []
    try:
        config = TrainConfig.load(Path(job.run_dir) / CONFIG_FILE)
    except (OSError, ValueError) as exc:
        logger.info("no tracking links for %s: %s", job.id, exc)
        return []
    return tracking_links(job.run_dir, config)
