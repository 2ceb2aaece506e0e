"""One view of a fine-tuning job for the Monitor page, whichever path it took.

Local runs are read from their run directory; Token Factory jobs are synced from the API when it
answers and otherwise shown from what the database recorded, so history survives being offline.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from legalft.errors import ServiceError
from legalft.jobs import Job, list_checkpoints, list_events, require_job

log = logging.getLogger(__name__)

PATH_LABELS = {"local": "Cloud (own GPU)", "token_factory": "Token Factory"}
STATUS_LABELS = {"validating_files": "Validating", "queued": "Queued", "running": "Running",
                 "succeeded": "Succeeded", "failed": "Failed", "cancelled": "Cancelled"}


def path_label(path: str) -> str:
    """The one name of a job's path on every page (``local`` -> ``Cloud (own GPU)``)."""
    return PATH_LABELS.get(path, path.replace("_", " ").capitalize())


def dataset_label(job: Job) -> str:
    """The dataset a job trained on, by the name it was registered under (else its file name)."""
    if job.dataset_id is not None:
        from legalft.data.registry import get_dataset

        try:
            dataset = get_dataset(job.dataset_id)
        except Exception:  # noqa: BLE001 - a deleted dataset row still leaves the file name to show
            dataset = None
        if dataset is not None:
            return f"{dataset.name} (#{dataset.id})"
    return (job.dataset_path or "").rsplit("/", 1)[-1] or "—"


def status_label(status: str) -> str:
    """A short word for the job vocabulary's status (``validating_files`` -> ``Validating``)."""
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def cost_label(job: Job) -> tuple[str, str | None]:
    """(the cost to show, a note): the actual cost once known, else the estimate marked as one."""
    if job.actual_cost is not None:
        note = f"estimated ${job.estimated_cost:,.2f}" if job.estimated_cost is not None else None
        return f"${job.actual_cost:,.2f}", note
    if job.estimated_cost is not None:
        return f"${job.estimated_cost:,.2f}", "estimate"
    return "—", None


def event_line(event: dict[str, Any]) -> str:
    """``22:51:07 warn  message``: the time of day only, so the message (and its losses) stays readable."""
    stamp = _parse_time(event.get("created_at"))
    return f"{stamp.strftime('%H:%M:%S') if stamp else '--:--:--'} {event.get('level') or 'info':<5} {event['message']}"


@dataclass
class JobView:
    """Everything the Monitor page shows for one job."""

    job: Job
    step: int | None = None
    total_steps: int | None = None
    seconds_left: float | None = None
    """From the step rate measured in this attempt; None until two steps have been timed."""
    restarted_from: int | None = None
    """After a resume: the checkpoint step this attempt started again from."""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    """Rows with ``step`` and any of loss, eval_loss, learning_rate, tokens_per_second, epoch."""
    activity: list[str] = field(default_factory=list)
    """The log tail (local) or the events (managed), oldest first."""
    sync_warning: str | None = None
    """Why the view may be stale (the service did not answer)."""

    @property
    def fraction(self) -> float | None:
        if self.job.status == "succeeded":
            return 1.0
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def duration_seconds(job: Job, now: datetime | None = None) -> float | None:
    """Seconds from start to finish (or to now while it runs), without the time it sat cancelled or
    failed before a resume (``progress["paused_seconds"]``)."""
    start = _parse_time(job.started_at) or (_parse_time(job.created_at) if job.status == "running" else None)
    if start is None:
        return None
    end = _parse_time(job.finished_at) or (now or datetime.now(timezone.utc))
    paused = float(job.progress.get("paused_seconds") or 0.0)
    return max(0.0, (end - start).total_seconds() - paused)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def refresh(job_id: str) -> tuple[Job, str | None]:
    """The job brought up to date from its run directory or the API; a warning when that failed."""
    job = require_job(job_id)
    if job.path == "local":
        from legalft.train import refresh_job

        job = refresh_job(job_id)
        return job, remote_warning(job)
    if job.is_terminal and job.progress.get("synced_at") and job.finished_at:
        return job, None  # nothing changes after the end; no need to call the service
    from legalft import managed as tf

    try:
        # Every open tab refreshes every 2 s; the service is asked once per job per interval.
        return tf.sync_job(job_id, max_age=tf.MANAGED_POLL_SECONDS), None
    except (ServiceError, ValueError) as exc:
        return require_job(job_id), f"Showing the last recorded state: {exc}"


def remote_warning(job: Job) -> str | None:
    """For a run on a remote GPU whose host does not answer: the last copy is shown, and why."""
    if not job.remote.get("target") or not job.run_dir:
        return None
    from legalft.targets.follow import read_sync

    sync = read_sync(job.run_dir)
    if sync.get("reachable", True) or job.is_terminal:
        return None
    return (f"Cannot reach the GPU host since {sync.get('unreachable_since') or 'a moment ago'} "
            f"({sync.get('error') or 'no answer'}). Showing the last copy: the run goes on there, and this page "
            "catches up as soon as the host answers.")


def view(job_id: str, log_lines: int = 40) -> JobView:
    """Refresh the job and gather its progress, metrics and activity."""
    job, warning = refresh(job_id)
    result = JobView(job=job, sync_warning=warning)
    if job.path == "local":
        from legalft.train import read_log_tail, read_metrics

        progress = job.progress
        result.step, result.total_steps = progress.get("step"), progress.get("total_steps")
        if job.run_dir:
            result.metrics = [
                {k: row.get(k) for k in ("step", "time", "epoch", "loss", "eval_loss", "learning_rate",
                                          "tokens_per_second", "grad_norm", "mean_token_accuracy") if k in row}
                for row in read_metrics(job.run_dir)
            ]
            # Read well past the lines shown: most of a raw tail can be library noise.
            result.activity = readable_log(read_log_tail(job.run_dir, log_lines * 10).splitlines())[-log_lines:]
        if (progress.get("attempt") or 1) > 1 and progress.get("resumed_from_step") is not None:
            result.restarted_from = int(progress["resumed_from_step"])
        if job.status == "running" and result.step is not None and result.total_steps:
            result.seconds_left = seconds_left(result.metrics, result.step, result.total_steps)
    else:
        progress = job.progress
        result.step, result.total_steps = progress.get("trained_steps"), progress.get("total_steps")
        finish = _parse_time(progress.get("estimated_finish"))
        if finish and job.status == "running":
            result.seconds_left = max(0.0, (finish - datetime.now(timezone.utc)).total_seconds())
        for checkpoint in list_checkpoints(job.id):
            metrics = checkpoint["metrics"]
            result.metrics.append({
                "step": checkpoint["step"], "checkpoint": checkpoint["checkpoint_id"],
                "loss": metrics.get("train_loss"), "eval_loss": metrics.get("valid_loss"),
                "mean_token_accuracy": metrics.get("train_mean_token_accuracy"),
            })
        result.activity = [event_line(e) for e in list_events(job.id)]
    return result


def seconds_left(rows: list[dict[str, Any]], step: int, total_steps: int, now: float | None = None) -> float | None:
    """Time left from the step rate measured in the current attempt's rows (``step`` and ``time``).

    The first timed step of an attempt comes after loading the model, so the rate is measured
    between timed steps, never from the start; with fewer than two it is unknown (None). Time since
    the last row counts down from the estimate, so a run that stops moving never shows more time left.
    """
    timed = [(int(r["step"]), float(r["time"])) for r in rows if r.get("time") is not None and r.get("step") is not None]
    attempt: list[tuple[int, float]] = []
    for point in timed:
        if attempt and point[0] < attempt[-1][0]:
            attempt = []  # the step went back: a resume from a checkpoint starts a new attempt
        attempt.append(point)
    if len(attempt) < 2 or attempt[-1][0] <= attempt[0][0]:
        return None
    (first_step, first_time), (last_step, last_time) = attempt[0], attempt[-1]
    rate = (last_time - first_time) / (last_step - first_step)
    since = max(0.0, (now if now is not None else datetime.now(timezone.utc).timestamp()) - last_time)
    return max(0.0, rate * max(total_steps - max(step, last_step), 0) - since)


# Lines of library noise in a training log that a reader takes for errors, and plain words for some.
_NOISE = (
    re.compile(r"gemm_4bit|pip install kernels|bitsandbytes.*(warn|cpu)", re.IGNORECASE),
    re.compile(r"\b(FutureWarning|DeprecationWarning|UserWarning|RuntimeWarning)\b"),
    re.compile(r"^\s*warnings\.warn\(|^\s*warn\(|^\s*return fn\(|^\s*super\(\)\.__init__\("),
    re.compile(r"^\s*\d{1,3}%\|"),  # tqdm bars: " 45%|####      | 9/20 [00:03<00:04, 2.6it/s]"
    re.compile(r"\|\s*\d+/\d+\s*\[[\d:<?, .]*(it/s|s/it)?"),
    re.compile(r"mtime may not be reliable"),
    re.compile(r"^(Generating|Map|Filter|Tokenizing|Packing|Applying chat template|Adding EOS|Truncating)\b.*\d+/\d+"),
)
_PLAIN = (
    (re.compile(r"received SIGTERM: cancelling", re.IGNORECASE), "Stopping: the run was cancelled."),
    (re.compile(r"^=+ (\S+) attempt (\d+): .*$"), None),
)


_TRAINER_DICT = re.compile(r"^\{'(loss|eval_loss|train_runtime)': .*\}$")


def _number_text(value: Any) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


def _trainer_line(line: str) -> str:
    """The Trainer's printed dicts in words: ``epoch 0.15 · loss 7.05``."""
    import ast

    try:
        values = ast.literal_eval(line)
    except (ValueError, SyntaxError):
        return line
    epoch = f"epoch {_number_text(values['epoch'])} · " if "epoch" in values else ""
    if "train_runtime" in values:
        return (f"training done in {_number_text(values['train_runtime'])} s"
                + (f" · average loss {_number_text(values['train_loss'])}" if "train_loss" in values else ""))
    if "eval_loss" in values:
        return f"{epoch}validation loss {_number_text(values['eval_loss'])}"
    return f"{epoch}loss {_number_text(values['loss'])}" + (
        f" · learning rate {_number_text(values['learning_rate'])}" if "learning_rate" in values else "")


def readable_log(lines: list[str]) -> list[str]:
    """The log as a reader needs it: library warnings, deprecation notices and progress bars left
    out, the trainer's dicts and a few lines put in plain words. The raw log stays in the run folder
    (and downloadable)."""
    out: list[str] = []
    for line in lines:
        if any(pattern.search(line) for pattern in _NOISE):
            continue
        if _TRAINER_DICT.match(line.strip()):
            out.append(_trainer_line(line.strip()))
            continue
        for pattern, plain in _PLAIN:
            match = pattern.search(line)
            if match:
                if plain is None:  # the launch banner: when an attempt started, not its command line
                    number = int(match.group(2))
                    line = (f"{match.group(1)[:19].replace('T', ' ')} "
                            + ("started" if number == 1 else f"attempt {number}: resumed"))
                else:
                    line = line[:match.start()] + plain if match.start() else plain
                break
        out.append(line)
    return out


def cancel(job_id: str) -> Job:
    job = require_job(job_id)
    if job.path == "local":
        from legalft.train import cancel_job

        return cancel_job(job_id)
    from legalft import managed as tf

    return tf.cancel_job(job_id)


def can_resume(job: Job) -> bool:
    """A local run that stopped early can continue from its last checkpoint."""
    if job.path != "local" or job.status not in ("cancelled", "failed") or not job.run_dir:
        return False
    from legalft.train import find_checkpoints

    return bool(find_checkpoints(job.run_dir))
