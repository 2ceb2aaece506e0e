"""Deterministic train/validation split, optionally grouped by Act so no Act leaks across the split."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from legalft.data.stats import cited_acts


@dataclass
class SplitResult:
    train: list[dict[str, Any]]
    validation: list[dict[str, Any]]
    grouped_by_act: bool
    groups: int
    shared_acts: list[str]  # Acts found on both sides (empty when grouped)

    def to_dict(self) -> dict[str, Any]:
        return {"train_records": len(self.train), "validation_records": len(self.validation),
                "grouped_by_act": self.grouped_by_act, "groups": self.groups,
                "shared_acts": self.shared_acts}


def record_act(record: dict[str, Any]) -> str | None:
    """The Act a record is about: ``meta.act`` when present, else the first Act its user turns cite."""
    meta = record.get("meta")
    if isinstance(meta, dict) and meta.get("act"):
        return str(meta["act"])
    messages = record.get("messages") or []
    texts = [m.get("content", "") for m in messages if m.get("role") == "user"]
    texts += [m.get("content", "") for m in messages if m.get("role") != "user"]
    if "text" in record:
        texts.append(str(record["text"]))
    for text in texts:
        acts = cited_acts(text)
        if acts:
            return acts[0]
    return None


def split_records(
    records: list[dict[str, Any]], val_fraction: float, seed: int = 0, group_by_act: bool = False
) -> SplitResult:
    """Split by fraction and seed; the same inputs always give the same split."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), not {val_fraction}")
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        act = record_act(record) if group_by_act else None
        key = f"act:{act}" if act else f"record:{index}"
        groups.setdefault(key, []).append(index)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = max(1, round(len(records) * val_fraction)) if records else 0
    val_indices: set[int] = set()
    for key in keys:
        if len(val_indices) >= target:
            break
        members = groups[key]
        # Skip a group that would overshoot badly, unless nothing smaller is left to take.
        if val_indices and len(val_indices) + len(members) > target * 1.5:
            continue
        val_indices.update(members)
    if records and len(val_indices) == len(records):
        raise ValueError("the split left nothing for training; lower the validation fraction or add records")
    train = [r for i, r in enumerate(records) if i not in val_indices]
    validation = [r for i, r in enumerate(records) if i in val_indices]
    train_acts = {record_act(r) for r in train} - {None}
    shared = sorted(train_acts & ({record_act(r) for r in validation} - {None}))
    return SplitResult(train, validation, group_by_act, len(groups), shared)


def split_file(
    path: str | Path, out_dir: str | Path, val_fraction: float, seed: int = 0, group_by_act: bool = False
) -> tuple[Path, Path, SplitResult]:
    """Split a clean JSONL file into ``train.jsonl`` and ``validation.jsonl`` in ``out_dir``."""
    with open(path, encoding="utf-8-sig") as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    result = split_records(records, val_fraction, seed=seed, group_by_act=group_by_act)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_path, val_path = out_dir / "train.jsonl", out_dir / "validation.jsonl"
    for target, rows in ((train_path, result.train), (val_path, result.validation)):
        with open(target, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return train_path, val_path, result
