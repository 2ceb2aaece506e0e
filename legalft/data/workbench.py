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
from legalft.data.outputs import write_atomic
from legalft.data.registry import file_sha256
from legalft.data.sanitize import SANITIZER_VERSION, sanitize_file
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
    """Sanitize ``source`` into LEGALFT_HOME/datasets/work/<hash>/, or reuse the earlier result.

    The clean file, the rejects and ``report.json`` are each written whole and renamed into place,
    the report last, so a result found on disk is complete (and is shared by every session).
    """
    source = Path(source)
    name = name or source.name
    sha = file_sha256(source)
    work = subdir(f"datasets/work/{sha[:16]}-v{SANITIZER_VERSION}")
    stem = _safe_name(Path(name).stem)
    clean, rejects, saved = work / f"{stem}.clean.jsonl", work / f"{stem}.rejects.jsonl", work / "report.json"
    data = None
    if saved.exists() and clean.exists():
        try:
            data = json.loads(saved.read_text(encoding="utf-8"))
        except ValueError:
            data = None
    if data is None:
        report = sanitize_file(source, clean, rejects, progress=progress)
        data = {"report": report.to_dict(), "repaired_examples": report.repaired_examples}
        write_atomic(saved, json.dumps(data, ensure_ascii=False, default=str))
    return PreparedDataset(name, sha, source, clean, rejects, data["report"], data["repaired_examples"])


@dataclass
class StatsView:
    """Statistics for the page: the numbers, the chart series, and why a named tokenizer was not used."""

    stats: dict[str, Any]
    record_tokens: list[int]
    message_tokens: dict[str, list[int]]
    tokenizer_error: str | None = None


def dataset_stats(prepared: PreparedDataset, tokenizer: str | None = None, max_length: int = 1024) -> StatsView:
    """Statistics of the clean file, computed once per content and setting and kept beside it.

    A tokenizer that cannot be loaded is not an error of the page: the labelled approximation is
    used instead, and ``tokenizer_error`` says why.
    """
    from legalft.data.stats import compute_stats

    error = None
    if tokenizer:
        from legalft.data.stats import tokenizer_problem

        error = tokenizer_problem(tokenizer)
        if error:
            tokenizer = None
    key = hashlib.sha256(json.dumps([tokenizer, max_length]).encode()).hexdigest()[:12]
    saved = prepared.clean_path.parent / f"stats-{key}.json"
    if saved.exists():
        try:
            data = json.loads(saved.read_text(encoding="utf-8"))
            return StatsView(data["stats"], data["record_tokens"], data["message_tokens"], error)
        except (ValueError, KeyError):
            pass
    try:
        stats = compute_stats(prepared.clean_path, tokenizer=tokenizer, max_length=max_length)
    except (ValueError, RuntimeError) as exc:  # the tokenizer loaded but failed on the text
        error = str(exc)
        stats = compute_stats(prepared.clean_path, tokenizer=None, max_length=max_length)
    data = {"stats": stats.to_dict(), "record_tokens": stats.record_tokens, "message_tokens": stats.message_tokens}
    write_atomic(saved, json.dumps(data))
    return StatsView(data["stats"], data["record_tokens"], data["message_tokens"], error)


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


@dataclass
class SearchResult:
    """Records of a clean file that match a query: the first ``limit`` of them, and how many match in all."""

    rows: list[tuple[int, dict[str, Any]]]
    """(record number, record), numbered from 1 in the clean file."""
    matches: int
    records: int


def search_records(path: str | Path, query: str = "", limit: int = 1000) -> SearchResult:
    """Search the whole clean file (case-insensitive, in any turn); only the matches shown are parsed."""
    needle = query.strip().lower()
    encoded = json.dumps(needle, ensure_ascii=False)[1:-1].encode("utf-8") if needle else b""
    rows: list[tuple[int, dict[str, Any]]] = []
    matches = records = 0
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            records += 1
            if encoded:
                haystack = line.lower() if needle.isascii() else line.decode("utf-8", "replace").lower().encode("utf-8")
                if encoded not in haystack:
                    continue
            matches += 1
            if len(rows) < limit:
                rows.append((records, json.loads(line)))
    return SearchResult(rows, matches, records)


def read_record(path: str | Path, number: int) -> dict[str, Any] | None:
    """Record ``number`` (from 1) of a clean file."""
    seen = 0
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                seen += 1
                if seen == number:
                    return json.loads(line)
    return None
