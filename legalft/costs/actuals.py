"""What a job cost, beside what it was estimated to cost, and measurements of past runs.

Managed jobs: the billed trained tokens (the service's ``trained_tokens``) × the price per 1M.
Local jobs: the measured run time × the GPU rate where a GPU was used; a run on this machine's CPU
bills nothing, and says so. Past runs also give measured training throughput, which the Costs page
can use in place of the reference article's training minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from legalft.costs import PriceCatalogue
    from legalft.jobs import Job

CPU_BASIS = "$0: ran on this machine's CPU, no GPU billed"


@dataclass(frozen=True)
class JobCost:
    """A job's estimated and actual cost, and how each was reached."""

    estimate: float | None
    estimate_basis: str
    actual: float | None
    """None until it is known (a managed job not yet billed, a local run still going)."""
    actual_basis: str


def _local_status(job: "Job") -> dict[str, Any]:
    if not job.run_dir or not Path(job.run_dir).is_dir():
        return {}
    from legalft.train.rundir import read_status

    try:
        return read_status(job.run_dir)
    except (OSError, ValueError):
        return {}


def job_cost(job: "Job", prices: "PriceCatalogue | None" = None) -> JobCost:
    """Estimate and actual for a job of either path (the Monitor page shows both)."""
    from legalft import costs
    from legalft.monitor import duration_seconds

    prices = prices or costs.effective_prices()
    estimate_basis = "estimated before launch" if job.estimated_cost is not None else "no estimate was recorded"
    if job.path == "token_factory":
        price = costs.training_price_per_million(job.base_model or "", prices)
        trained = (job.progress or {}).get("trained_tokens")
        if price is None:
            return JobCost(job.estimated_cost, estimate_basis, None,
                           f"no fine-tuning price in the catalogue for {job.base_model}")
        if not trained and job.is_terminal:  # ended before any token was trained: the service bills none
            return JobCost(job.estimated_cost, estimate_basis, 0.0,
                           f"{job.status} before any token was trained: nothing billed (× ${price:g} per 1M trained)")
        if not trained:
            return JobCost(job.estimated_cost, estimate_basis, None,
                           f"billed once the service reports trained tokens (× ${price:g} per 1M)")
        actual = trained * price / costs.TOKENS_PER_MILLION
        return JobCost(job.estimated_cost, estimate_basis, actual,
                       f"{trained:,} billed trained tokens × ${price:g} per 1M")

    estimate = job.estimated_cost
    if estimate is None:  # launched without an estimate (the CLI): the planner's one-time GPU cost
        estimate = costs.one_time_gpu_cost(prices).cost
        estimate_basis = "the planner's one-time GPU cost (none was recorded at launch)"
    job = replace(job, estimated_cost=estimate)
    device = _local_status(job).get("device")
    if device == "cpu":
        return JobCost(job.estimated_cost, estimate_basis, 0.0, CPU_BASIS)
    seconds = duration_seconds(job)
    if not job.is_terminal or seconds is None:
        return JobCost(job.estimated_cost, estimate_basis, None, "known when the run ends (measured minutes × rate)")
    rate = prices.default("gpu_hourly")
    actual = seconds / 3600 * rate.value
    where = f"on {device}" if device else "device not recorded, assumed a GPU"
    return JobCost(job.estimated_cost, estimate_basis, actual,
                   f"{seconds / 60:,.1f} measured minutes {where} × ${rate.value:g}/GPU-hour ({rate.label}); "
                   "setup before the run is not included")


@dataclass(frozen=True)
class MeasuredRun:
    """A finished local run's measured training speed."""

    job_id: str
    base_model: str
    device: str
    minutes: float
    tokens_per_second: float
    """Training tokens a second as the trainer counted them (template + text)."""

    @property
    def label(self) -> str:
        return (f"{self.job_id}: {self.base_model} on {self.device}, {self.tokens_per_second:,.0f} tokens/s, "
                f"{self.minutes:,.1f} min")


def measured_runs(limit: int = 20) -> list[MeasuredRun]:
    """Succeeded local runs with a measured throughput, newest first."""
    from legalft.jobs import list_jobs
    from legalft.monitor import duration_seconds
    from legalft.train.rundir import read_metrics

    runs = []
    for job in list_jobs(path="local"):
        if job.status != "succeeded" or not job.run_dir:
            continue
        try:
            rows = read_metrics(job.run_dir)
        except (OSError, ValueError):
            continue
        speeds = [row["tokens_per_second"] for row in rows if row.get("tokens_per_second")]
        seconds = duration_seconds(job)
        if not speeds or seconds is None:
            continue
        runs.append(MeasuredRun(job_id=job.id, base_model=job.base_model or "?",
                                device=_local_status(job).get("device") or "unknown",
                                minutes=seconds / 60, tokens_per_second=float(speeds[-1])))
        if len(runs) >= limit:
            break
    return runs
