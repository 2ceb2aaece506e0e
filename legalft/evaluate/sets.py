"""Evaluation sets: questions with reference answers, from a file, a validation split or the statute index.

A file goes through the same sanitizer as the Dataset page (any supported format), so every line
read is accounted for: kept as a question, or dropped with its line and reason (the rejects are
written beside the run). The validation split is the one the Train page holds out (grouped by Act,
seed 0), so a model is evaluated on Acts it did not train on. Generated sets ask about indexed
provisions ("Which section of the X Act deals with ...?", "What does section 3(1) say?") and
include questions on a point the Act does not cover, whose reference answer says so.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCES = ("file", "validation", "legislation")


@dataclass
class EvalItem:
    """One question with its reference answer; ``line`` is where it was read (None when generated)."""

    question: str
    reference: str
    line: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalSet:
    """The questions of an evaluation and where they came from, with the reading's accounting."""

    name: str
    source: str
    items: list[EvalItem]
    description: dict[str, Any] = field(default_factory=dict)
    """source path, hash, read/kept/dropped counts, issues (first 50), split settings."""
    rejects: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "questions": len(self.items), **self.description}


def _item_of(record: dict[str, Any], line: int | None) -> EvalItem | None:
    messages = record.get("messages") or []
    last_assistant = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    if last_assistant is None:
        return None
    user = max((i for i, m in enumerate(messages[:last_assistant]) if m.get("role") == "user"), default=None)
    if user is None:
        return None
    meta = dict(record.get("meta") or {})
    if user > 0 and any(m.get("role") != "system" for m in messages[:user]):
        meta["earlier_turns"] = user
    return EvalItem(question=str(messages[user]["content"]), reference=str(messages[last_assistant]["content"]),
                    line=line, meta=meta)


def load_file_set(path: str | Path, *, limit: int | None = None, name: str | None = None) -> EvalSet:
    """Questions from any dataset file the Dataset page reads; dropped records kept with line and reason."""
    import hashlib

    from legalft.data.readers import iter_records
    from legalft.data.sanitize import Sanitizer

    path = Path(path)
    sanitizer = Sanitizer()
    items: list[EvalItem] = []
    rejects: list[dict[str, Any]] = []
    for raw in iter_records(path):
        _, outcome = sanitizer.process(raw)
        if outcome.drop is not None:
            kind, message = outcome.drop
            rejects.append({"line": raw.line, "reason": kind, "message": message, "raw": raw.raw})
            continue
        item = _item_of(outcome.record, raw.line)
        if item is None:  # the sanitizer keeps only records with a user and an assistant turn
            rejects.append({"line": raw.line, "reason": "no_question", "message": "no user turn before the answer",
                            "raw": raw.raw})
            continue
        items.append(item)
    report = sanitizer.report
    beyond = len(items) - limit if limit and len(items) > limit else 0
    if beyond:
        items = items[:limit]
    description = {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                   "read": report.total_records, "kept": report.kept_records, "dropped": report.dropped_records,
                   "repaired": report.repaired_records, "not_asked_beyond_limit": beyond,
                   "issues": [i.message for i in report.issues[:50]]}
    return EvalSet(name=name or path.name, source="file", items=items, description=description, rejects=rejects)


def load_validation_set(path: str | Path, *, val_fraction: float = 0.1, seed: int = 0,
                        limit: int | None = None) -> EvalSet:
    """The validation side of the split grouped by Act (what the Train page holds out)."""
    from legalft.data.split import split_records

    base = load_file_set(path)
    records = [{"messages": [{"role": "user", "content": i.question}, {"role": "assistant", "content": i.reference}],
                "meta": i.meta, "_line": i.line} for i in base.items]
    result = split_records(records, val_fraction, seed=seed, group_by_act=True)
    items = [EvalItem(r["messages"][0]["content"], r["messages"][1]["content"], r["_line"], r.get("meta") or {})
             for r in result.validation]
    if limit:
        items = items[:limit]
    description = {**base.description, "split": {"val_fraction": val_fraction, "seed": seed, "grouped_by_act": True,
                                                 "shared_acts": result.shared_acts, "groups": result.groups}}
    return EvalSet(name=f"{Path(path).name} validation", source="validation", items=items,
                   description=description, rejects=base.rejects)


def generate_legislation_set(index, *, questions: int = 20, seed: int = 0, acts: list[str] | None = None,
                             refusal_share: float = 0.2) -> EvalSet:
    """Q&A generated from indexed provisions, with a share of questions the named Act does not cover."""
    from legalft.data.convert import ConvertOptions, Provision, pairs_for_provision
    from legalft.db import connect
    from legalft.legal.citations import act_key

    sql = "SELECT id, act, year, chapter, number, heading, text, url FROM statute_provisions WHERE kind = 'section'"
    args: list[Any] = []
    if acts:
        sql += f" AND act_key IN ({', '.join('?' * len(acts))})"
        args = [act_key(a) for a in acts]
    with connect() as conn:
        rows = [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]
    rng = random.Random(seed)
    rng.shuffle(rows)
    options = ConvertOptions(kinds=("heading", "subsection"))
    items: list[EvalItem] = []
    refusals = round(questions * refusal_share)
    for row in rows:
        if len(items) >= questions - refusals:
            break
        provision = Provision(act=row["act"], section=row["number"], heading=row["heading"], text=row["text"],
                              source=row["url"], chapter=row["chapter"], year=row["year"])
        pairs = [p for p in pairs_for_provision(provision, options) if len(p[2]) < 1500]
        if pairs:
            kind, user, assistant, meta = rng.choice(pairs)
            items.append(EvalItem(user, assistant, None, {**meta, "kind": kind, "provision_id": row["id"]}))
    headed = [r for r in rows if r["heading"]]
    for row in headed[: refusals * 4]:
        if len(items) >= questions:
            break
        other = rng.choice(headed)
        if other["act"] == row["act"]:
            continue
        topic = other["heading"][0].lower() + other["heading"][1:]
        items.append(EvalItem(
            f"Does the {row['act']} make provision about {topic}?",
            f"No. The {row['act']} does not address {topic}; that is dealt with in section {other['number']} "
            f"of the {other['act']}.", None, {"kind": "refusal", "act": row["act"]}))
    return EvalSet(name=f"generated from the statute index ({len(items)} questions, seed {seed})",
                   source="legislation", items=items,
                   description={"seed": seed, "acts": acts or "all", "refusal_share": refusal_share})


def save_rejects(evalset: EvalSet, folder: Path) -> Path | None:
    """Write the dropped records (line, reason, raw) where the user can download them."""
    if not evalset.rejects:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "rejects.jsonl"
    with open(target, "w", encoding="utf-8") as fh:
        for row in evalset.rejects:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return target
