"""Datasets registered for training (the ``datasets`` table); files are copied under LEGALFT_HOME."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legalft.audit import action
from legalft.db import connect
from legalft.home import subdir
from legalft.jobs import utc_now


@dataclass
class RegisteredDataset:
    id: int
    name: str
    path: str
    sha256: str
    total_records: int
    kept_records: int
    dropped_records: int
    repaired_records: int
    created_at: str
    report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row) -> "RegisteredDataset":
        data = dict(row)
        data["report"] = json.loads(data.pop("report_json") or "{}")
        return cls(**data)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@action("dataset.register")
def register_dataset(clean_path: str | Path, name: str, report: dict[str, Any] | None = None) -> RegisteredDataset:
    """Copy a clean JSONL file into LEGALFT_HOME/datasets and record it; the same file twice is one entry."""
    sha = file_sha256(clean_path)
    with connect() as conn:
        row = conn.execute("SELECT * FROM datasets WHERE sha256 = ?", (sha,)).fetchone()
    if row:
        return RegisteredDataset.from_row(row)
    report = report or {}
    kept = report.get("kept_records")
    if kept is None:
        with open(clean_path, "rb") as fh:
            kept = sum(1 for line in fh if line.strip())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).stem).strip("-") or "dataset"
    target = subdir("datasets") / f"{slug}-{sha[:10]}.jsonl"
    tmp = target.with_name(f".{target.name}.part")
    shutil.copyfile(clean_path, tmp)
    tmp.replace(target)
    # Issues can be many; the table keeps the counts, the file keeps the records.
    summary = {k: v for k, v in report.items() if k != "issues"}
    # What the Train page shows of any dataset, computed once here rather than on every render.
    summary["training"] = training_summary(target, sha)
    with connect() as conn:
        cursor = conn.execute(
            "INSERT INTO datasets (name, path, sha256, total_records, kept_records, dropped_records,"
            " repaired_records, report_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, str(target), sha, report.get("total_records", kept), kept,
             report.get("dropped_records", 0), report.get("repaired_records", 0),
             json.dumps(summary), utc_now()),
        )
        new_id = cursor.lastrowid
    return get_dataset(new_id)


DEFAULT_HOLDOUT = 0.1


def holdout_split(path: str | Path, sha: str, fraction: float) -> tuple[str, str | None, str | None]:
    """(train file, validation file or None, why there is none) of the hold-out split grouped by Act.

    The split is made once per content and fraction under LEGALFT_HOME/datasets/splits and reused.
    """
    from legalft.data.split import finished_split, split_file

    if fraction <= 0:
        return str(path), None, None
    out = subdir("datasets/splits") / f"{sha[:12]}-{fraction:.2f}"
    done = finished_split(path, out, fraction, seed=0, group_by_act=True)
    if done is not None:
        return str(done[0]), str(done[1]), None
    try:
        train, val, _ = split_file(path, out, fraction, seed=0, group_by_act=True)
    except ValueError as exc:  # too few records to hold any out
        return str(path), None, str(exc)
    return str(train), str(val), None


def training_summary(path: str | Path, sha: str) -> dict[str, Any]:
    """The trained-token estimate and the default hold-out split of a registered file."""
    from legalft.costs import estimate_trained_tokens

    tokens = estimate_trained_tokens(path)
    train, val, why = holdout_split(path, sha, DEFAULT_HOLDOUT)
    return {"trained_tokens_per_epoch": tokens.per_epoch, "trained_tokens_model": tokens.model,
            "trained_tokens_basis": tokens.basis, "holdout": {"fraction": DEFAULT_HOLDOUT, "train": train,
                                                              "validation": val, "note": why}}


def list_datasets() -> list[RegisteredDataset]:
    """Newest first."""
    with connect() as conn:
        rows = conn.execute("SELECT * FROM datasets ORDER BY id DESC").fetchall()
    return [RegisteredDataset.from_row(r) for r in rows]


def get_dataset(dataset_id: int) -> RegisteredDataset | None:
    with connect() as conn:
        row = conn.execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
    return RegisteredDataset.from_row(row) if row else None
