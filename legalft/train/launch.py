"""Starting, watching, cancelling and resuming local training jobs.

A job runs as its own process session (``start_new_session``), so closing the browser tab or
restarting the app does not touch it. The run directory is the truth; the ``jobs`` table is the
index, brought up to date by ``refresh_job`` / ``reconcile_jobs`` from ``status.json`` and the
launch record. A job whose process died without a final status (killed, out of memory, machine
restart) is found by its pid and heartbeat and marked failed with the tail of its log.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from legalft import procs
from legalft.audit import action
from legalft.budget import train_estimate
from legalft.errors import JobBusy, JobStateError
from legalft.home import subdir
from legalft.jobs import Job, create_job, list_jobs, new_job_id, require_job, update_job, upsert_checkpoint, utc_now
from legalft.polling import poll_until
from legalft.train.config import TrainConfig, TrainConfigError
from legalft.train.rundir import (
    ADAPTER_DIR,
    CANCEL_FILE,
    CONFIG_FILE,
    DATA_DIR,
    LAUNCH_LOCK_FILE,
    LOG_FILE,
    MERGE_FILE,
    MERGED_DIR,
    METRICS_FILE,
    RUN_FILE,
    STATUS_FILE,
    TARGET_FILE,
    find_checkpoints,
    heartbeat_age,
    read_json,
    read_log_tail,
    read_metrics,
    read_status,
    write_json_atomic,
)

if TYPE_CHECKING:
    from legalft.targets import Target

logger = logging.getLogger(__name__)

ACCELERATE_CONFIG_FILE = "accelerate.yaml"
#: A run with no heartbeat for this long counts as dead even when its pid cannot be checked
#: (another machine, a copied home folder). The heartbeat beats every 5 s.
STALE_HEARTBEAT_SECONDS = 15 * 60
CANCEL_GRACE_SECONDS = 10.0
_ACTIVE = ("validating_files", "queued", "running")


def runs_dir() -> Path:
    """``LEGALFT_HOME/runs``: one folder per local run, named by the job id."""
    return subdir("runs")


# ---- command lines ----------------------------------------------------------------------------

def accelerate_config(config: TrainConfig) -> dict[str, Any]:
    """The ``accelerate launch`` config for a multi-GPU run (data parallel, FSDP or DeepSpeed)."""
    dist = config.distributed
    precision = config.precision if config.precision in ("bf16", "fp16") else "bf16"
    data: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "debug": False,
        "distributed_type": "MULTI_GPU",
        "downcast_bf16": "no",
        "machine_rank": dist.machine_rank,
        "main_training_function": "main",
        "mixed_precision": "no" if config.precision == "fp32" else precision,
        "num_machines": dist.num_machines,
        "num_processes": dist.num_processes * dist.num_machines,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }
    if dist.num_machines > 1:
        data["main_process_ip"] = dist.main_process_ip
        data["main_process_port"] = dist.main_process_port
    if dist.strategy == "fsdp":
        data["distributed_type"] = "FSDP"
        data["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_offload_params": False,
            "fsdp_reshard_after_forward": True,
            # Sharded checkpoints resume fast; the final adapter is gathered by save_model.
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_activation_checkpointing": False,
        }
    elif dist.strategy == "deepspeed":
        data["distributed_type"] = "DEEPSPEED"
        data["deepspeed_config"] = {
            "deepspeed_multinode_launcher": "standard",
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero_stage": dist.deepspeed_stage,
            "zero3_init_flag": dist.deepspeed_stage == 3,
            "zero3_save_16bit_model": dist.deepspeed_stage == 3,
            "gradient_accumulation_steps": int(config.sft.get("gradient_accumulation_steps") or 1),
        }
    return data


def launch_command(config: TrainConfig, run_dir: str | Path) -> list[str]:
    """The command that trains ``run_dir``: the module itself on one process, ``accelerate launch`` above.

    ``accelerate launch`` starts ``distributed.num_processes`` processes per machine (one per GPU);
    the same command runs on every machine of a multi-node job, each with its own ``machine_rank``.
    """
    run_dir = Path(run_dir)
    dist = config.distributed
    if dist.num_processes * dist.num_machines <= 1:
        return [sys.executable, "-m", "legalft.train", str(run_dir)]
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(run_dir / ACCELERATE_CONFIG_FILE),
        "--num_processes", str(dist.num_processes * dist.num_machines),
        "--num_machines", str(dist.num_machines),
        "--machine_rank", str(dist.machine_rank),
        "--main_process_port", str(dist.main_process_port),
    ]
    if dist.num_machines > 1:
        command += ["--main_process_ip", str(dist.main_process_ip)]
    if dist.strategy == "deepspeed":
        command += ["--use_deepspeed"]
    elif dist.strategy == "fsdp":
        command += ["--use_fsdp"]
    else:
        command += ["--multi_gpu"]
    command += ["--module", "legalft.train", str(run_dir)]
    return command


def _spawn(job_id: str, run_dir: Path, config: TrainConfig, resumed_from: int | None,
           env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the training process in its own session; record the attempt in ``run.json``."""
    command = launch_command(config, run_dir)
    if config.distributed.num_processes * config.distributed.num_machines > 1:
        (run_dir / ACCELERATE_CONFIG_FILE).write_text(
            yaml.safe_dump(accelerate_config(config), sort_keys=False), encoding="utf-8")
    record = read_json(run_dir / RUN_FILE) or {"job_id": job_id, "created_at": utc_now(), "attempts": []}
    # Keep the progress of earlier attempts visible until the new process reports its own.
    kept = ("latest", "latest_eval", "total_steps", "step", "epoch", "last_checkpoint_step", "paused_seconds")
    number = len(record["attempts"]) + 1
    previous = read_status(run_dir)
    paused = float(previous.get("paused_seconds") or 0.0)
    ended = previous.get("finished_at") if record["attempts"] else None
    if ended:
        # The time the run sat cancelled or failed before this resume is not part of its duration.
        try:
            stopped = datetime.fromisoformat(ended)
            stopped = stopped if stopped.tzinfo else stopped.replace(tzinfo=timezone.utc)
            paused += max(0.0, (datetime.now(timezone.utc) - stopped).total_seconds())
        except ValueError:
            pass
    write_json_atomic(run_dir / STATUS_FILE, {
        **{k: v for k, v in previous.items() if k in kept},
        "state": "queued", "phase": "starting", "job_id": job_id, "attempt": number,
        "heartbeat": time.time(), "error": None, "finished_at": None,
        **({"paused_seconds": round(paused, 1)} if paused else {}),
        # A resume starts again from its checkpoint: say so from the start, not once the trainer reports.
        **({"resumed_from_step": resumed_from, "step": resumed_from} if resumed_from is not None else {}),
    })
    try:
        process = procs.spawn_detached(command, log_path=run_dir / LOG_FILE, cwd=run_dir, env=procs.checkout_env(env),
                                       banner=f"\n===== {utc_now()} attempt {number}: {' '.join(command)}\n")
    except OSError as exc:
        write_json_atomic(run_dir / STATUS_FILE, {
            "state": "failed", "phase": "done", "job_id": job_id, "finished_at": utc_now(),
            "error": f"cannot start the training process ({exc}): check that {command[0]} exists",
        })
        raise
    attempt = {**process.to_dict(), "resumed_from_step": resumed_from}
    record["attempts"].append(attempt)
    write_json_atomic(run_dir / RUN_FILE, record)
    return attempt


# ---- starting and stopping --------------------------------------------------------------------

@action("train.start", cost=train_estimate, budget="gpu")
def start_training(
    config: TrainConfig,
    dataset_path: str | Path | None = None,
    *,
    validation_path: str | Path | None = None,
    name: str | None = None,
    dataset_id: int | None = None,
    estimated_cost: float | None = None,
    check: bool = True,
    target: "Target | None" = None,
) -> Job:
    """Start a detached training job and return it (status ``queued``, then ``running``).

    ``dataset_path`` (and ``validation_path``) override the config's files; both are copied into
    the run folder. With ``check`` the preflight runs first and a ``TrainConfigError`` lists every
    problem before anything starts. ``target`` (``legalft.targets``) trains elsewhere: a GPU VM
    over SSH or a SkyPilot cluster; a detached follower launches it there and mirrors the run
    folder back, so everything else reads the same run folder as for a local run.
    """
    overrides: dict[str, Any] = {}
    if dataset_path:
        overrides["train_file"] = str(Path(dataset_path).expanduser().resolve())
    elif config.train_file:
        overrides["train_file"] = str(Path(config.train_file).expanduser().resolve())
    if validation_path:
        overrides["validation_file"] = str(Path(validation_path).expanduser().resolve())
    if name:
        overrides["name"] = name
    config = config.with_overrides(overrides)
    if estimated_cost is None:  # the figure the GPU budget counted for this launch, kept on the job
        estimated_cost = train_estimate(target=target)
    if check:
        from legalft.train.preflight import preflight

        hardware = None
        if target is not None and target.is_remote:
            where = target.check()  # before anything is copied or billed
            if where.problems:
                raise TrainConfigError(where.problems)
            hardware = target.hardware(where)
        report = preflight(config, hardware)
        if report.problems:
            raise TrainConfigError(report.problems)
        for warning in report.warnings:
            logger.warning("%s", warning)

    job_id = new_job_id("local")
    run_dir = runs_dir() / job_id
    run_dir.mkdir(parents=True)
    source_file = config.train_file
    config = relocate_data(config, run_dir)
    config.save(run_dir / CONFIG_FILE)
    remote: dict[str, Any] = {}
    if target is not None and target.kind != "local":
        remote = {"target": target.to_dict()}
        write_json_atomic(run_dir / TARGET_FILE, target.to_dict())
    create_job(
        "local", job_id=job_id, status="queued", name=config.name, base_model=config.base_model,
        dataset_id=dataset_id, dataset_path=source_file, config=config.to_dict(), run_dir=str(run_dir),
        estimated_cost=estimated_cost, remote=remote,
        output={"run_dir": str(run_dir), "log": str(run_dir / LOG_FILE), "metrics": str(run_dir / METRICS_FILE)},
    )
    if remote:
        from legalft.targets.follow import start_follower

        start_follower(job_id, run_dir, action="launch")
        logger.info("job %s: launching on %s", job_id, target.describe())
        return refresh_job(job_id)
    attempt = _spawn(job_id, run_dir, config, resumed_from=None)
    logger.info("started job %s (pid %s) in %s", job_id, attempt["pid"], run_dir)
    return refresh_job(job_id)


def relocate_data(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """Copy the training and validation files into ``RUN_DIR/data`` and name them relative to the run,
    so the folder trains unchanged wherever it is copied (``python -m legalft.train RUN_DIR``)."""
    import shutil

    data = run_dir / DATA_DIR
    data.mkdir(exist_ok=True)
    overrides: dict[str, Any] = {}
    for field_name, file_name in (("train_file", "train.jsonl"), ("validation_file", "validation.jsonl")):
        source = getattr(config, field_name)
        if source and Path(source).is_absolute() and Path(source).is_file():
            shutil.copyfile(source, data / file_name)
            overrides[field_name] = f"{DATA_DIR}/{file_name}"
    return config.with_overrides(overrides) if overrides else config


def _last_attempt(run_dir: Path) -> dict[str, Any] | None:
    attempts = read_json(run_dir / RUN_FILE).get("attempts") or []
    return attempts[-1] if attempts else None


def process_alive(attempt: dict[str, Any] | None) -> bool | None:
    """Whether an attempt's process still runs: True, False, or None when it cannot be told here."""
    return procs.is_running(attempt)


@action("train.cancel")
def cancel_job(job_id: str, grace_seconds: float = CANCEL_GRACE_SECONDS) -> Job:
    """Stop a running local job: SIGTERM to its whole process group, SIGKILL after the grace period.

    The status becomes ``cancelled``; the checkpoints stay, so ``resume_job`` can continue it.
    A job that already ended is returned unchanged.
    """
    job = refresh_job(job_id)
    if job.path != "local":
        raise JobStateError(f"job {job_id} runs on Token Factory: cancel it with the Token Factory commands")
    if job.is_terminal:
        return job
    run_dir = Path(job.run_dir)
    if job.remote.get("target"):
        from legalft.targets.follow import cancel_remote

        cancel_remote(job.id, run_dir, grace_seconds=grace_seconds)
        return refresh_job(job_id)
    stop_run_dir(run_dir, grace_seconds)
    return refresh_job(job_id)


def stop_run_dir(run_dir: Path, grace_seconds: float = CANCEL_GRACE_SECONDS) -> dict[str, Any]:
    """Cancel the run in ``run_dir`` (only the folder: runs on whichever host holds the process)."""
    (run_dir / CANCEL_FILE).write_text(utc_now() + "\n", encoding="utf-8")
    procs.stop(_last_attempt(run_dir), grace_seconds=grace_seconds)
    status = read_status(run_dir)
    if status.get("state") != "succeeded":
        status.update(state="cancelled", phase="done", error=None, finished_at=status.get("finished_at") or utc_now())
        write_json_atomic(run_dir / STATUS_FILE, status)
    return status


def start_run_dir(job_id: str, run_dir: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Start (or continue from its last checkpoint) the run in ``run_dir``; returns the attempt.

    Only the folder: this is what ``legalft.targets.probe`` calls on a GPU host.
    """
    config = TrainConfig.load(run_dir / CONFIG_FILE)
    (run_dir / CANCEL_FILE).unlink(missing_ok=True)
    checkpoints = find_checkpoints(run_dir)
    return _spawn(job_id, run_dir, config, resumed_from=checkpoints[-1][0] if checkpoints else None, env=env)


@action("train.resume")
def resume_job(job_id: str) -> Job:
    """Continue a failed or cancelled local job from its last checkpoint, in the same run directory.

    Metrics continue from the checkpoint's step. Without a checkpoint the run starts over. The
    check and the start happen under the run folder's launch lock, so of two resumes at once one
    starts the job and the other is refused (``JobBusy`` or ``JobStateError``).
    """
    from filelock import FileLock, Timeout

    job = require_job(job_id)
    if job.path != "local":
        raise JobStateError(f"job {job_id} runs on Token Factory and cannot be resumed here")
    if not job.run_dir or not Path(job.run_dir).is_dir():
        raise JobStateError(f"job {job_id} has no run directory left to resume from; start a new job")
    run_dir = Path(job.run_dir)
    try:
        with FileLock(run_dir / LAUNCH_LOCK_FILE, timeout=0):
            return _resume_locked(job_id, run_dir)
    except Timeout:
        raise JobBusy(f"job {job_id} is being started by another command right now; "
                      "`legalft jobs show` tells when it runs") from None


def _resume_locked(job_id: str, run_dir: Path) -> Job:
    job = refresh_job(job_id)
    if not job.is_terminal:
        raise JobStateError(f"job {job_id} is {job.status}: cancel it first, or wait for it to end")
    if job.status == "succeeded":
        raise JobStateError(f"job {job_id} already succeeded: start a new job to train further")
    if job.remote.get("target"):
        from legalft.targets.follow import start_follower

        (run_dir / CANCEL_FILE).unlink(missing_ok=True)
        status = read_status(run_dir)
        status.update(state="queued", phase="resuming", error=None, finished_at=None)
        write_json_atomic(run_dir / STATUS_FILE, status)
        update_job(job_id, status="queued", error=None, finished_at=None)
        start_follower(job_id, run_dir, action="resume")
        return refresh_job(job_id)
    attempt = start_run_dir(job_id, run_dir)
    update_job(job_id, status="queued", error=None, finished_at=None)
    logger.info("resumed job %s from step %s", job_id, attempt["resumed_from_step"])
    return refresh_job(job_id)


# ---- keeping the index in step with the run directory -----------------------------------------

def _dead_run_error(run_dir: Path, attempt: dict[str, Any] | None, age: float | None) -> str:
    pid = attempt.get("pid") if attempt else "?"
    beat = f"; last heartbeat {age:.0f} s ago" if age is not None else ""
    tail = read_log_tail(run_dir, 15)
    return (f"the training process (pid {pid}) ended without a final status{beat} (killed, out of memory,"
            f" or the machine restarted). `legalft jobs resume` continues from the last checkpoint."
            f" Last log lines:\n{tail}")


def settle_run_dir(run_dir: Path) -> dict[str, Any]:
    """The run's status, after marking a run whose process is gone without a final status.

    Reads and writes only the run folder, so it runs wherever the process runs: here for a local
    run, on the GPU host (``legalft.targets.probe``) for a remote one.
    """
    status = read_status(run_dir)
    if status.get("state") not in _ACTIVE:
        return status
    attempt = _last_attempt(run_dir)
    alive = process_alive(attempt)
    age = heartbeat_age(status)
    if alive is False or (alive is None and age is not None and age > STALE_HEARTBEAT_SECONDS):
        # Re-read: the process may have written its final status just before exiting.
        status = read_status(run_dir)
        if status.get("state") in _ACTIVE:
            if (run_dir / CANCEL_FILE).exists():
                status.update(state="cancelled", error=None)
            else:
                status.update(state="failed", error=_dead_run_error(run_dir, attempt, age))
            status.update(phase="done", finished_at=utc_now())
            write_json_atomic(run_dir / STATUS_FILE, status)
            logger.warning("%s: process gone without a final status; marked %s", run_dir.name, status["state"])
    return status


def refresh_job(job_id: str) -> Job:
    """Bring a job's database row up to date with its run directory, and return it.

    A run whose process is gone without a final status is marked failed (or cancelled when a
    cancel was requested) in ``status.json`` first, with the tail of its log as the error. A
    remote run's folder is a mirror kept by its follower: it is read as it is (the follower, and
    the probe on the GPU host, decide whether the remote process lives), and a follower that
    died with the app is started again.
    """
    job = require_job(job_id)
    if job.path != "local" or not job.run_dir:
        return job
    run_dir = Path(job.run_dir)
    if not run_dir.is_dir():
        if job.is_terminal:
            return job
        return update_job(job.id, status="failed", error=f"the run directory {run_dir} is gone: the job cannot"
                          " be followed or resumed; start a new one")
    if job.remote.get("target"):
        from legalft.targets.follow import ensure_follower

        status = read_status(run_dir)
        if status.get("state") in _ACTIVE:
            ensure_follower(job.id, run_dir)
        return _sync(job, run_dir, status)
    return _sync(job, run_dir, settle_run_dir(run_dir))


def _sync(job: Job, run_dir: Path, status: dict[str, Any]) -> Job:
    state = status.get("state") or job.status
    if state not in ("validating_files", "queued", "running", "succeeded", "failed", "cancelled"):
        state = job.status
    latest = {**(status.get("latest_eval") or {}), **(status.get("latest") or {})}
    progress = {
        key: status.get(key)
        for key in ("step", "total_steps", "epoch", "phase", "heartbeat", "heartbeat_at", "pid", "device",
                    "precision", "last_checkpoint_step", "resumed_from_step", "attempt", "paused_seconds")
        if status.get(key) is not None
    }
    for key in ("loss", "eval_loss", "learning_rate", "tokens_seen", "tokens_per_second", "mean_token_accuracy"):
        if latest.get(key) is not None:
            progress[key] = latest[key]
    output = dict(job.output)
    output.update({"run_dir": str(run_dir), "log": str(run_dir / LOG_FILE), "metrics": str(run_dir / METRICS_FILE)})
    if (run_dir / ADAPTER_DIR).is_dir() and state == "succeeded":
        output["adapter"] = str(run_dir / ADAPTER_DIR)
    if status.get("train_loss") is not None:
        output["train_loss"] = status["train_loss"]
    merge = read_json(run_dir / MERGE_FILE)
    if merge:
        output["merged"] = str(run_dir / MERGED_DIR)
        output["parity_ok"] = bool(merge.get("parity", {}).get("match"))
    fields: dict[str, Any] = {}
    if state != job.status:
        fields["status"] = state
    if progress != job.progress:
        fields["progress"] = progress
    if output != job.output:
        fields["output"] = output
    error = status.get("error")
    if error != job.error:
        fields["error"] = error
    if status.get("started_at") and not job.started_at:
        fields["started_at"] = status["started_at"]
    if state in ("succeeded", "failed", "cancelled") and status.get("finished_at") != job.finished_at:
        fields["finished_at"] = status.get("finished_at")
    if not fields:
        return job
    updated = update_job(job.id, **fields)
    _sync_checkpoints(job.id, run_dir)
    return updated


def _sync_checkpoints(job_id: str, run_dir: Path) -> None:
    """Mirror the kept checkpoints into ``job_checkpoints``, like the managed path's per-epoch ones.

    Checkpoints the Trainer rotated out (``save_total_limit``) are removed from the table too.
    """
    from legalft.db import connect

    checkpoints = find_checkpoints(run_dir)
    names = [path.name for _, path in checkpoints]
    with connect() as conn:
        marks = ", ".join("?" for _ in names)
        conn.execute(f"DELETE FROM job_checkpoints WHERE job_id = ? AND checkpoint_id NOT IN ({marks})",
                     [job_id, *names])
    rows = {int(r.get("step") or 0): r for r in read_metrics(run_dir) if r.get("kind") != "eval"}
    for step, path in checkpoints:
        row = rows.get(step, {})
        metrics = {k: row[k] for k in ("loss", "mean_token_accuracy", "tokens_seen") if k in row}
        upsert_checkpoint(job_id, path.name, step=step, metrics=metrics)


def reconcile_jobs() -> list[Job]:
    """Refresh every local job that is not finished (call at app start and on the Monitor page).

    Returns the jobs refreshed, newest first.
    """
    refreshed = []
    for job in list_jobs(path="local"):
        if job.status in _ACTIVE:
            try:
                refreshed.append(refresh_job(job.id))
            except Exception:
                logger.exception("cannot refresh job %s", job.id)
    return refreshed


def wait_for_job(
    job_id: str,
    *,
    poll_seconds: float = 1.0,
    timeout: float | None = None,
    on_update: Callable[[Job], None] | None = None,
) -> Job:
    """Poll until the job ends (or ``timeout`` seconds pass); ``on_update`` sees each refresh."""
    return poll_until(lambda: refresh_job(job_id), lambda job: job.is_terminal, interval=poll_seconds,
                      timeout=timeout, on_update=on_update, what=f"following job {job_id}")


def job_run_dir(job_id: str) -> Path:
    """The run directory of a local job."""
    job = require_job(job_id)
    if not job.run_dir:
        raise JobStateError(f"job {job_id} has no run directory (it is a {job.path} job)")
    return Path(job.run_dir)
