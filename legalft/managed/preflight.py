"""Pre-flight: the sanitizer's clean file, checked against the service's own rules before upload."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from legalft.errors import BadRequest
from legalft.home import subdir

MAX_FILE_BYTES = 5 * 1024**3


class PreflightError(BadRequest):
    """The dataset breaks the service's rules; ``report`` says where."""

    def __init__(self, report: "PreflightReport"):
        problems = "; ".join(report.errors[:5])
        super().__init__(f"{Path(report.source_path).name} cannot be uploaded: {problems}")
        self.report = report


@dataclass
class PreflightReport:
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
    errors: list[str] = field(default_factory=list)
    """Breaks of the service's rules; any one blocks the upload."""
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and self.upload_path is not None

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


def preflight_dataset(path: str | Path, *, out_dir: str | Path | None = None) -> PreflightReport:
    """Clean ``path`` with the sanitizer, then check the clean file against the service's rules.

    The clean file and the rejects go under ``LEGALFT_HOME/datasets/token_factory/`` (or ``out_dir``),
    named by the source's content hash, so running it again on the same file reuses the names.
    """
    from legalft.data.readers import DatasetReadError
    from legalft.data.registry import file_sha256
    from legalft.data.sanitize import sanitize_file

    source = Path(path)
    report = PreflightReport(source_path=str(source))
    if not source.is_file():
        report.errors.append(f"{source} does not exist or is not a file")
        return report
    folder = Path(out_dir) if out_dir else subdir("datasets") / "token_factory"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{source.stem}-{file_sha256(source)[:12]}"
    upload, rejects = folder / f"{stem}.clean.jsonl", folder / f"{stem}.rejects.jsonl"
    try:
        sanitized = sanitize_file(source, upload, rejects)
    except DatasetReadError as exc:
        report.errors.append(str(exc))
        return report
    report.sanitize = sanitized.to_dict()
    report.upload_path, report.rejects_path = str(upload), str(rejects)
    if sanitized.dropped_records:
        report.warnings.append(
            f"{sanitized.dropped_records} of {sanitized.total_records} records were dropped; "
            f"see {rejects.name} for each one and why")
    check_service_rules(upload, report)
    return report


def check_service_rules(upload: Path, report: PreflightReport) -> None:
    """The service's own rules, on the file exactly as it will be uploaded."""
    report.bytes = upload.stat().st_size
    if report.bytes > MAX_FILE_BYTES:
        report.errors.append(
            f"the clean file is {report.bytes / 1024**3:.2f} GB; the service's limit is 5 GB: split it")
    bad_lines: list[int] = []
    with open(upload, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            report.records += 1
            if "messages" in record:
                messages = record["messages"]
                if not messages or messages[-1].get("role") != "assistant":
                    bad_lines.append(number)
    if bad_lines:
        shown = ", ".join(map(str, bad_lines[:10])) + (" ..." if len(bad_lines) > 10 else "")
        report.errors.append(
            f"{len(bad_lines)} conversation(s) do not end with an assistant message (clean file lines {shown})")
    if report.records == 0:
        report.errors.append("no records are left after cleaning: check the file's format")
    elif report.records < 10:
        report.warnings.append(f"only {report.records} records: fine-tuning on so few rarely helps")
    from legalft.costs import estimate_trained_tokens

    report.estimated_tokens = estimate_trained_tokens(upload).per_epoch


# --- the client -----------------------------------------------------------------------------------
