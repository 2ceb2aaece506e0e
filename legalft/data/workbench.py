"""The Dataset page's operations: keep an upload, sanitize it once per content, and remember the result.

Results are stored beside the clean file (``report.json``), keyed by the content's hash, so a
rerun, a refresh or an app restart reuses them instead of reading a large file again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from legalft.audit import action
from legalft.data.registry import file_sha256
from legalft.data.sanitize import sanitize_file
from legalft.home import bundled_data_dir, subdir

REFERENCE_DATASET = "legislation_qa_clean.jsonl"
LEGISLATION_SAMPLE = "uk_legislation_sections_subset.jsonl"


@dataclass
class PreparedDataset:
    """A sanitized dataset: where its files are and what happened to its records."""

    name: str
    sha256: str
    source_path: Path
    clean_path: Path
    rejects_path: Path
    report: dict[str, Any]
    repaired_examples: list[dict[str, Any]]

    @property
    def has_rejects(self) -> bool:
        return self.report["dropped_records"] > 0


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name).strip("-") or "dataset"


@action("dataset.upload")
def save_upload(name: str, content: bytes) -> Path:
    """Keep an uploaded file under LEGALFT_HOME/datasets/uploads (same content → same file)."""
    digest = hashlib.sha256(content).hexdigest()[:16]
    target = subdir("datasets/uploads") / f"{digest}-{_safe_name(name)}"
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(content)
        tmp.replace(target)
    return target


def prepare_dataset(
    source: str | Path, name: str | None = None, progress: Callable[[int, int], None] | None = None
) -> PreparedDataset:
    """Sanitize ``source`` into LEGALFT_HOME/datasets/work/<hash>/, or reuse the earlier result."""
    source = Path(source)
    name = name or source.name
    sha = file_sha256(source)
    work = subdir(f"datasets/work/{sha[:16]}")
    stem = _safe_name(Path(name).stem)
    clean, rejects, saved = work / f"{stem}.clean.jsonl", work / f"{stem}.rejects.jsonl", work / "report.json"
    if saved.exists() and clean.exists():
        data = json.loads(saved.read_text(encoding="utf-8"))
    else:
        report = sanitize_file(source, clean, rejects, progress=progress)
        data = {"report": report.to_dict(), "repaired_examples": report.repaired_examples}
        saved.write_text(json.dumps(data, ensure_ascii=False, default=str), encoding="utf-8")
    return PreparedDataset(name, sha, source, clean, rejects, data["report"], data["repaired_examples"])


def bundled_reference() -> Path:
    return bundled_data_dir() / REFERENCE_DATASET


def bundled_legislation() -> Path:
    return bundled_data_dir() / LEGISLATION_SAMPLE


def read_records(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """The records of a clean JSONL file (for browsing; ``limit`` caps memory on large files)."""
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                records.append(json.loads(line))
                if limit and len(records) >= limit:
                    break
    return records
