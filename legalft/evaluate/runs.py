"""Evaluation runs: a set of questions asked of one or more endpoints, stored per run, target and question.

A target is an endpoint, grounded or not. Answers are asked with bounded concurrency through the one
chat client (whose SDK retries transient errors of the managed service), checked for citations,
scored, optionally judged, and written to SQLite one by one. Running a run again continues it: only
questions without a ``done`` answer are asked, so a run interrupted half way (stopped, killed, or
with an endpoint that failed) picks up where it was. Failed questions keep their reason.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from legalft.db import connect
from legalft.evaluate.metrics import aggregate, answer_metrics
from legalft.evaluate.sets import EvalSet, save_rejects
from legalft.jobs import utc_now

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32


@dataclass
class EvalTarget:
    """One endpoint to ask, grounded or not; ``role`` marks the base model in a comparison."""

    endpoint_id: int
    grounded: bool = False
    role: str | None = None
    """"base" or "fine-tuned" (None: neither); the Monitor page compares the two."""
    label: str | None = None
    """Column name in the table (default: the endpoint's name, "+ grounded" when grounded)."""


@dataclass
class EvalConfig:
    """How the questions are asked."""

    max_tokens: int = 512
    """Most tokens per answer."""
    temperature: float = 0.0
    """0 keeps a run reproducible where the server allows it."""
    system_prompt: str | None = None
    """None: the chat client's default legal system prompt."""
    k: int = 4
    """Provisions retrieved for a grounded target."""
    provision_chars: int = 1800
    """Characters of each retrieved provision given to the model (small models have short contexts)."""
    concurrency: int = DEFAULT_CONCURRENCY
    """Questions in flight at once, per run."""
    timeout: float = 120.0
    """Seconds before one request is given up (then marked failed, to continue later)."""
    judge_endpoint_id: int | None = None
    """An OpenAI-compatible endpoint that grades each answer (None: no judge)."""

    def __post_init__(self) -> None:
        if not 1 <= int(self.concurrency) <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be between 1 and {MAX_CONCURRENCY}, not {self.concurrency}")
        if not 1 <= int(self.k) <= 20:
            raise ValueError(f"k (provisions retrieved) must be between 1 and 20, not {self.k}")


@dataclass
class EvalRun:
    """A run as stored: its set, targets, questions and answers."""

    id: str
    name: str | None
    status: str
    set: dict[str, Any]
    config: dict[str, Any]
    summary: dict[str, Any]
    created_at: str
    updated_at: str
    finished_at: str | None
    targets: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.items) * len(self.targets)

    @property
    def done(self) -> int:
        return sum(1 for a in self.answers if a["status"] == "done")

    @property
    def failed(self) -> int:
        return sum(1 for a in self.answers if a["status"] == "failed")


def _label(endpoint, target: EvalTarget) -> str:
    return target.label or f"{endpoint.name}{' + grounded' if target.grounded else ''}"


def create_run(evalset: EvalSet, targets: list[EvalTarget], config: EvalConfig | None = None,
               name: str | None = None) -> str:
    """Record a run (its questions, targets and settings) and return its id; nothing is asked yet.

    An audited action (``evaluate.run``, viewers and up): who evaluated which endpoints on which set."""
    from legalft.audit import guarded_call

    details = {"set": evalset.name, "questions": len(evalset.items),
               "endpoints": [t.label or str(t.endpoint_id) for t in targets]}
    return guarded_call("evaluate.run", lambda: _create_run(evalset, targets, config, name), target=evalset.name,
                        details=details)


def _create_run(evalset: EvalSet, targets: list[EvalTarget], config: EvalConfig | None,
                name: str | None) -> str:
    from legalft.chat import resolve_endpoint
    from legalft.home import subdir

    config = config or EvalConfig()
    if not evalset.items:
        raise ValueError("the evaluation set has no questions")
    if not targets:
        raise ValueError("choose at least one endpoint to evaluate")
    run_id = f"eval-{secrets.token_hex(4)}"
    rows, labels = [], set()
    for target in targets:
        endpoint = resolve_endpoint(target.endpoint_id)
        label = _label(endpoint, target)
        if label in labels:
            raise ValueError(f"two targets are both called {label!r}; give one a label")
        labels.add(label)
        rows.append((run_id, label, endpoint.id, json.dumps({
            "id": endpoint.id, "kind": endpoint.kind, "name": endpoint.name, "model": endpoint.model,
            "base_url": endpoint.base_url, "job_id": endpoint.job_id}), int(target.grounded), target.role))
    settings = asdict(config)
    if config.judge_endpoint_id is not None:
        from legalft.evaluate.judge import Judge

        settings["judge"] = Judge(resolve_endpoint(config.judge_endpoint_id)).describe()
    rejects = save_rejects(evalset, subdir("evaluations") / run_id)
    description = {**evalset.to_dict(), "rejects_file": str(rejects) if rejects else None}
    now = utc_now()
    with connect() as conn:
        conn.execute("INSERT INTO eval_runs (id, name, status, set_json, config_json, created_at, updated_at)"
                     " VALUES (?, ?, 'running', ?, ?, ?, ?)",
                     (run_id, name or evalset.name, json.dumps(description), json.dumps(settings), now, now))
        conn.executemany("INSERT INTO eval_targets (run_id, label, endpoint_id, endpoint_json, grounded, role)"
                         " VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO eval_items (run_id, idx, line, question, reference, meta_json)"
                         " VALUES (?, ?, ?, ?, ?, ?)",
                         [(run_id, i, item.line, item.question, item.reference, json.dumps(item.meta))
                          for i, item in enumerate(evalset.items)])
    return run_id


def load_run(run_id: str) -> EvalRun:
    with connect() as conn:
        row = conn.execute("SELECT * FROM eval_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no evaluation run {run_id!r} (legalft eval list shows them)")
        targets = [dict(r) for r in conn.execute("SELECT * FROM eval_targets WHERE run_id = ? ORDER BY rowid",
                                                 (run_id,))]
        items = [dict(r) for r in conn.execute("SELECT * FROM eval_items WHERE run_id = ? ORDER BY idx", (run_id,))]
        answers = [dict(r) for r in conn.execute("SELECT * FROM eval_answers WHERE run_id = ? ORDER BY label, idx",
                                                 (run_id,))]
    for target in targets:
        target["endpoint"] = json.loads(target.pop("endpoint_json"))
        target["grounded"] = bool(target["grounded"])
    for item in items:
        item["meta"] = json.loads(item.pop("meta_json"))
    for answer in answers:
        for name in ("usage", "citations", "retrieved", "metrics"):
            answer[name] = json.loads(answer.pop(f"{name}_json"))
        answer["judge"] = json.loads(answer.pop("judge_json")) if answer.get("judge_json") else None
        answer.pop("judge_json", None)
    return EvalRun(id=row["id"], name=row["name"], status=row["status"], set=json.loads(row["set_json"]),
                   config=json.loads(row["config_json"]), summary=json.loads(row["summary_json"]),
                   created_at=row["created_at"], updated_at=row["updated_at"], finished_at=row["finished_at"],
                   targets=targets, items=items, answers=answers)


def list_runs(limit: int = 50) -> list[dict[str, Any]]:
    """Runs, newest first: id, name, status, questions, targets, created."""
    with connect() as conn:
        rows = conn.execute(
            "SELECT r.id, r.name, r.status, r.created_at, r.finished_at, r.summary_json,"
            " (SELECT COUNT(*) FROM eval_items i WHERE i.run_id = r.id) AS questions,"
            " (SELECT group_concat(label, ' | ') FROM eval_targets t WHERE t.run_id = r.id) AS targets"
            " FROM eval_runs r ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?", (limit,)).fetchall()
    out = []
    for row in rows:
        data = dict(row)
        data["summary"] = json.loads(data.pop("summary_json"))
        out.append(data)
    return out


def _set_status(run_id: str, status: str, summary: dict[str, Any] | None = None) -> None:
    now = utc_now()
    with connect() as conn:
        conn.execute("UPDATE eval_runs SET status = ?, updated_at = ?, finished_at = ?,"
                     " summary_json = COALESCE(?, summary_json) WHERE id = ?",
                     (status, now, now if status != "running" else None,
                      json.dumps(summary) if summary is not None else None, run_id))


def summarise_run(run: EvalRun) -> dict[str, Any]:
    """Per target: the aggregate figures of its answers."""
    by_label: dict[str, list[dict[str, Any]]] = {t["label"]: [] for t in run.targets}
    for answer in run.answers:
        by_label.setdefault(answer["label"], []).append(answer)
    return {label: {**aggregate(rows), "questions": len(run.items)} for label, rows in by_label.items()}


class _Asker:
    """Asks one question of one target and stores the answer (thread-safe: short DB connections)."""

    def __init__(self, run: EvalRun, index) -> None:
        from legalft.chat import ChatSettings, resolve_endpoint
        from legalft.legal.citations import parse_citations

        self.run, self.index = run, index
        config = run.config
        self.settings = ChatSettings(max_tokens=int(config["max_tokens"]), temperature=float(config["temperature"]))
        self.endpoints = {t["label"]: resolve_endpoint(t["endpoint_id"]) for t in run.targets}
        self.grounded = {t["label"]: t["grounded"] for t in run.targets}
        self.reference_citations = {i["idx"]: parse_citations(i["reference"], index) for i in run.items}
        self.judge = None
        if config.get("judge_endpoint_id") is not None:
            from legalft.evaluate.judge import JUDGE_PROMPT, Judge

            recorded = config.get("judge") or {}
            self.judge = Judge(resolve_endpoint(config["judge_endpoint_id"]), prompt=recorded.get("prompt") or JUDGE_PROMPT)

    def ask(self, label: str, item: dict[str, Any], attempts: int) -> str:
        from legalft.chat import DEFAULT_SYSTEM_PROMPT, build_messages, chat
        from legalft.errors import ServiceError
        from legalft.legal.citations import check_citations
        from legalft.legal.grounding import grounded_question, retrieve

        question, retrieved = item["question"], None
        if self.grounded[label]:
            grounding = retrieve(question, self.index, int(self.run.config["k"]),
                                 int(self.run.config.get("provision_chars") or 1800))
            retrieved = grounding.provisions
            question = grounded_question(question, grounding)
        messages = build_messages(question, self.run.config.get("system_prompt") or DEFAULT_SYSTEM_PROMPT)
        row: dict[str, Any] = {"retrieved": [{"id": p.id, "label": p.label, "url": p.url} for p in retrieved or []]}
        try:
            reply = chat(self.endpoints[label], messages, settings=self.settings,
                         timeout=float(self.run.config["timeout"]))
        except ServiceError as exc:
            self._store(label, item["idx"], {**row, "status": "failed", "error": f"{exc.kind}: {exc}"}, attempts)
            return "failed"
        checked = check_citations(reply.text, self.index, retrieved=retrieved)
        metrics = answer_metrics(reply.text, item["reference"], checked, self.reference_citations[item["idx"]])
        judge = self.judge.grade(item["question"], item["reference"], reply.text) if self.judge else None
        self._store(label, item["idx"], {
            **row, "status": "done", "answer": reply.text, "seconds": reply.seconds, "usage": reply.usage,
            "citations": [{**c.to_dict(), "label": c.citation.label, "reason": c.reason, "retrieved": c.retrieved,
                           "provision_id": c.provision.id if c.provision else None,
                           "url": c.provision.url if c.provision else None} for c in checked],
            "metrics": metrics, "judge": judge}, attempts)
        return "done"

    def _store(self, label: str, idx: int, row: dict[str, Any], attempts: int) -> None:
        with connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO eval_answers (run_id, label, idx, status, answer, error, seconds, attempts,"
                " usage_json, citations_json, retrieved_json, metrics_json, judge_json, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.run.id, label, idx, row["status"], row.get("answer"), row.get("error"), row.get("seconds"),
                 attempts, json.dumps(row.get("usage") or {}), json.dumps(row.get("citations") or []),
                 json.dumps(row.get("retrieved") or []), json.dumps(row.get("metrics") or {}),
                 json.dumps(row["judge"]) if row.get("judge") is not None else None, utc_now()))


def run_evaluation(run_id: str, *, progress: Callable[[int, int], None] | None = None,
                   stop: threading.Event | None = None, index=None) -> EvalRun:
    """Ask every question not yet answered (a first run, or the continuation of one); returns the run.

    ``progress(done, total)`` is called after each answer. Setting ``stop`` ends the run after the
    answers in flight (status ``cancelled``; run it again to continue). The status is ``succeeded``
    when every question has an answer, else ``failed`` (failed questions keep their reason).
    """
    from legalft.legal.index import default_index

    index = index or default_index()
    run = load_run(run_id)
    _set_status(run_id, "running")
    done = {(a["label"], a["idx"]) for a in run.answers if a["status"] == "done"}
    attempts = {(a["label"], a["idx"]): a["attempts"] for a in run.answers}
    todo = [(t["label"], item) for item in run.items for t in run.targets if (t["label"], item["idx"]) not in done]
    asker = _Asker(run, index)
    finished = len(done)
    total = run.total
    if progress:
        progress(finished, total)
    # Also set when the caller is interrupted (a Streamlit rerun, Ctrl-C): questions not started stay unasked.
    halt = threading.Event()
    with ThreadPoolExecutor(max_workers=int(run.config["concurrency"]), thread_name_prefix="eval") as pool:
        futures = [pool.submit(_guarded, asker, label, item, attempts.get((label, item["idx"]), 0) + 1, stop, halt)
                   for label, item in todo]
        try:
            for future in as_completed(futures):
                outcome = future.result()
                if outcome == "done":
                    finished += 1
                if progress and outcome != "skipped":
                    progress(finished, total)
        except BaseException:
            halt.set()
            for future in futures:
                future.cancel()
            raise
    run = load_run(run_id)
    summary = summarise_run(run)
    if stop is not None and stop.is_set() and run.done < run.total:
        status = "cancelled"
    else:
        status = "succeeded" if run.done == run.total else "failed"
    _set_status(run_id, status, summary)
    return load_run(run_id)


def _guarded(asker: _Asker, label: str, item: dict[str, Any], attempts: int, stop: threading.Event | None,
             halt: threading.Event) -> str:
    if halt.is_set() or (stop is not None and stop.is_set()):
        return "skipped"
    try:
        return asker.ask(label, item, attempts)
    except Exception as exc:
        log.exception("evaluation %s: question %s for %s failed", asker.run.id, item["idx"], label)
        asker._store(label, item["idx"], {"status": "failed", "error": f"{exc.__class__.__name__}: {exc}"}, attempts)
        return "failed"


def delete_run(run_id: str) -> None:
    with connect() as conn:
        conn.execute("DELETE FROM eval_runs WHERE id = ?", (run_id,))
