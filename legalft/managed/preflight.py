"""Pre-flight: the sanitizer's clean file, checked against the service's own rules before upload."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from legalft.errors import BadRequest
from legalft.home import subdir

MAX_FILE_BYTES = 5 * 1024**3


class PreflightError(BadRequest):
    """The dataset breaks the service's rules; ``report`` says where."""

    def __init__(self, report: "UploadPreflight"):
        problems = "; ".join(report.problems[:5])
        super().__init__(f"{Path(report.source_path).name} cannot be uploaded: {problems}")
        self.report = report


@dataclass
class UploadPreflight:
    """What the dataset looks like to the service, before anything is uploaded."""

    source_path: str
    upload_path: str | None = None
    """The cleaned file that will be uploaded."""
    rejects_path: str | None = None
    """Dropped records, with line and reason, for download."""
    sanitize: dict[str, Any] = field(default_factory=dict)
    """The sanitizer's report (``SanitizeReport.to_dict()``)."""
    records: int = 0
    bytes: int = 0
    estimated_tokens: int = 0
    """Trained tokens per epoch as the service counts them (``legalft.costs.estimate_trained_tokens``)."""
    problems: list[str] = field(default_factory=list)
    """Breaks of the service's rules; any one blocks the upload."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.upload_path is not None

    def estimated_cost(self, model: str, epochs: int, packing: bool = True,
                       context_length: int | None = None) -> float | None:
        """Training cost in USD from the one trained-token estimator (``legalft.costs``); None without a price."""
        from legalft import costs

        if self.upload_path is None:
            return None
        tokens = costs.estimate_trained_tokens(self.upload_path, model=model, epochs=epochs, packing=packing,
                                               context_length=context_length)
        return costs.estimate_managed_training(tokens).cost

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def preflight_dataset(path: str | Path, *, out_dir: str | Path | None = None) -> UploadPreflight:
    """Clean ``path`` with the sanitizer (its rules, the only ones), then check the service's own rules.

    The clean file, the rejects and the sanitizer's report go under ``LEGALFT_HOME/datasets/token_factory/``
    (or ``out_dir``), named by the source's content hash and the sanitizer's version. Each is written
    to a temporary file and renamed into place, the report last: concurrent pre-flights of one
    dataset never read a half-written file, and a finished one is shared (reused, not redone).
    """
    from legalft.data.outputs import write_atomic
    from legalft.data.readers import DatasetReadError
    from legalft.data.registry import file_sha256
    from legalft.data.sanitize import SANITIZER_VERSION, sanitize_file

    source = Path(path)
    report = UploadPreflight(source_path=str(source))
    if not source.is_file():
        report.problems.append(f"{source} does not exist or is not a file")
        return report
    folder = Path(out_dir) if out_dir else subdir("datasets") / "token_factory"
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", source.stem).strip("-") or "dataset"
    stem = f"{name}-{file_sha256(source)[:12]}-v{SANITIZER_VERSION}"
    upload, rejects, saved = (folder / f"{stem}.clean.jsonl", folder / f"{stem}.rejects.jsonl",
                              folder / f"{stem}.preflight.json")
    result = _finished(saved, upload)
    if result is None:
        try:
            sanitized = sanitize_file(source, upload, rejects)
        except DatasetReadError as exc:
            report.problems.append(str(exc))
            return report
        from legalft.costs import estimate_trained_tokens

        result = {"sanitize": sanitized.to_dict(), "estimated_tokens": estimate_trained_tokens(upload).per_epoch}
        write_atomic(saved, json.dumps(result))
    report.sanitize = result["sanitize"]
    report.upload_path = str(upload)
    report.rejects_path = str(rejects) if report.sanitize["dropped_records"] else None
    dropped, total = report.sanitize["dropped_records"], report.sanitize["total_records"]
    if dropped:
        report.warnings.append(f"{dropped} of {total} records were dropped; see {rejects.name} for each one and why")
    check_service_rules(upload, report, records=report.sanitize["kept_records"])
    report.estimated_tokens = result["estimated_tokens"]
    return report


def _finished(saved: Path, upload: Path) -> dict[str, Any] | None:
    """The result of an earlier pre-flight of the same content, when it finished."""
    if not (saved.is_file() and upload.is_file()):
        return None
    try:
        return json.loads(saved.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None


def check_service_rules(upload: Path, report: UploadPreflight, *, records: int | None = None) -> None:
    """The service's own rules, on the file exactly as it will be uploaded.

    ``records`` is the sanitizer's count when ``upload`` is its clean file: its rules already end
    every conversation with the assistant, so the file is not read again. A file from elsewhere is
    read and checked for that rule.
    """
    upload = Path(upload)
    report.bytes = upload.stat().st_size
    if report.bytes > MAX_FILE_BYTES:
        report.problems.append(
            f"the clean file is {report.bytes / 1024**3:.2f} GB; the service's limit is 5 GB: split it")
    if records is None:
        records, bad_lines = _read_conversations(upload)
        if bad_lines:
            shown = ", ".join(map(str, bad_lines[:10])) + (" ..." if len(bad_lines) > 10 else "")
            report.problems.append(
                f"{len(bad_lines)} conversation(s) do not end with an assistant message (clean file lines {shown})")
    report.records = records
    if report.records == 0:
        report.problems.append("no records are left after cleaning: check the file's format")
    elif report.records < 10:
        report.warnings.append(f"only {report.records} records: fine-tuning on so few rarely helps")
    if report.estimated_tokens == 0 and records:
        from legalft.costs import estimate_trained_tokens

        report.estimated_tokens = estimate_trained_tokens(upload).per_epoch


def _read_conversations(upload: Path) -> tuple[int, list[int]]:
    """(records, lines whose conversation does not end with the assistant) of a JSONL file."""
    from legalft.data.readers import iter_records

    count, bad = 0, []
    for raw in iter_records(upload, fmt="jsonl"):
        count += 1
        value = raw.value if isinstance(raw.value, dict) else {}
        messages = value.get("messages")
        if "messages" in value and not (isinstance(messages, list) and messages and isinstance(messages[-1], dict)
                                        and messages[-1].get("role") == "assistant"):
            bad.append(raw.line)
    return count, bad


# --- the client -----------------------------------------------------------------------------------
