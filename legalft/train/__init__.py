"""Local fine-tuning with TRL and PEFT, run as detached, resumable jobs; merging; the smoke model.

The API the Train and Monitor pages (and the CLI) call. Importing this package is cheap: torch,
transformers, trl and peft are imported inside the functions that need them.

    config = load_recipe("smoke")                      # TrainConfig
    job = start_training(config, "data.jsonl")         # Job (detached process)
    job = refresh_job(job.id)                          # status, progress from the run directory
    rows = read_metrics(job.run_dir)                   # metrics.jsonl rows
    cancel_job(job.id); resume_job(job.id)
    report = merge_run(job.id)                         # MergeReport with the parity check
"""

from legalft.train.config import DistributedConfig, TrainConfig, TrainConfigError, parse_override
from legalft.train.errors import DatasetError, ModelUnavailableError
from legalft.train.hardware import (
    GpuInfo,
    Hardware,
    MemoryEstimate,
    ModelShape,
    detect_hardware,
    estimate_memory,
    model_shape,
)
from legalft.train.launch import (
    JobStateError,
    accelerate_config,
    cancel_job,
    job_run_dir,
    launch_command,
    reconcile_jobs,
    refresh_job,
    resume_job,
    runs_dir,
    start_training,
    wait_for_job,
)
from legalft.train.merge import MergeReport, merge_run
from legalft.train.preflight import DatasetCheck, TemplateReport, TrainPreflight, check_dataset, preflight
from legalft.train.recipes import RecipeInfo, list_recipes, load_recipe
from legalft.train.rundir import find_checkpoints, read_log_tail, read_metrics, read_status
from legalft.train.smoke import SMOKE_MODEL_ID, build_smoke_model, ensure_smoke_model

__all__ = [
    "DatasetCheck", "DatasetError", "DistributedConfig", "GpuInfo", "Hardware", "JobStateError", "MemoryEstimate",
    "MergeReport", "ModelShape", "ModelUnavailableError", "TrainPreflight", "RecipeInfo", "SMOKE_MODEL_ID",
    "TemplateReport", "TrainConfig", "TrainConfigError", "accelerate_config", "build_smoke_model", "cancel_job",
    "check_dataset", "detect_hardware", "ensure_smoke_model", "estimate_memory", "find_checkpoints",
    "job_run_dir", "launch_command", "list_recipes", "load_recipe", "merge_run", "model_shape", "parse_override",
    "preflight", "read_log_tail", "read_metrics", "read_status", "reconcile_jobs", "refresh_job", "resume_job",
    "runs_dir", "start_training", "wait_for_job",
]
