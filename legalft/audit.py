"""The audit trail: who did what, when, at what estimated cost; append-only (SQLite triggers
refuse UPDATE and DELETE on ``audit_log``).

Entry points of actions that change state or cost money carry ``@action("train.start")``: one line
that checks the role (``legalft.auth.require``), the month's budget for launches
(``legalft.budget``), runs the call, and records ``ok`` or ``failed``; a refusal is recorded as
``denied`` (role) or ``refused`` (budget). Calls made inside an action (a resume that starts a
process, a launch that uploads) are not recorded twice.
"""

from __future__ import annotations

import contextvars
import csv
import functools
import io
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from legalft.auth import ACTIONS, User, current_user, require
from legalft.errors import BudgetExceeded, render_error

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("legalft_inside_action", default=False)

EXPORT_COLUMNS = ("id", "at", "user_id", "role", "source", "action", "target", "outcome", "estimated_cost",
                  "details")


@dataclass
class AuditEntry:
    id: int
    at: str
    user_id: str
    role: str | None
    source: str
    action: str
    target: str | None
    outcome: str
    estimated_cost: float | None
    details: dict[str, Any] = field(default_factory=dict)


def record(action: str, *, user: User | None = None, target: str | None = None, outcome: str = "ok",
           estimated_cost: float | None = None, details: dict[str, Any] | None = None) -> int:
    """Append one row; returns its id."""
    from legalft.db import connect
    from legalft.jobs import utc_now

    user = user or current_user()
    with connect() as conn:
        cursor = conn.execute(
            "INSERT INTO audit_log (at, user_id, role, source, action, target, outcome, estimated_cost, details_json) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (utc_now(), user.id, user.role, user.source, action, target, outcome, estimated_cost,
             json.dumps(details or {}, default=str)))
        return int(cursor.lastrowid)


def describe(value: Any) -> str | None:
    """A short name for a call's target or result: a job's id, an endpoint's name, a dataset's name;
    None for anything else."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (str, int)):
        return str(value)
    if getattr(value, "path", None) in ("local", "token_factory") and getattr(value, "id", None):
        return str(value.id)  # a Job
    name, kind = getattr(value, "name", None), getattr(value, "kind", None)
    if isinstance(name, str) and isinstance(kind, str):
        return f"{name} ({kind})"  # an Endpoint
    if isinstance(name, str) and getattr(value, "id", None) is not None:
        return f"{name} (#{value.id})"  # a registered dataset
    return None


def guarded_call(name: str, fn: Callable[[], Any], *, target: str | None = None,
                 estimated_cost: float | None = None, budget: str | None = None,
                 details: dict[str, Any] | None = None) -> Any:
    """Check the role (and budget), run ``fn``, record the outcome; the body of ``@action``."""
    if _inside.get():
        return fn()
    user = require(ACTIONS[name], name, target)
    if budget:
        from legalft.budget import check_budget

        try:
            check_budget(budget, estimated_cost, action=name, target=target)
        except BudgetExceeded:
            record(name, user=user, target=target, outcome="refused", estimated_cost=estimated_cost,
                   details={**(details or {}), "budget": budget})
            raise
    token = _inside.set(True)
    try:
        result = fn()
    except Exception as exc:
        record(name, user=user, target=target, outcome="failed", estimated_cost=estimated_cost,
               details={**(details or {}), "error": render_error(exc)[:300]})
        raise
    finally:
        _inside.reset(token)
    record(name, user=user, target=describe(result) or target, outcome="ok",
           estimated_cost=estimated_cost, details=details)
    return result


def action(name: str, *, cost: Callable[..., float | None] | None = None,
           budget: str | None = None) -> Callable[[F], F]:
    """Decorate an action's entry point: role check, budget check, audit row. ``cost(*args, **kwargs)``
    gives the estimate (default: the ``estimated_cost`` argument)."""
    if name not in ACTIONS:
        raise ValueError(f"unknown action {name!r}; add it to legalft.auth.ACTIONS")

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _inside.get():
                return fn(*args, **kwargs)
            estimate = cost(*args, **kwargs) if cost else kwargs.get("estimated_cost")
            target = describe(args[0]) if args else None
            return guarded_call(name, lambda: fn(*args, **kwargs), target=target, estimated_cost=estimate,
                                budget=budget)

        return wrapper  # type: ignore[return-value]

    return decorate


# --- reading ---------------------------------------------------------------------------------------


def list_audit(*, user_id: str | None = None, action_prefix: str | None = None, outcome: str | None = None,
               since: str | None = None, until: str | None = None, limit: int = 1000) -> list[AuditEntry]:
    """Newest first, filtered by user, action (prefix: ``train`` matches ``train.start``), outcome and
    time (ISO strings, ``since`` inclusive, ``until`` exclusive)."""
    from legalft.db import connect

    where, params = [], []
    for clause, value in (("user_id = ?", user_id), ("outcome = ?", outcome), ("at >= ?", since), ("at < ?", until)):
        if value:
            where.append(clause)
            params.append(value)
    if action_prefix:
        where.append("(action = ? OR action LIKE ?)")
        params += [action_prefix, f"{action_prefix}.%"]
    sql = "SELECT * FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
    with connect() as conn:
        rows = conn.execute(sql, (*params, limit)).fetchall()
    return [AuditEntry(id=r["id"], at=r["at"], user_id=r["user_id"], role=r["role"], source=r["source"],
                       action=r["action"], target=r["target"], outcome=r["outcome"],
                       estimated_cost=r["estimated_cost"], details=json.loads(r["details_json"] or "{}"))
            for r in rows]


def audit_csv(entries: list[AuditEntry]) -> str:
    """The entries as CSV (what the Activity page's download holds)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    for e in entries:
        writer.writerow([e.id, e.at, e.user_id, e.role or "", e.source, e.action, e.target or "", e.outcome,
                         "" if e.estimated_cost is None else f"{e.estimated_cost:.2f}",
                         json.dumps(e.details, sort_keys=True)])
    return out.getvalue()


def activity_summary(entries: list[AuditEntry]) -> dict[str, Any]:
    """Counts for the Activity page: rows, distinct users, refusals, estimated cost of what ran."""
    return {
        "rows": len(entries),
        "users": len({e.user_id for e in entries}),
        "refused": sum(e.outcome in ("denied", "refused") for e in entries),
        "estimated_cost": round(sum(e.estimated_cost or 0.0 for e in entries if e.outcome in ("ok", "override")), 2),
    }


def audit_choices() -> tuple[list[str], list[str]]:
    """(users, action groups) present in the trail, for the Activity page's filters."""
    from legalft.db import connect

    with connect() as conn:
        users = [r[0] for r in conn.execute("SELECT DISTINCT user_id FROM audit_log ORDER BY user_id")]
        actions = [r[0] for r in conn.execute("SELECT DISTINCT action FROM audit_log ORDER BY action")]
    groups = sorted({a.split(".", 1)[0] for a in actions})
    return users, sorted(set(groups) | set(actions))


def audit_rows(entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """The entries as table rows (the Activity page's table)."""
    return [{"when": e.at, "user": e.user_id, "role": e.role or "", "via": e.source, "action": e.action,
             "target": e.target or "", "outcome": e.outcome, "estimated cost (USD)": e.estimated_cost,
             "details": ", ".join(f"{k}: {v}" for k, v in sorted(e.details.items()))} for e in entries]
