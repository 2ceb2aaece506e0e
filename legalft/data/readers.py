"""Read dataset files record by record, with the physical line number of each.

JSONL is streamed in constant memory (UTF-8 with or without BOM, CRLF, blank lines skipped and not
counted). JSON arrays, CSV and Parquet are supported too; their columns are mapped to the record
formats the sanitizer knows. A line that is not valid JSON is yielded as a record with an error,
so the sanitizer can account for it; only a file that is not a dataset at all raises.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

SNIFF_BYTES = 64 * 1024
FORMATS = ("jsonl", "json", "csv", "parquet")


class DatasetReadError(Exception):
    """The file cannot be read as a dataset at all (binary, unknown format, unreadable)."""


@dataclass(slots=True)
class RawRecord:
    """One record as read: its line number, the raw text, and the parsed value or the parse error."""

    line: int
    raw: str
    value: Any = None
    error: str | None = None  # "invalid_json" when the text is not JSON


def detect_format(path: str | Path) -> str:
    """The file's format, by extension, falling back to its first bytes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        fmt = "jsonl"
    elif suffix == ".parquet":
        fmt = "parquet"
    elif suffix in (".csv", ".tsv"):
        fmt = "csv"
    else:
        fmt = ""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet"
    if fmt == "parquet":
        raise DatasetReadError(f"{path.name} has a .parquet name but is not a Parquet file")
    _reject_binary(path, head)
    if fmt:
        if fmt == "jsonl" and _first_char(head) == "[" and _looks_like_json_array(path):
            return "json"
        return fmt
    first = _first_char(head)
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise DatasetReadError(
        f"{path.name}: cannot tell the format; use a .jsonl, .json, .csv or .parquet file"
    )


def _first_char(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    return text[:1]


def _looks_like_json_array(path: Path) -> bool:
    # A JSONL file may not start with '[' unless the whole file is one array.
    with open(path, "rb") as fh:
        first_line = fh.readline().decode("utf-8", errors="replace").strip().lstrip("\ufeff")
    try:
        json.loads(first_line)
    except ValueError:
        return True
    return False


def _reject_binary(path: Path, head: bytes) -> None:
    if not head:
        return
    if b"\x00" in head:
        raise DatasetReadError(f"{path.name} is a binary file, not a text dataset (JSONL, JSON, CSV or Parquet)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the sniff boundary is fine; anything earlier is not UTF-8.
        if exc.start < len(head) - 4:
            raise DatasetReadError(
                f"{path.name} is not UTF-8 text (byte {exc.start}); save it as UTF-8 JSONL, JSON, CSV or Parquet"
            ) from None


def iter_records(
    path: str | Path, fmt: str | None = None, progress: Callable[[int, int], None] | None = None
) -> Iterator[RawRecord]:
    """Yield every record of the file. ``progress(bytes_read, total_bytes)`` is called now and then."""
    path = Path(path)
    if not path.is_file():
        raise DatasetReadError(f"{path} does not exist or is not a file")
    fmt = fmt or detect_format(path)
    reader = {"jsonl": _iter_jsonl, "json": _iter_json_array, "csv": _iter_csv, "parquet": _iter_parquet}.get(fmt)
    if reader is None:
        raise DatasetReadError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return reader(path, progress)


def _iter_jsonl(path: Path, progress) -> Iterator[RawRecord]:
    total = path.stat().st_size
    done = 0
    loads = json.JSONDecoder().decode
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            done += len(line)
            if progress is not None and number % 20000 == 0:
                progress(done, total)
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                text = line.decode("utf-8", errors="replace")
                yield RawRecord(number, text.rstrip("\r\n"), error="invalid_utf8")
                continue
            stripped = text.strip()
            if not stripped:
                continue
            try:
                value = loads(stripped)
            except ValueError:
                yield RawRecord(number, stripped, error="invalid_json")
                continue
            yield RawRecord(number, stripped, value)
    if progress is not None:
        progress(total, total)


def _iter_json_array(path: Path, progress) -> Iterator[RawRecord]:
    text = path.read_text(encoding="utf-8-sig", errors="strict")
    total = len(text)
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if text[pos:pos + 1] != "[":
        raise DatasetReadError(f"{path.name}: a JSON dataset must be an array of records")
    pos = _skip_ws(text, pos + 1)
    line = text.count("\n", 0, pos) + 1
    last = pos
    while pos < total and text[pos] != "]":
        line += text.count("\n", last, pos)
        last = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError as exc:
            # An array element that is not JSON breaks the rest of the array: report it and stop.
            yield RawRecord(line, text[pos:pos + 200], error="invalid_json")
            raise DatasetReadError(f"{path.name}: line {line}: invalid JSON inside the array ({exc.msg})") from None
        yield RawRecord(line, text[pos:end], value)
        pos = _skip_ws(text, end)
        if text[pos:pos + 1] == ",":
            pos = _skip_ws(text, pos + 1)
        if progress is not None:
            progress(pos, total)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _iter_csv(path: Path, progress) -> Iterator[RawRecord]:
    total = path.stat().st_size
    with open(path, encoding="utf-8-sig", newline="") as fh:
        sample = fh.read(SNIFF_BYTES)
        fh.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" or sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(fh, delimiter=delimiter)
        if not reader.fieldnames:
            raise DatasetReadError(f"{path.name}: the CSV file has no header row")
        start = reader.line_num + 1
        for row in reader:
            row = {k.strip().lower(): v for k, v in row.items() if k is not None}
            if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                start = reader.line_num + 1
                continue
            yield RawRecord(start, json.dumps(row, ensure_ascii=False), map_columns(row))
            start = reader.line_num + 1
    if progress is not None:
        progress(total, total)


def _iter_parquet(path: Path, progress) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq  # pyarrow comes with datasets; only Parquet needs it

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a bad file
        raise DatasetReadError(f"{path.name}: not a readable Parquet file ({exc})") from None
    total = pf.metadata.num_rows
    number = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            number += 1
            row = {str(k).strip().lower(): v for k, v in row.items()}
            yield RawRecord(number, json.dumps(row, ensure_ascii=False, default=str), map_columns(row))
        if progress is not None:
            progress(number, total)


def map_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A tabular row as a record: empty cells dropped, a JSON ``messages`` cell parsed.

    The sanitizer then recognises question/answer, prompt/completion, instruction/input/output and
    text columns as it does JSON keys.
    """
    record = {k: v for k, v in row.items() if v is not None and v != ""}
    if isinstance(record.get("messages"), str):
        try:
            record["messages"] = json.loads(record["messages"])
        except ValueError:
            pass
    return record
