"""Monthly spend limits: one for managed training (Token Factory), one for GPU time (the Cloud path).

Spend comes from the job records: each job created this calendar month (UTC) counts its actual
cost, or its estimate while it has none. A launch whose estimate is over what is left is refused
with ``BudgetExceeded``; an admin may go over inside ``override_budget(reason)``, and that is
recorded in the audit trail (``budget.override``). No budget set means no limit.
"""

from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

from legalft.errors import BudgetExceeded, UsageError

#: Budget kind → the job path whose records it counts.
KINDS = {"managed": "token_factory", "gpu": "local"}
LABELS = {"managed": "managed training (Token Factory)", "gpu": "GPU time (Cloud path)"}

_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("legalft_budget_override", default=None)


@dataclass(frozen=True)
class BudgetStatus:
    """Where one budget stands this month."""

    kind: str
    month: str
    """``YYYY-MM`` (UTC)."""
    limit: float | None
    """USD a month; None: no limit."""
    spent: float
    """Actual cost of this month's jobs, or their estimate while they have none."""
    jobs: int

    @property
    def left(self) -> float | None:
        return None if self.limit is None else round(self.limit - self.spent, 2)

    def allows(self, estimate: float | None) -> bool:
        return self.limit is None or (estimate or 0.0) <= (self.left or 0.0) + 1e-9


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise UsageError(f"unknown budget {kind!r}; use one of {', '.join(KINDS)}")
    return kind


def current_month(now: datetime | None = None) -> str:
    return (now or datetime.now(timezone.utc)).strftime("%Y-%m")


def set_budget(kind: str, monthly_usd: float | None) -> BudgetStatus:
    """Set (or, with None, remove) a monthly budget; admins only, audited."""
    from legalft.audit import guarded_call

    kind = _check_kind(kind)
    if monthly_usd is not None and (not math.isfinite(monthly_usd) or monthly_usd < 0):
        raise UsageError(f"a budget is a finite amount of USD of at least 0, not {monthly_usd}")
    guarded_call("budget.set", lambda: _save(kind, monthly_usd), target=kind, details={"monthly_usd": monthly_usd})
    return budget_status(kind)


def _save(kind: str, monthly_usd: float | None) -> None:
    from legalft.auth import current_user
    from legalft.db import connect
    from legalft.jobs import utc_now

    with connect() as conn:
        if monthly_usd is None:
            conn.execute("DELETE FROM budgets WHERE kind = ?", (kind,))
        else:
            conn.execute("INSERT INTO budgets (kind, monthly_usd, updated_by, updated_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT(kind) DO UPDATE SET monthly_usd = excluded.monthly_usd, "
                         "updated_by = excluded.updated_by, updated_at = excluded.updated_at",
                         (kind, float(monthly_usd), current_user().id, utc_now()))


def budget_status(kind: str, month: str | None = None) -> BudgetStatus:
    """This month's limit and spend for ``kind`` (``managed`` or ``gpu``)."""
    from legalft.db import connect

    kind, month = _check_kind(kind), month or current_month()
    with connect() as conn:
        row = conn.execute("SELECT monthly_usd FROM budgets WHERE kind = ?", (kind,)).fetchone()
        spent = conn.execute(
            "SELECT COUNT(*) AS n, COALESCE(SUM(COALESCE(actual_cost, estimated_cost, 0)), 0) AS total FROM jobs "
            "WHERE path = ? AND substr(created_at, 1, 7) = ?", (KINDS[kind], month)).fetchone()
    return BudgetStatus(kind=kind, month=month, limit=None if row is None else float(row["monthly_usd"]),
                        spent=round(float(spent["total"]), 2), jobs=int(spent["n"]))


def all_budgets() -> list[BudgetStatus]:
    return [budget_status(kind) for kind in KINDS]


@contextmanager
def override_budget(reason: str) -> Iterator[None]:
    """Let launches in this block go over budget (admins only; each use is audited with ``reason``)."""
    if not reason.strip():
        raise UsageError("say why the budget is overridden (it is recorded)")
    token = _override.set(reason.strip())
    try:
        yield
    finally:
        _override.reset(token)


def check_budget(kind: str, estimate: float | None, *, action: str = "", target: str | None = None) -> None:
    """Refuse a launch whose estimate is over what is left this month, unless an admin overrides."""
    status = budget_status(kind)
    if status.allows(estimate):
        return
    reason = _override.get()
    message = (f"the estimate ${estimate or 0:.2f} is over what is left of this month's {LABELS[kind]} budget: "
               f"${max(status.left or 0, 0):.2f} of ${status.limit:.2f} (spent ${status.spent:.2f} on {status.jobs} "
               "jobs); lower the cost (fewer epochs, a smaller model), wait for next month, or ask an admin to "
               "raise the budget or override it")
    if reason is None:
        raise BudgetExceeded(message)
    from legalft.audit import record
    from legalft.auth import require

    admin = require("admin", "budget.override")
    record("budget.override", user=admin, target=target, outcome="override", estimated_cost=estimate,
           details={"for": action, "reason": reason, "budget": kind, "limit": status.limit, "spent": status.spent})


def launch_estimate(*args: Any, **kwargs: Any) -> float | None:
    """The estimate of a managed ``launch_job(dataset, config)`` call: the pre-flight's training cost."""
    from legalft.managed.config import LaunchConfig
    from legalft.managed.preflight import UploadPreflight

    report = args[0] if args else kwargs.get("dataset")
    config = (args[1] if len(args) > 1 else kwargs.get("config")) or LaunchConfig()
    if not isinstance(report, UploadPreflight):
        from legalft.managed.preflight import preflight_dataset

        try:
            report = preflight_dataset(report)
        except Exception:  # noqa: BLE001 - launch_job reports an unreadable file itself
            return None
    try:
        return report.estimated_cost(config.model, config.n_epochs)
    except Exception:  # noqa: BLE001 - no price known: no estimate, the launch is not blocked by it
        return None


def train_estimate(*args: Any, **kwargs: Any) -> float:
    """The estimate of a ``start_training(config, ..., target=...)`` call: the ``estimated_cost`` it is
    given, else the one-time GPU cost on its target (:func:`legalft.costs.launch_gpu_cost`), so a
    launch from the CLI or a script counts against the GPU budget like one from the Train page."""
    given = kwargs.get("estimated_cost")
    if given is not None:
        return float(given)
    from legalft.costs import launch_gpu_cost

    return round(launch_gpu_cost(kwargs.get("target")).cost, 2)


def headroom_text(kind: str, estimate: float | None) -> str:
    """One line for a launch button: the estimate against what is left of this month's budget."""
    status = budget_status(kind)
    shown = "no estimate" if estimate is None else f"estimate ${estimate:,.2f}"
    if status.limit is None:
        return f"Budget: no monthly {LABELS[kind]} budget is set ({shown}; spent ${status.spent:,.2f} this month)."
    verdict = "fits" if status.allows(estimate) else "is OVER what is left: the launch will be refused"
    return (f"Budget: {shown} against ${max(status.left or 0, 0):,.2f} left of ${status.limit:,.2f} this month "
            f"for {LABELS[kind]}; it {verdict}.")


def over_budget(kind: str, estimate: float | None) -> bool:
    return not budget_status(kind).allows(estimate)


def maybe_override(reason: str | None):
    """``override_budget(reason)`` when a reason is given, else a block that changes nothing (for pages)."""
    from contextlib import nullcontext

    return override_budget(reason) if reason and reason.strip() else nullcontext()
