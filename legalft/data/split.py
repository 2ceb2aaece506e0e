"""Deterministic train/validation split, optionally grouped by Act so no Act leaks across the split.

Grouping puts records that share any Act in one group (connected components: a record citing the
Companies Act 1948 and the Companies Act 1985 ties both Acts' records together), using the
citation parser's Act detection over every turn of the record, so a second Act cited in an answer
cannot end up on the other side. The result lists the Acts that still sit on both sides (none when
grouped) and how many records name no Act at all (each of those is a group of its own).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legalft.data.outputs import atomic_output, check_outputs, write_atomic
from legalft.data.registry import file_sha256
from legalft.legal.citations import act_key, cited_act_titles


@dataclass
class SplitResult:
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    grouped_by_act: bool
    groups: int
    shared_acts: list[str]  # Acts found on both sides (empty when grouped)
    records_without_act: int = 0

    @classmethod
    def from_summary(cls, data: dict[str, Any], train_path: Path, val_path: Path) -> "SplitResult":
        """A finished split read back from its files and its ``split.json``."""
        def rows(path: Path) -> list[dict[str, Any]]:
            with open(path, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]

        return cls(rows(train_path), rows(val_path), data["grouped_by_act"], data["groups"], data["shared_acts"],
                   data.get("records_without_act", 0))

    def to_dict(self) -> dict[str, Any]:
        return {"train_records": len(self.train), "validation_records": len(self.validation),
                "grouped_by_act": self.grouped_by_act, "groups": self.groups,
                "shared_acts": self.shared_acts, "records_without_act": self.records_without_act}


def _texts(record: dict[str, Any]) -> list[str]:
    texts = []
    messages = record.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                texts.append(str(message.get("content") or ""))
    for key in ("text", "prompt", "completion", "instruction", "input", "output", "question", "answer"):
        if isinstance(record.get(key), str):
            texts.append(record[key])
    return texts


def record_acts(record: dict[str, Any]) -> list[str]:
    """Every Act a record names (``meta.act`` first, then its turns in order), distinct."""
    acts: dict[str, str] = {}
    meta = record.get("meta")
    if isinstance(meta, dict) and meta.get("act"):
        acts[act_key(str(meta["act"]))] = str(meta["act"])
    for text in _texts(record):
        for title in cited_act_titles(text):
            acts.setdefault(act_key(title), title)
    return list(acts.values())


def record_act(record: dict[str, Any]) -> str | None:
    """The Act a record is mainly about: ``meta.act`` when present, else the first Act it names."""
    acts = record_acts(record)
    return acts[0] if acts else None


def _components(per_record: list[list[str]]) -> dict[str, list[int]]:
    """Group record indices whose Acts overlap (union-find over Act keys)."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for acts in per_record:
        keys = [act_key(a) for a in acts]
        for other in keys[1:]:
            a, b = find(keys[0]), find(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[str, list[int]] = {}
    for index, acts in enumerate(per_record):
        key = f"act:{find(act_key(acts[0]))}" if acts else f"record:{index}"
        groups.setdefault(key, []).append(index)
    return groups


def split_records(
    records: list[dict[str, Any]], val_fraction: float, seed: int = 0, group_by_act: bool = False
) -> SplitResult:
    """Split by fraction and seed; the same inputs always give the same split."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), not {val_fraction}")
    per_record = [record_acts(r) for r in records]
    if group_by_act:
        groups = _components(per_record)
    else:
        groups = {f"record:{i}": [i] for i in range(len(records))}
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = max(1, round(len(records) * val_fraction)) if records else 0
    val_indices: set[int] = set()
    for key in keys:
        if len(val_indices) >= target:
            break
        members = groups[key]
        # Skip a group that would overshoot badly; one Act's records stay together whatever the fraction.
        if len(val_indices) + len(members) > target * 1.5:
            continue
        val_indices.update(members)
    if records and not val_indices:
        val_indices.update(min((groups[k] for k in keys), key=len))
    if records and len(val_indices) == len(records):
        raise ValueError("the split left nothing for training; lower the validation fraction or add records")
    train = [r for i, r in enumerate(records) if i not in val_indices]
    validation = [r for i, r in enumerate(records) if i in val_indices]
    train_acts: dict[str, str] = {}
    val_acts: dict[str, str] = {}
    for index, acts in enumerate(per_record):
        side = val_acts if index in val_indices else train_acts
        for act in acts:
            side.setdefault(act_key(act), act)
    shared = sorted(train_acts[k] for k in train_acts.keys() & val_acts.keys())
    return SplitResult(train, validation, group_by_act, len(groups), shared,
                       records_without_act=sum(1 for acts in per_record if not acts))


def _settings(path, val_fraction: float, seed: int, group_by_act: bool) -> dict[str, Any]:
    return {"source_sha256": file_sha256(path), "val_fraction": val_fraction, "seed": seed, "group_by_act": group_by_act}


def finished_split(path: str | Path, out_dir: str | Path, val_fraction: float, seed: int = 0,
                   group_by_act: bool = False, *, settings: dict[str, Any] | None = None
                   ) -> tuple[Path, Path, dict[str, Any]] | None:
    """(train, validation, summary) of a split of this file with these settings already in ``out_dir``."""
    out_dir = Path(out_dir)
    train_path, val_path, summary = out_dir / "train.jsonl", out_dir / "validation.jsonl", out_dir / "split.json"
    if not (summary.is_file() and train_path.is_file() and val_path.is_file()):
        return None
    try:
        saved = json.loads(summary.read_text(encoding="utf-8"))
    except ValueError:
        return None
    if saved.get("settings") != (settings or _settings(path, val_fraction, seed, group_by_act)):
        return None
    return train_path, val_path, saved["result"]


def split_file(
    path: str | Path, out_dir: str | Path, val_fraction: float, seed: int = 0, group_by_act: bool = False
) -> tuple[Path, Path, SplitResult]:
    """Split a clean JSONL file into ``train.jsonl`` and ``validation.jsonl`` in ``out_dir``.

    Each side is written whole or not at all; ``split.json`` (the result's summary) is written last,
    so ``split_file`` of the same file and settings into the same folder reuses a finished split.
    """
    out_dir = Path(out_dir)
    train_path, val_path, summary = out_dir / "train.jsonl", out_dir / "validation.jsonl", out_dir / "split.json"
    check_outputs({"the input file": path}, {"train.jsonl": train_path, "validation.jsonl": val_path})
    settings = _settings(path, val_fraction, seed, group_by_act)
    done = finished_split(path, out_dir, val_fraction, seed, group_by_act, settings=settings)
    if done is not None:
        return train_path, val_path, SplitResult.from_summary(done[2], train_path, val_path)
    with open(path, encoding="utf-8-sig") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    result = split_records(records, val_fraction, seed=seed, group_by_act=group_by_act)
    for target, rows in ((train_path, result.train), (val_path, result.validation)):
        with atomic_output(target, "w") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    write_atomic(summary, json.dumps({"settings": settings, "result": result.to_dict()}))
    return train_path, val_path, result
