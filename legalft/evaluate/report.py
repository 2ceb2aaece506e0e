"""What an evaluation says: the comparison table, per-question rows, CSV, a run card, a pre-deploy verdict.

Figures are computed here and named, so the Evaluate page, the Monitor page and the CLI show the
same numbers.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from legalft.evaluate.runs import EvalRun, list_runs, load_run

#: (key in the summary, column name, higher is better)
COLUMNS: list[tuple[str, str, bool]] = [
    ("token_f1", "token F1", True),
    ("rouge_l", "ROUGE-L", True),
    ("citation_precision", "citation precision", True),
    ("citation_recall", "citation recall", True),
    ("invented_rate", "invented citations", False),
    ("unverifiable_share", "unverifiable citations", False),
    ("correct_refusals", "correct refusals", True),
    ("judge_score", "judge score", True),
]


def _value(figure: Any) -> float | None:
    return figure.get("value") if isinstance(figure, dict) else figure


def _fmt(figure: Any, percent: bool = False, digits: int = 3) -> str:
    if not isinstance(figure, dict) or figure.get("value") is None:
        return "–"
    scale = 100 if percent else 1
    value = f"{figure['value'] * scale:.1f}%" if percent else f"{figure['value']:.{digits}f}"
    if figure.get("low") is not None and figure.get("n", 0) > 1:
        low, high = figure["low"] * scale, figure["high"] * scale
        value += f" [{low:.1f}–{high:.1f}]" if percent or digits < 2 else f" [{low:.2f}–{high:.2f}]"
    return value


def comparison_rows(run: EvalRun) -> list[dict[str, Any]]:
    """One row per target: the headline figures with their 95% intervals, formatted."""
    summary = run.summary or {}
    rows = []
    for target in run.targets:
        figures = summary.get(target["label"], {})
        row = {"target": target["label"], "model": target["endpoint"].get("model"),
               "grounded": target["grounded"], "role": target.get("role") or "",
               "answered": f"{figures.get('answered', 0)}/{len(run.items)}", "failed": figures.get("failed", 0)}
        for key, name, _ in COLUMNS:
            row[name] = _fmt(figures.get(key), percent=key in ("invented_rate", "unverifiable_share",
                                                                "correct_refusals"))
        row["words"] = _fmt(figures.get("words"), digits=1)
        row["latency p50 (s)"] = f"{figures['latency_p50']:.2f}" if figures.get("latency_p50") is not None else "–"
        row["latency p95 (s)"] = f"{figures['latency_p95']:.2f}" if figures.get("latency_p95") is not None else "–"
        rows.append(row)
    return rows


def chart_rows(run: EvalRun) -> list[dict[str, Any]]:
    """Long-form (target, metric, value, low, high) for charts."""
    out = []
    for label, figures in (run.summary or {}).items():
        for key, name, _ in COLUMNS:
            figure = figures.get(key)
            if isinstance(figure, dict) and figure.get("value") is not None:
                out.append({"target": label, "metric": name, "value": figure["value"],
                            "low": figure.get("low"), "high": figure.get("high")})
    return out


def question_rows(run: EvalRun) -> list[dict[str, Any]]:
    """Per question: the question, the reference and, per target, the answer, its verdicts and scores."""
    answers = {(a["label"], a["idx"]): a for a in run.answers}
    rows = []
    for item in run.items:
        row: dict[str, Any] = {"idx": item["idx"], "line": item["line"], "question": item["question"],
                               "reference": item["reference"], "targets": {}}
        for target in run.targets:
            answer = answers.get((target["label"], item["idx"]))
            row["targets"][target["label"]] = answer
        rows.append(row)
    return rows


def to_csv(run: EvalRun) -> str:
    """One line per question and target: the answer, its status, metrics and citation verdicts."""
    buffer = io.StringIO()
    fields = ["run", "target", "idx", "line", "question", "reference", "status", "answer", "error", "seconds",
              "token_f1", "rouge_l", "citation_precision", "citation_recall", "citations", "verified", "not_found",
              "unknown_act", "correct_refusal", "words", "judge_status", "judge_score", "citation_verdicts"]
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    for row in question_rows(run):
        for label, answer in row["targets"].items():
            answer = answer or {"status": "not asked"}
            metrics = answer.get("metrics") or {}
            judge = answer.get("judge") or {}
            writer.writerow({
                "run": run.id, "target": label, "idx": row["idx"], "line": row["line"], "question": row["question"],
                "reference": row["reference"], "status": answer["status"], "answer": answer.get("answer"),
                "error": answer.get("error"), "seconds": answer.get("seconds"),
                **{k: metrics.get(k) for k in ("token_f1", "rouge_l", "citation_precision", "citation_recall",
                                                "citations", "verified", "not_found", "unknown_act",
                                                "correct_refusal", "words")},
                "judge_status": judge.get("status"), "judge_score": judge.get("score"),
                "citation_verdicts": "; ".join(f"{c['label']}: {c['status']}" for c in answer.get("citations") or []),
            })
    return buffer.getvalue()


def run_card(run: EvalRun, label: str) -> str:
    """A one-page markdown card for one target of a run."""
    target = next(t for t in run.targets if t["label"] == label)
    figures = (run.summary or {}).get(label, {})
    endpoint = target["endpoint"]
    lines = [
        f"# Evaluation card: {label}", "",
        f"- **Model**: `{endpoint.get('model')}` ({endpoint.get('kind')} endpoint {endpoint.get('name')})",
        f"- **Run**: {run.id} ({run.status}), {run.created_at}" + (f" to {run.finished_at}" if run.finished_at else ""),
        f"- **Set**: {run.set.get('name')} — {run.set.get('questions')} questions ({run.set.get('source')})",
        f"- **Grounded**: {'yes, top ' + str(run.config.get('k')) + ' provisions' if target['grounded'] else 'no'}",
        f"- **Settings**: max tokens {run.config.get('max_tokens')}, temperature {run.config.get('temperature')}",
    ]
    if run.set.get("dropped"):
        lines.append(f"- **Dropped when reading the set**: {run.set['dropped']} of {run.set.get('read')} records "
                     f"(rejects: {run.set.get('rejects_file')})")
    if run.config.get("judge"):
        judge = run.config["judge"]
        lines.append(f"- **Judge**: `{judge.get('model')}` ({judge.get('name')}); prompt: “{judge.get('prompt')}”")
    lines += ["", "| figure | value [95% interval] |", "| --- | --- |",
              f"| answered | {figures.get('answered', 0)} of {len(run.items)} ({figures.get('failed', 0)} failed) |"]
    for key, name, _ in COLUMNS:
        if key in figures:
            lines.append(f"| {name} | {_fmt(figures.get(key), key in ('invented_rate', 'unverifiable_share', 'correct_refusals'))} |")
    lines.append(f"| words per answer | {_fmt(figures.get('words'), digits=1)} |")
    for key in ("latency_p50", "latency_p95"):
        if figures.get(key) is not None:
            lines.append(f"| {key.replace('_', ' ')} | {figures[key]:.2f} s |")
    lines += ["", "Invented citations: cited provisions of indexed Acts that do not exist, among the checkable "
              "ones. Unverifiable: citations of Acts (or kinds of provision) the index does not hold."]
    return "\n".join(lines) + "\n"


# --- before deploying ------------------------------------------------------------------------------


@dataclass
class DeployVerdict:
    """The latest evaluation of a fine-tuned model against its base, in one sentence, with warnings."""

    run_id: str
    created_at: str
    model_label: str
    base_label: str
    lines: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return not self.warnings


def _pick(run: EvalRun, job_id: str | None, model: str | None) -> tuple[dict, dict] | None:
    mine = [t for t in run.targets if (job_id and t["endpoint"].get("job_id") == job_id)
            or (model and t["endpoint"].get("model") == model)]
    if not mine:
        return None
    bases = [t for t in run.targets if t.get("role") == "base" and t not in mine]
    if not bases:
        return None
    ungrounded = [t for t in mine if not t["grounded"]] or mine
    model_target = ungrounded[0]
    base = next((b for b in bases if b["grounded"] == model_target["grounded"]), bases[0])
    return model_target, base


def latest_verdict(job_id: str | None = None, model: str | None = None) -> DeployVerdict | None:
    """The newest finished run that compares this job's (or model's) endpoint with a base target."""
    for summary in list_runs(limit=200):
        if summary["status"] not in ("succeeded", "failed", "cancelled") or not summary["summary"]:
            continue
        run = load_run(summary["id"])
        picked = _pick(run, job_id, model)
        if picked is None:
            continue
        mine, base = picked
        a, b = run.summary.get(mine["label"], {}), run.summary.get(base["label"], {})
        lines, warnings = [], []
        for key, name, higher in COLUMNS:
            va, vb = _value(a.get(key)), _value(b.get(key))
            if va is None or vb is None:
                continue
            percent = key in ("invented_rate", "unverifiable_share", "correct_refusals")
            shown = (f"{va:.1%} vs {vb:.1%}" if percent else f"{va:.3f} vs {vb:.3f}")
            lines.append(f"{name}: {shown}")
            worse = va < vb if higher else va > vb
            if worse and abs(va - vb) > 1e-9:
                if key == "invented_rate":
                    warnings.insert(0, f"the fine-tuned model invents more citations than its base ({shown})")
                elif key in ("token_f1", "rouge_l", "judge_score"):
                    warnings.append(f"the fine-tuned model scores lower than its base on {name} ({shown})")
        return DeployVerdict(run.id, run.created_at, mine["label"], base["label"], lines, warnings)
    return None
