"""Turn any supported record into a clean chat record, and account for every record read.

The per-message rules are the reference sanitizer's (roles trimmed and lower-cased; aliases mapped;
content from strings, lists of parts or objects; the first message repaired when its question sits
in the role field). On top of them: a bad line never aborts the run (whatever is wrong with it: not
JSON, not UTF-8, a NUL, nesting, size, a lone surrogate), conversations end with the assistant,
consecutive turns of one role are merged, a misplaced system message is removed, and exact
duplicates are dropped. Every drop and repair is recorded with its line number; a format conversion
(question/answer → messages) is counted apart, since nothing was wrong with the record.

The hot path is msgspec: a record no rule changes is decoded into a typed struct, checked in one
pass and encoded again, without building dicts; everything else goes through the full rules.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

import msgspec

from legalft.data.outputs import atomic_output, check_outputs
from legalft.data.readers import RawRecord, detect_format, excerpt, iter_line_blocks, iter_records, parse_line

VALID_ROLES = frozenset({"system", "user", "assistant"})
ROLE_ALIASES = {
    "human": "user", "question": "user", "prompt": "user",
    "answer": "assistant", "response": "assistant", "bot": "assistant", "model": "assistant",
}

# Kinds of repair to a kept record, of conversion, and of drop, in the order the report lists them.
REPAIR_KINDS = (
    "mapped_role_alias",
    "promoted_invalid_role_to_user_content",
    "coerced_unknown_role_to_user",
    "dropped_invalid_message",
    "removed_misplaced_system",
    "merged_consecutive_roles",
    "trimmed_trailing_messages",
)
CONVERSION_KINDS = (
    "converted_from_prompt_completion",
    "converted_from_alpaca",
    "converted_from_question_answer",
)
DROP_KINDS = (
    "invalid_json",
    "not_utf8",
    "nul_byte",
    "too_deep",
    "too_large",
    "invalid_unicode",
    "invalid_csv",
    "empty_row",
    "not_an_object",
    "unrecognized_record",
    "invalid_messages",
    "empty_text",
    "empty_question",
    "empty_answer",
    "missing_user_or_assistant",
    "duplicate",
)
RECORD_FORMATS = ("messages", "prompt_completion", "alpaca", "question_answer", "text")
MAX_ISSUES = 1000
MAX_EXAMPLES = 50
SANITIZER_VERSION = 2
"""Bumped when a rule changes, so results stored by content hash are not reused across versions."""
_encode = msgspec.json.Encoder().encode
# (first key, second key, format, what a person calls each side)
_PAIRS = (
    ("prompt", "completion", "prompt_completion", ("prompt", "completion")),
    ("instruction", "output", "alpaca", ("instruction", "output")),
    ("question", "answer", "question_answer", ("question", "answer")),
)


@dataclass(slots=True)
class Issue:
    """One thing the sanitizer did or found, located by line."""

    line: int
    kind: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "kind": self.kind, "message": self.message}


@dataclass
class SanitizeReport:
    """What happened to every record read. ``kept + dropped == total`` always.

    ``repaired`` counts kept records a rule changed; ``doubtful`` those among them whose repair may
    be wrong (check them); ``converted`` records only turned from another format into messages.
    """

    total_records: int = 0
    kept_records: int = 0
    dropped_records: int = 0
    repaired_records: int = 0
    doubtful_records: int = 0
    converted_records: int = 0
    repair_counts: Counter = field(default_factory=Counter)
    conversion_counts: Counter = field(default_factory=Counter)
    drop_counts: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)
    issue_count: int = 0
    repaired_examples: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    """One message about the whole file when its records say it is something else (plain text)."""

    def add_issue(self, line: int, kind: str, message: str) -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(line, kind, message))

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_records": self.total_records,
            "kept_records": self.kept_records,
            "dropped_records": self.dropped_records,
            "repaired_records": self.repaired_records,
            "doubtful_records": self.doubtful_records,
            "converted_records": self.converted_records,
            "repair_counts": dict(self.repair_counts),
            "conversion_counts": dict(self.conversion_counts),
            "drop_counts": dict(self.drop_counts),
            "formats": dict(self.formats),
            "summary": self.summary,
            "issue_count": self.issue_count,
            "issues": [i.to_dict() for i in self.issues],
        }


@dataclass(slots=True)
class Outcome:
    """The result of sanitizing one record: the clean record, or why it was dropped."""

    record: dict[str, Any] | None
    format: str | None
    repairs: list[tuple[str, str]]  # (kind, message)
    drop: tuple[str, str] | None = None  # (kind, message)
    conversion: str | None = None
    """The conversion kind when the record came in another format (not a repair)."""
    doubtful: str | None = None
    """Why a repair of this record may be wrong, when it may."""


def content_text(content: Any, _depth: int = 0) -> str:
    """The text of a message's content: a string, a list of parts, or an object (text/content/message)."""
    if isinstance(content, str):
        return content.strip()
    if _depth > 8:  # deeper than any real content; never recurse without bound
        return ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
        return "\n".join(p.strip() for p in parts if p.strip()).strip()
    if isinstance(content, dict):
        for key in ("text", "content", "message"):
            if key in content:
                return content_text(content[key], _depth + 1)
        return ""
    if isinstance(content, (int, float)) and not isinstance(content, bool):
        return str(content)
    return ""


def _clean_as_is(messages: list[Any]) -> list[dict[str, str]] | None:
    """The messages, when no rule would change them (the common case, checked in one pass); else None."""
    out = []
    previous = None
    for index, message in enumerate(messages):
        if type(message) is not dict:
            return None
        role = message.get("role")
        content = message.get("content")
        if (role not in VALID_ROLES or role == previous or type(content) is not str or not content
                or content[0].isspace() or content[-1].isspace() or (role == "system" and index)):
            return None
        out.append({"role": role, "content": content})
        previous = role
    if previous != "assistant":
        return None
    return out


def _looks_like_fragment(text: str) -> bool:
    """A promoted question that starts mid-word or mid-sentence ("u ed subjects of …") is doubtful."""
    first = text[:1]
    return not (first.isupper() or first.isdigit() or first in "\"'“‘(") or len(text.split()) < 3


def sanitize_messages(messages: list[Any]) -> tuple[list[dict[str, str]], list[tuple[str, str]]]:
    """Apply the per-message and per-conversation rules; returns (messages, repairs)."""
    fast = _clean_as_is(messages)
    if fast is not None:
        return fast, []
    repairs: list[tuple[str, str]] = []
    kept: list[dict[str, str]] = []
    for index, message in enumerate(messages):
        number = index + 1
        if not isinstance(message, dict):
            repairs.append(("dropped_invalid_message", f"message {number} is not an object (dropped)"))
            continue
        raw_role = message.get("role")
        role_text = raw_role.strip() if isinstance(raw_role, str) else ""
        role = role_text.lower()
        content = content_text(message.get("content"))
        if role in VALID_ROLES and content:
            kept.append({"role": role, "content": content})
        elif role in ROLE_ALIASES and content:
            mapped = ROLE_ALIASES[role]
            kept.append({"role": mapped, "content": content})
            repairs.append(("mapped_role_alias", f"message {number} has role '{role_text}' (mapped to {mapped})"))
        elif index == 0 and role_text and not content and role not in VALID_ROLES and role not in ROLE_ALIASES:
            # The reference data's malformed record: the question was written into the role field.
            kept.append({"role": "user", "content": role_text})
            repairs.append((
                "promoted_invalid_role_to_user_content",
                f"message {number} has no content and its role holds text (moved into a user message)",
            ))
        elif index == 0 and content:
            kept.append({"role": "user", "content": content})
            shown = f"'{excerpt(role_text, 40)}'" if role_text else "no role"
            repairs.append(("coerced_unknown_role_to_user", f"message {number} has {shown} (treated as user)"))
        else:
            reason = "has no content" if not content else f"has unknown role '{excerpt(role_text, 40)}'"
            repairs.append(("dropped_invalid_message", f"message {number} {reason} (dropped)"))

    # A system prompt belongs first; later ones break most chat templates.
    cleaned: list[dict[str, str]] = []
    for index, message in enumerate(kept):
        if message["role"] == "system" and index > 0:
            repairs.append(("removed_misplaced_system", f"a system message at position {index + 1} was removed"))
            continue
        cleaned.append(message)

    merged: list[dict[str, str]] = []
    for message in cleaned:
        if merged and merged[-1]["role"] == message["role"]:
            merged[-1] = {"role": message["role"], "content": merged[-1]["content"] + "\n\n" + message["content"]}
            repairs.append(("merged_consecutive_roles", f"two consecutive {message['role']} messages were merged"))
        else:
            merged.append(message)

    last_assistant = max((i for i, m in enumerate(merged) if m["role"] == "assistant"), default=-1)
    if 0 <= last_assistant < len(merged) - 1:
        removed = len(merged) - 1 - last_assistant
        repairs.append((
            "trimmed_trailing_messages",
            f"{removed} message(s) after the last assistant message were removed",
        ))
        merged = merged[: last_assistant + 1]
    return merged, repairs


def _filled(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, (list, dict)):
        return bool(value)
    return True


def _pair_messages(fmt: str, record: dict[str, Any]) -> list[Any]:
    if fmt == "prompt_completion":
        prompt, completion = record["prompt"], record["completion"]
        return (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]) + (
            completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}])
    if fmt == "alpaca":
        instruction = content_text(record["instruction"])
        extra = content_text(record.get("input"))
        user = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]
        if _filled(record.get("system")):
            messages.insert(0, {"role": "system", "content": record["system"]})
        return messages
    return [{"role": "user", "content": record["question"]}, {"role": "assistant", "content": record["answer"]}]


def _half_pair(record: dict[str, Any]) -> tuple[str, str] | None:
    """The drop for a record with one side of a known pair and the other empty or missing."""
    for first, second, _, (first_name, second_name) in _PAIRS:
        if first not in record and second not in record:
            continue
        state = {name: ("missing" if key not in record else "empty" if not _filled(record[key]) else "")
                 for key, name in ((first, first_name), (second, second_name))}
        if state[first_name] and state[second_name]:
            return "empty_question", f"the {first_name} and the {second_name} are {state[second_name]}"
        if state[second_name]:
            return "empty_answer", f"the {second_name} is {state[second_name]}"
        return "empty_question", f"the {first_name} is {state[first_name]}"
    return None


def sanitize_record(value: Any) -> Outcome:
    """Sanitize one parsed record (a pure function: no counting, no I/O)."""
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        return Outcome(None, None, [], ("not_an_object", f"the line is JSON but not an object ({kind})"))
    conversion = None
    if "messages" in value:
        fmt, payload = "messages", value["messages"]
    else:
        fmt = next((f for a, b, f, _ in _PAIRS if _filled(value.get(a)) and _filled(value.get(b))), "")
        if fmt:
            payload, conversion = _pair_messages(fmt, value), f"converted_from_{fmt}"
        elif _filled(value.get("text")):
            return Outcome({"text": content_text(value["text"])}, "text", []) if content_text(value["text"]) else \
                Outcome(None, "text", [], ("empty_text", "the text record is empty"))
        elif (half := _half_pair(value)) is not None:
            return Outcome(None, None, [], half)
        elif "text" in value:
            return Outcome(None, "text", [], ("empty_text", "the text record is empty"))
        else:
            keys = ", ".join(excerpt(k, 30) for k in sorted(map(str, value))[:6]) or "no keys"
            return Outcome(None, None, [], (
                "unrecognized_record",
                f"no known format (keys: {keys}); expected messages, prompt+completion, "
                "instruction+output, question+answer or text",
            ))
    if not isinstance(payload, list):
        return Outcome(None, fmt, [], ("invalid_messages", "'messages' is not a list"))
    messages, repairs = sanitize_messages(payload)
    roles = {m["role"] for m in messages}
    if "user" not in roles or "assistant" not in roles:
        missing = " and ".join(r for r in ("user", "assistant") if r not in roles)
        return Outcome(None, fmt, repairs, ("missing_user_or_assistant", f"no {missing} message left"), conversion)
    doubtful = None
    if repairs and repairs[0][0] == "promoted_invalid_role_to_user_content" and _looks_like_fragment(messages[0]["content"]):
        doubtful = (f"the question moved out of the role field looks like a fragment "
                    f"('{excerpt(messages[0]['content'], 50)}'): check it, or drop the record")
    return Outcome({"messages": messages}, fmt, repairs, None, conversion, doubtful)


_READ_ERRORS = {
    "invalid_json": "the line is not valid JSON",
    "not_utf8": "the line is not valid UTF-8",
    "nul_byte": "the line contains a NUL byte",
    "too_deep": "the record is nested too deeply",
    "too_large": "the record is too large",
    "invalid_csv": "the row cannot be read as CSV",
    "empty_row": "the row is empty",
}


def bounded(value: Any, depth: int = 0) -> Any:
    """A copy of a parsed value small enough for a report: short strings, few items, shallow."""
    if isinstance(value, str):
        text = value if len(value) <= 500 else value[:500] + f"… ({len(value):,} characters)"
        return text.encode("utf-8", "replace").decode("utf-8")
    if depth >= 6 and isinstance(value, (list, dict)):
        return "…"
    if isinstance(value, list):
        return [bounded(v, depth + 1) for v in value[:50]] + (["…"] if len(value) > 50 else [])
    if isinstance(value, dict):
        return {bounded(str(k), depth + 1): bounded(v, depth + 1) for k, v in list(value.items())[:50]}
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return str(value)
    return value


class DuplicateIndex:
    """The keys of the records kept so far (the duplicate rule), in bounded memory whatever the file's size.

    Three tiers, their keys disjoint, each checked only once the one before it is full:

    1. a set of the newest ``spill_keys`` keys (about 60 bytes a key, the fast check);
    2. one sorted int64 array (8 bytes a key) the set is folded into, up to ``array_keys`` keys;
    3. past that, SQLite's private temporary database (``sqlite3.connect("")``: on disk in the temp
       folder, gone when closed or when the process dies) with a page cache of ``CACHE_KIB``, in front
       of which a bitmap of ``2**FILTER_BITS`` bits answers "not there" for most keys without a query.

    A 1,000,000-record file stays in the set (validate peaks at 121 MB). Past the array's 4 million keys
    memory stops growing (the disk holds about 15 bytes a key); ``bench/validate.py`` prints the peak.
    """

    SPILL_KEYS = 1_000_000
    ARRAY_KEYS = 4_000_000
    FILTER_BITS = 28  # 32 MiB
    CACHE_KIB = 16 * 1024
    _INSERT_CHUNK = 65_536

    def __init__(self, spill_keys: int | None = None, array_keys: int | None = None) -> None:
        self.recent: set[int] = set()
        self.spill_keys = spill_keys or self.SPILL_KEYS
        self.array_keys = array_keys or self.ARRAY_KEYS
        self._folded: Any = None  # numpy.ndarray (sorted int64) once the set has been folded
        self._disk: sqlite3.Connection | None = None
        self._disk_keys = 0
        self._filter: memoryview | None = None
        self._filter_mask = (1 << self.FILTER_BITS) - 1

    def __len__(self) -> int:
        return len(self.recent) + (0 if self._folded is None else int(self._folded.size)) + self._disk_keys

    def __contains__(self, key: int) -> bool:
        return key in self.recent or self.folded_has(key)

    def __enter__(self) -> DuplicateIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_folded(self) -> bool:
        return self._folded is not None or self._disk is not None

    @property
    def on_disk(self) -> int:
        """How many keys the disk tier holds."""
        return self._disk_keys

    def folded_has(self, key: int) -> bool:
        """Whether ``key`` is in the array or on disk (the set is the caller's to check first)."""
        folded = self._folded
        if folded is not None:
            at = int(folded.searchsorted(key))
            if at < folded.size and int(folded[at]) == key:
                return True
        if self._disk is None:
            return False
        bit = key & self._filter_mask
        if not self._filter[bit >> 3] >> (bit & 7) & 1:
            return False
        return self._disk.execute("SELECT 1 FROM seen WHERE key = ?", (key,)).fetchone() is not None

    def add(self, key: int) -> None:
        self.recent.add(key)
        if len(self.recent) >= self.spill_keys:
            self.fold()

    def fold(self) -> None:
        """Move the set's keys into the sorted array, and the array to disk first when it is full."""
        if not self.recent:
            return
        import numpy as np

        new = np.fromiter(self.recent, dtype=np.int64, count=len(self.recent))
        self.recent.clear()
        new.sort()
        folded = self._folded
        if folded is not None and folded.size + new.size > self.array_keys:
            self._to_disk(folded)
            folded = self._folded = None
        if folded is None:
            self._folded = new
        else:
            merged = np.concatenate((folded, new))
            self._folded = None
            del folded
            merged.sort(kind="stable")  # two sorted runs: a linear merge
            self._folded = merged

    def _to_disk(self, keys: Any) -> None:
        import numpy as np

        if self._disk is None:
            self._disk = sqlite3.connect("")  # private, on disk, deleted on close (and unlinked at once)
            self._disk.execute(f"PRAGMA cache_size = -{int(self.CACHE_KIB)}")
            self._disk.execute("PRAGMA journal_mode = OFF")
            self._disk.execute("PRAGMA synchronous = OFF")
            self._disk.execute("CREATE TABLE seen (key INTEGER PRIMARY KEY)")
            self._filter_array = np.zeros(1 << (self.FILTER_BITS - 3), dtype=np.uint8)
            self._filter = memoryview(self._filter_array)
        bits = keys & self._filter_mask
        np.bitwise_or.at(self._filter_array, bits >> 3, np.left_shift(1, bits & 7).astype(np.uint8))
        del bits
        for start in range(0, keys.size, self._INSERT_CHUNK):
            self._disk.executemany("INSERT INTO seen VALUES (?)",
                                   zip(keys[start:start + self._INSERT_CHUNK].tolist()))
        self._disk.commit()
        self._disk_keys += int(keys.size)

    def close(self) -> None:
        """Drop the disk tier (its file goes with the connection)."""
        if self._disk is not None:
            self._disk.close()
            self._disk = None
            self._filter = None
            self._filter_array = None


class Sanitizer:
    """Sanitizes a stream of records, keeping the report and the duplicate index."""

    def __init__(self) -> None:
        self.report = SanitizeReport()
        self.seen = DuplicateIndex()

    def process(self, raw: RawRecord) -> tuple[bytes | None, Outcome]:
        """Returns (the clean JSONL line, without its newline, or None when dropped; the outcome)."""
        report = self.report
        report.total_records += 1
        if raw.error:
            outcome = Outcome(None, None, [], (raw.error, raw.detail or _READ_ERRORS.get(raw.error, raw.error)))
        else:
            outcome = sanitize_record(raw.value)
        line = None
        if outcome.drop is None:
            try:
                line = _encode(outcome.record)
            except UnicodeEncodeError:
                outcome.drop = ("invalid_unicode", "the record holds a \\uD800-\\uDFFF escape without its pair "
                                "(a lone surrogate), which is not text")
            else:
                key = record_key(outcome.record)
                if key in self.seen:
                    outcome.drop = ("duplicate", "identical to an earlier record after cleaning")
                    line = None
                else:
                    self.seen.add(key)
        if outcome.format:
            report.formats[outcome.format] += 1
        if outcome.drop is not None:
            kind, message = outcome.drop
            report.dropped_records += 1
            report.drop_counts[kind] += 1
            report.add_issue(raw.line, kind, f"line {raw.line}: {message} (record dropped)")
            return None, outcome
        report.kept_records += 1
        if outcome.conversion:
            report.converted_records += 1
            report.conversion_counts[outcome.conversion] += 1
        if outcome.repairs:
            if outcome.doubtful:
                report.doubtful_records += 1
                report.add_issue(raw.line, "doubtful_repair", f"line {raw.line}: {outcome.doubtful}")
            else:
                report.repaired_records += 1
            for kind, message in outcome.repairs:
                report.repair_counts[kind] += 1
                report.add_issue(raw.line, kind, f"line {raw.line}: {message}")
            if len(report.repaired_examples) < MAX_EXAMPLES:
                report.repaired_examples.append({"line": raw.line, "before": bounded(raw.value),
                                                 "after": bounded(outcome.record), "doubtful": outcome.doubtful})
        return line, outcome

    def finish(self, fmt: str | None = None) -> SanitizeReport:
        """Say what the whole file is when no record read as JSON at all (prose saved as .jsonl)."""
        report = self.report
        unreadable = sum(report.drop_counts[k] for k in ("invalid_json", "not_utf8", "nul_byte"))
        if report.total_records and not report.kept_records and unreadable == report.total_records and fmt == "jsonl":
            report.summary = ("this looks like plain text, not JSONL: no line is a JSON record. "
                              "Each line must be one JSON object such as {\"messages\": [...]}; "
                              "to turn statutory text into Q&A, use Convert legislation (legalft data convert)")
        return report


def sanitize_records(records: Iterable[RawRecord]) -> tuple[list[dict[str, Any]], SanitizeReport]:
    """Sanitize records in memory (for small inputs and tests); returns (clean records, report)."""
    sanitizer = Sanitizer()
    clean = []
    for raw in records:
        _, outcome = sanitizer.process(raw)
        if outcome.drop is None:
            clean.append(outcome.record)
    return clean, sanitizer.finish()


def iter_values(values: Iterable[Any]) -> Iterator[RawRecord]:
    """Wrap parsed values as records numbered from 1 (for callers that already hold objects)."""
    for number, value in enumerate(values, start=1):
        try:
            raw = json.dumps(value, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            raw = excerpt(repr(value), 200)
        yield RawRecord(number, raw, value)


# --- the hot path -------------------------------------------------------------------------------


# Unknown fields are refused, so a record that decodes is exactly {"messages": [{"role", "content"}...]}:
# when no rule changes it, its line is already its clean form and is written as it stands.
class _Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["system", "user", "assistant"]
    content: str


class _Conversation(msgspec.Struct, forbid_unknown_fields=True):
    messages: list[_Message]


_decode_conversation = msgspec.json.Decoder(_Conversation).decode
_FAST_FAILURES = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def _fast_key(messages: list[_Message]) -> int | None:
    """The duplicate key of messages no rule changes (the one-pass check of the fast path), else None."""
    if not messages or messages[-1].role != "assistant":
        return None
    previous = ""
    has_user = False
    pairs = []
    for message in messages:
        role, content = message.role, message.content
        if role == previous or not content or content.strip() is not content:
            return None
        if role == "user":
            has_user = True
        elif role == "system" and previous:
            return None
        pairs.append((role, content))
        previous = role
    return hash(tuple(pairs)) if has_user else None


def record_key(record: dict[str, Any]) -> int:
    """The duplicate key of a clean record: its roles and texts, whatever the JSON's spacing or escapes."""
    if "messages" in record:
        return hash(tuple([(m["role"], m["content"]) for m in record["messages"]]))
    return hash(("text", record["text"]))


def _reject_line(raw: RawRecord, outcome: Outcome) -> bytes:
    kind, message = outcome.drop
    return _encode({"line": raw.line, "reason": kind, "message": message,
                    "raw": raw.raw.encode("utf-8", "replace").decode("utf-8")})


def sanitize_file(
    input_path: str | Path,
    out_path: str | Path,
    rejects_path: str | Path | None = None,
    *,
    fmt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SanitizeReport:
    """Stream ``input_path`` into a clean JSONL file, and dropped records into ``rejects_path``.

    An output that is the input or the other output is refused (``OutputPathError``) before anything
    is opened for writing. Both outputs are written beside their targets and renamed into place when
    complete. Raises ``DatasetReadError`` only when the file cannot be read as a dataset at all.
    """
    input_path, out_path = Path(input_path), Path(out_path)
    check_outputs({"the input file": input_path}, {"the clean file": out_path, "the rejects file": rejects_path})
    fmt = fmt or detect_format(input_path)
    sanitizer = Sanitizer()
    report = sanitizer.report
    dropped = 0
    with sanitizer.seen, atomic_output(out_path) as out:
        rejects_cm = atomic_output(rejects_path) if rejects_path else None
        rejects = rejects_cm.__enter__() if rejects_cm else None
        try:
            if fmt == "jsonl":
                _sanitize_lines(input_path, sanitizer, out, rejects, progress)
            else:
                buffer: list[bytes] = []
                for raw in iter_records(input_path, fmt=fmt, progress=progress):
                    line, outcome = sanitizer.process(raw)
                    if line is not None:
                        buffer.append(line)
                        if len(buffer) >= 2048:
                            out.write(b"\n".join(buffer) + b"\n")
                            buffer.clear()
                    elif rejects is not None:
                        rejects.write(_reject_line(raw, outcome) + b"\n")
                if buffer:
                    out.write(b"\n".join(buffer) + b"\n")
            dropped = report.dropped_records
        except BaseException as exc:
            if rejects_cm is not None:
                rejects_cm.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if rejects_cm is not None:
            rejects_cm.__exit__(None, None, None)
    if rejects_path and not dropped:
        Path(rejects_path).unlink(missing_ok=True)  # nothing was dropped: no empty (or stale) rejects file
    return sanitizer.finish(fmt)


def _sanitize_lines(path: Path, sanitizer: Sanitizer, out, rejects, progress) -> None:
    """The JSONL loop: typed decode and a one-pass check for the common record, the full rules for the rest."""
    report = sanitizer.report
    index = sanitizer.seen
    decode, fast_key, failures = _decode_conversation, _fast_key, _FAST_FAILURES
    fast = 0
    for first, lines in iter_line_blocks(path, progress):
        if len(index.recent) >= index.spill_keys:  # before a block (none after the last): the loop adds directly
            index.fold()
        # The set of the newest keys is checked inline; the folded array only once there is one.
        seen, folded_has = index.recent, (index.folded_has if index.has_folded else None)
        kept: list[bytes] = []
        for number, line in enumerate(lines, start=first):
            try:
                key = fast_key(decode(line).messages)
            except failures:
                key = None
            if key is not None:
                if key not in seen and (folded_has is None or not folded_has(key)):
                    seen.add(key)
                    fast += 1
                    kept.append(line.strip())
                    continue
            raw = parse_line(number, line)
            if raw is None:
                continue  # a blank line: numbered, not counted
            clean, outcome = sanitizer.process(raw)
            if folded_has is None and index.has_folded:  # the full rules' add folded the set just now
                folded_has = index.folded_has
            if clean is not None:
                kept.append(clean)
            elif rejects is not None:
                rejects.write(_reject_line(raw, outcome) + b"\n")
        if kept:
            kept.append(b"")
            out.write(b"\n".join(kept))
    report.total_records += fast
    report.kept_records += fast
    report.formats["messages"] += fast
