"""Read dataset files record by record, with the physical line number of each.

JSONL is streamed in constant memory: UTF-8 with or without BOM; LF, CRLF or CR-only line endings;
blank lines skipped but numbered; gzip read directly. JSON arrays, CSV/TSV and Parquet are read too,
their columns mapped to the record formats the sanitizer knows. Whatever is wrong with one record
(not JSON, a byte that is not UTF-8, a NUL, nesting too deep, a record too large) is that record's
problem: it is yielded with an error kind and a readable reason, and reading goes on. Only a file
that is not a dataset at all raises ``DatasetReadError``, saying what the file is.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import msgspec

from legalft.errors import LegalftError

SNIFF_BYTES = 64 * 1024
BLOCK_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 64 * 1024 * 1024
"""A record (a line, a CSV row) longer than this is dropped alone; an Act section is far smaller."""
EXCERPT_CHARS = 200
FORMATS = ("jsonl", "json", "csv", "parquet")

_decode = msgspec.json.decode
_SURROGATE_ESCAPES = re.compile("[\udc80-\udcff]")


class DatasetReadError(LegalftError):
    """The file cannot be read as a dataset at all (binary, unknown format, unreadable)."""

    kind = "dataset_unreadable"


@dataclass(slots=True)
class RawRecord:
    """One record as read: its line number, the raw text, and the parsed value or why it has none."""

    line: int
    raw: str
    value: Any = None
    error: str | None = None
    """The drop kind when the record could not be read: invalid_json, not_utf8, nul_byte, too_deep,
    too_large, empty_row."""
    detail: str | None = None
    """What is wrong, in words (``"byte 0xA3 at position 12 is not UTF-8 …"``)."""


class TooLong(bytes):
    """The first bytes of a line longer than ``MAX_RECORD_BYTES``; ``size`` is the whole line's."""

    size: int = 0


def excerpt(text: str, limit: int = 60) -> str:
    """A short, printable excerpt of user text for a report message."""
    if len(text) > limit:
        text = text[:limit].rstrip() + "…"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return text


# --- what the file is ---------------------------------------------------------------------------

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"PK\x03\x04", "a ZIP archive: extract the dataset file from it first"),
    (b"BZh", "bzip2-compressed: decompress it first (or gzip it: legalft reads .gz directly)"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first (or gzip it: legalft reads .gz directly)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first (or gzip it: legalft reads .gz directly)"),
    (b"\xff\xfe\x00\x00", "UTF-32 text: convert it to UTF-8 (e.g. iconv -f UTF-32 -t UTF-8)"),
    (b"\x00\x00\xfe\xff", "UTF-32 text: convert it to UTF-8 (e.g. iconv -f UTF-32 -t UTF-8)"),
    (b"\xff\xfe", "UTF-16 text: convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8, or save as UTF-8)"),
    (b"\xfe\xff", "UTF-16 text: convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8, or save as UTF-8)"),
)
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\v\x1b") + b"\x7f"


def _checked_path(path: Path) -> Path:
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            raise DatasetReadError(f"{path} is a symbolic link that loops back on itself: point it at the file") from None
        except OSError as exc:
            if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40:
                raise DatasetReadError(f"{path} is a symbolic link that loops back on itself: point it at the file") from None
        raise DatasetReadError(f"{path} is a symbolic link to a file that does not exist")
    if not path.exists():
        raise DatasetReadError(f"{path} does not exist")
    if not path.is_file():
        raise DatasetReadError(f"{path} is not a file (a folder?): name a dataset file")
    return path


def _what_binary(path: Path, head: bytes) -> str | None:
    """Why ``head`` is not a text dataset, or None when it is text (or gzip, which is read directly)."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return None if what == "gzip" else f"{path.name} is {what}"
    if not head:
        return None
    sample = head[:4096]
    if len(sample) >= 8:
        even, odd = sample[0::2], sample[1::2]
        text_half = odd if even.count(0) > odd.count(0) else even
        printable = sum(1 for b in text_half if b >= 0x20 or b in b"\t\n\r")
        if ((even.count(0) > 0.4 * len(even)) != (odd.count(0) > 0.4 * len(odd))
                and printable > 0.9 * len(text_half)):
            return (f"{path.name} is UTF-16 text without a byte-order mark: convert it to UTF-8 "
                    "(e.g. iconv -f UTF-16 -t UTF-8, or save as UTF-8)")
    controls = sum(head.count(bytes([b])) for b in _CONTROL)
    if controls <= 0.1 * len(head):
        return None
    # Many control bytes: binary, unless most lines are clean text (one bad line is that line's problem).
    lines = [line for line in re.split(rb"\r\n|\r|\n", head) if line.strip()]
    clean = sum(1 for line in lines if not any(b in _CONTROL for b in line))
    if lines and clean * 2 >= len(lines):
        return None
    return f"{path.name} is a binary file, not a text dataset (JSONL, JSON, CSV or Parquet)"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _inner_suffix(path: Path) -> str:
    """The extension that says the format: ``acts.jsonl.gz`` → ``.jsonl``."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _read_head(path: Path) -> bytes:
    try:
        if _is_gzip(path):
            with gzip.open(path, "rb") as fh:
                return _Guarded(fh, path).read(SNIFF_BYTES)
        with open(path, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise DatasetReadError(f"{path.name}: cannot read it ({exc})") from None


def detect_format(path: str | Path) -> str:
    """The file's format, by extension, falling back to its first bytes; raises when it is no dataset."""
    path = _checked_path(Path(path))
    with open(path, "rb") as fh:
        raw_head = fh.read(SNIFF_BYTES)
    if raw_head.startswith(b"PAR1"):
        return "parquet"
    suffix = _inner_suffix(path)
    if suffix == ".parquet":
        raise DatasetReadError(f"{path.name} has a .parquet name but is not a Parquet file")
    problem = _what_binary(path, raw_head)
    if problem:
        raise DatasetReadError(problem)
    head = _read_head(path) if raw_head.startswith(b"\x1f\x8b") else raw_head
    if raw_head.startswith(b"\x1f\x8b"):
        problem = _what_binary(path, head)
        if problem:
            raise DatasetReadError(problem.replace(f"{path.name} is", f"{path.name} is gzip of", 1))
    fmt = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "csv"}.get(suffix, "")
    first = _first_char(head)
    if fmt == "jsonl" and first == "[" and _looks_like_json_array(head):
        return "json"
    if fmt:
        return fmt
    if first == "[":
        return "json"
    if first == "{":
        return "jsonl"
    if suffix == ".json":
        return "json"
    raise DatasetReadError(f"{path.name}: cannot tell the format; use a .jsonl, .json, .csv or .parquet file")


def _first_char(head: bytes) -> str:
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    return text[:1]


def _looks_like_json_array(head: bytes) -> bool:
    # A JSONL file may start with '[' only when its first line is a whole JSON value.
    first_line = re.split(rb"\r\n|\r|\n", head.lstrip(b"\xef\xbb\xbf \t\r\n"), maxsplit=1)[0]
    try:
        _decode(first_line)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return True
    return False


class _Guarded:
    """A byte stream whose decompression errors say what the file is."""

    def __init__(self, stream: IO[bytes], path: Path):
        self.stream, self.path = stream, path

    def read(self, size: int = -1) -> bytes:
        try:
            return self.stream.read(size)
        except (EOFError, OSError, zlib.error) as exc:
            raise DatasetReadError(f"{self.path.name} is a damaged or truncated gzip file ({exc}); "
                                   "compress it again, or give the uncompressed file") from None


def _open_binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(the stream of the file's bytes, decompressed when gzip; the raw file, for progress)."""
    raw = open(path, "rb")
    if raw.read(2) == b"\x1f\x8b":
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    raw.seek(0)
    return raw, raw


# --- records ----------------------------------------------------------------------------------


def iter_records(
    path: str | Path, fmt: str | None = None, progress: Callable[[int, int], None] | None = None
) -> Iterator[RawRecord]:
    """Yield every record of the file. ``progress(bytes_read, total_bytes)`` is called now and then."""
    path = _checked_path(Path(path))
    fmt = fmt or detect_format(path)
    reader = {"jsonl": _iter_jsonl, "json": _iter_json_array, "csv": _iter_csv, "parquet": _iter_parquet}.get(fmt)
    if reader is None:
        raise DatasetReadError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return reader(path, progress)


def iter_lines(path: str | Path, progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes without the line ending) for every physical line, blank ones included.

    CR-only files are split on CR. A line longer than ``MAX_RECORD_BYTES`` comes as a ``TooLong``
    holding its first bytes, so memory stays bounded whatever the file holds.
    """
    for first, lines in iter_line_blocks(path, progress):
        yield from enumerate(lines, start=first)


def iter_line_blocks(path: str | Path, progress: Callable[[int, int], None] | None = None
                     ) -> Iterator[tuple[int, list[bytes]]]:
    """The file's lines a block at a time: (number of the block's first line, its lines)."""
    path = Path(path)
    total = path.stat().st_size
    stream, raw = _open_binary(path)
    fh = _Guarded(stream, path)
    with raw, stream:
        block = fh.read(BLOCK_BYTES)
        if block.startswith(b"\xef\xbb\xbf"):
            block = block[3:]
        sep = b"\r" if b"\n" not in block[:SNIFF_BYTES] and b"\r" in block[:SNIFF_BYTES] else b"\n"
        number = 1
        carry: list[bytes] = []
        carried = 0
        skipping: TooLong | None = None
        while block:
            if skipping is not None:
                cut = block.find(sep)
                if cut < 0:
                    skipping.size += len(block)
                    block = fh.read(BLOCK_BYTES)
                    continue
                skipping.size += cut
                yield number, [skipping]
                number += 1
                skipping = None
                block = block[cut + 1:]
            parts = block.split(sep)
            if carry:
                carry.append(parts[0])
                parts[0] = b"".join(carry)
                carry, carried = [], 0
            last = parts.pop()
            if parts:
                yield number, parts
                number += len(parts)
            carry.append(last)
            carried += len(last)
            if carried > MAX_RECORD_BYTES:
                joined = b"".join(carry)
                skipping = TooLong(joined[:EXCERPT_CHARS * 4])
                skipping.size = len(joined)
                carry, carried = [], 0
            if progress is not None:
                progress(min(raw.tell(), total), total)
            block = fh.read(BLOCK_BYTES)
        if skipping is not None:
            yield number, [skipping]
        elif carried:
            yield number, [b"".join(carry)]
    if progress is not None:
        progress(total, total)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(text: bytes | str) -> tuple[Any, str | None, str | None]:
    """(value, error kind, reason) for one JSON text; never raises."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    try:
        return _decode(data), None, None
    except RecursionError:
        return None, "too_deep", "the record is nested too deeply (over 900 levels) to be a dataset record"
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    nul = data.find(b"\x00")
    if nul >= 0:
        return None, "nul_byte", f"the line contains a NUL byte (0x00) at position {nul + 1}"
    try:
        decoded = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, "not_utf8", (f"byte 0x{data[exc.start]:02X} at position {exc.start + 1} is not UTF-8 "
                                  "(is the file Latin-1 or Windows-1252? save it as UTF-8)")
    # Valid UTF-8 that msgspec refused: the standard parser also accepts numbers out of range
    # (1e400) and lone surrogate escapes, which the sanitizer then judges in the record.
    try:
        return json.loads(decoded, parse_constant=_refuse_constant), None, None
    except RecursionError:
        return None, "too_deep", "the record is nested too deeply (over 900 levels) to be a dataset record"
    except ValueError as exc:
        where = f" at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return None, "invalid_json", f"the line is not valid JSON ({reason}{where})"


def parse_line(number: int, line: bytes) -> RawRecord | None:
    """One JSONL line as a record, None for a blank line."""
    if type(line) is TooLong:
        return RawRecord(number, excerpt(line.decode("utf-8", "replace"), EXCERPT_CHARS), error="too_large",
                         detail=f"the line is {line.size / 1e6:,.1f} MB; a record may be at most "
                                f"{MAX_RECORD_BYTES // 1024**2} MB")
    text = line.strip()
    if not text:
        return None
    value, error, detail = parse_json(text)
    raw = text.decode("utf-8", "replace")
    if error:
        return RawRecord(number, raw, error=error, detail=detail)
    return RawRecord(number, raw, value)


def _iter_jsonl(path: Path, progress) -> Iterator[RawRecord]:
    for number, line in iter_lines(path, progress):
        record = parse_line(number, line)
        if record is not None:
            yield record


def _iter_json_array(path: Path, progress) -> Iterator[RawRecord]:
    fh, raw = _open_binary(path)
    with raw, fh:
        data = _Guarded(fh, path).read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    # Undecodable bytes become lone surrogates, so a bad byte is the problem of the record it sits in.
    text = data.decode("utf-8", "surrogateescape")
    del data
    total = len(text)
    decoder = json.JSONDecoder(parse_constant=_refuse_constant)
    pos = _skip_ws(text, 0)
    if text[pos:pos + 1] != "[":
        raise DatasetReadError(f"{path.name}: a JSON dataset must be an array of records")
    pos = _skip_ws(text, pos + 1)
    line = text.count("\n", 0, pos) + 1
    indent = pos - (text.rfind("\n", 0, pos) + 1)
    resync = re.compile(r"\n[ \t]{%d}(?=[{\[\"0-9\-tfn])" % indent)
    last = pos
    while pos < total and text[pos] != "]":
        line += text.count("\n", last, pos)
        last = pos
        try:
            value, end = decoder.raw_decode(text, pos)
            error = detail = None
        except RecursionError:
            value, end, error = None, None, "too_deep"
            detail = "the record is nested too deeply (over 900 levels) to be a dataset record"
        except ValueError as exc:
            value, end, error = None, None, "invalid_json"
            detail = f"the element is not valid JSON ({getattr(exc, 'msg', exc)})"
        if end is None:
            # Skip to the next element at the array's own indentation, and go on from there.
            match = resync.search(text, pos + 1)
            end = match.start() if match else total
            chunk = text[pos:end].rstrip().rstrip(",]").rstrip()
            yield RawRecord(line, _printable(chunk), error=error, detail=detail)
            pos = _skip_ws(text, end)
            continue
        chunk = text[pos:end]
        if _SURROGATE_ESCAPES.search(chunk):
            yield RawRecord(line, _printable(chunk), error="not_utf8",
                            detail="the record holds bytes that are not UTF-8 (save the file as UTF-8)")
        elif "\x00" in chunk:
            yield RawRecord(line, _printable(chunk), error="nul_byte", detail="the record contains a NUL byte (0x00)")
        else:
            yield RawRecord(line, chunk, value)
        pos = _skip_ws(text, end)
        if text[pos:pos + 1] == ",":
            pos = _skip_ws(text, pos + 1)
        if progress is not None:
            progress(pos, total)


def _printable(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\u0000")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _iter_csv(path: Path, progress) -> Iterator[RawRecord]:
    total = path.stat().st_size
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    binary, raw = _open_binary(path)
    try:
        yield from _csv_rows(path, binary, raw, total, progress)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DatasetReadError(f"{path.name} is a damaged or truncated gzip file ({exc}); "
                               "compress it again, or give the uncompressed file") from None
    if progress is not None:
        progress(total, total)


def _csv_rows(path: Path, binary, raw, total: int, progress) -> Iterator[RawRecord]:
    with raw, binary:
        fh = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")
        sample = fh.read(SNIFF_BYTES)
        fh.seek(0)
        delimiter = "\t" if _inner_suffix(path) == ".tsv" or sample.count("\t") > sample.count(",") else ","
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            header = []
        names = [_printable(h).strip().lower() for h in header]
        if not any(names):
            raise DatasetReadError(f"{path.name}: the CSV file has no header row")
        count = 0
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield RawRecord(start, "", error="invalid_csv", detail=_csv_reason(exc))
                continue
            if not row:
                continue  # a blank line, like a blank JSONL line
            cells = dict(zip(names, row))
            joined = "\x1f".join(row)
            if not joined.isascii() and _SURROGATE_ESCAPES.search(joined):
                yield RawRecord(start, _printable(json.dumps(cells, ensure_ascii=False)), error="not_utf8",
                                detail="the row holds bytes that are not UTF-8 (save the file as UTF-8)")
            elif "\x00" in joined:
                yield RawRecord(start, _printable(json.dumps(cells, ensure_ascii=False)), error="nul_byte",
                                detail="the row contains a NUL byte (0x00)")
            elif not any(cell.strip() for cell in row):
                yield RawRecord(start, delimiter * (len(row) - 1), error="empty_row", detail="the row is empty")
            else:
                yield RawRecord(start, json.dumps(cells, ensure_ascii=False), map_columns(cells))
            count += 1
            if progress is not None and count % 20000 == 0:
                progress(min(raw.tell(), total), total)


def _csv_reason(exc: csv.Error) -> str:
    text = str(exc)
    if "field larger than field limit" in text:
        return f"a cell is larger than {MAX_RECORD_BYTES // 1024**2} MB"
    return f"the row cannot be read as CSV ({text})"


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
            try:
                raw = json.dumps(row, ensure_ascii=False, default=str)
            except (ValueError, RecursionError):
                raw = excerpt(repr(row), EXCERPT_CHARS)
            yield RawRecord(number, raw, map_columns(row))
        if progress is not None:
            progress(number, total)


def map_columns(row: dict[str, Any]) -> dict[str, Any]:
    """A tabular row as a record: missing cells dropped, a JSON ``messages`` cell parsed.

    Empty cells stay (as ``""``), so the sanitizer can say "the answer is empty" rather than not
    recognising the row. It then reads question/answer, prompt/completion, instruction/input/output
    and text columns as it reads JSON keys.
    """
    record = {k: v for k, v in row.items() if v is not None and k}
    messages = record.get("messages")
    if isinstance(messages, str):
        if messages.strip():
            value, error, _ = parse_json(messages)
            if error is None:
                record["messages"] = value
        else:
            del record["messages"]
    return record
