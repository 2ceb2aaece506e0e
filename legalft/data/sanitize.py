"""Turn any supported record into a clean chat record, and account for every record read.

The per-message rules are the reference sanitizer's (roles trimmed and lower-cased; aliases mapped;
content from strings, lists of parts or objects; the first message repaired when its question sits
in the role field). On top of them: a bad line never aborts the run, conversations end with the
assistant, consecutive turns of one role are merged, a misplaced system message is removed, and
exact duplicates are dropped. Every drop and repair is recorded with its line number.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from legalft.data.readers import RawRecord, iter_records

VALID_ROLES = frozenset({"system", "user", "assistant"})
ROLE_ALIASES = {
    "human": "user", "question": "user", "prompt": "user",
    "answer": "assistant", "response": "assistant", "bot": "assistant", "model": "assistant",
}

# Kinds of repair to a kept record, and of drop, in the order the report lists them.
REPAIR_KINDS = (
    "converted_from_prompt_completion",
    "converted_from_alpaca",
    "converted_from_question_answer",
    "mapped_role_alias",
    "promoted_invalid_role_to_user_content",
    "coerced_unknown_role_to_user",
    "dropped_invalid_message",
    "removed_misplaced_system",
    "merged_consecutive_roles",
    "trimmed_trailing_messages",
)
DROP_KINDS = (
    "invalid_json",
    "not_an_object",
    "unrecognized_record",
    "invalid_messages",
    "empty_text",
    "missing_user_or_assistant",
    "duplicate",
)
RECORD_FORMATS = ("messages", "prompt_completion", "alpaca", "question_answer", "text")
MAX_ISSUES = 1000
_encode = json.JSONEncoder(ensure_ascii=False).encode
MAX_EXAMPLES = 50


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
    """What happened to every record read. ``kept + dropped == total`` always."""

    total_records: int = 0
    kept_records: int = 0
    dropped_records: int = 0
    repaired_records: int = 0
    repair_counts: Counter = field(default_factory=Counter)
    drop_counts: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    issues: list[Issue] = field(default_factory=list)
    issue_count: int = 0
    repaired_examples: list[dict[str, Any]] = field(default_factory=list)

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
            "repair_counts": dict(self.repair_counts),
            "drop_counts": dict(self.drop_counts),
            "formats": dict(self.formats),
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


def content_text(content: Any) -> str:
    """The text of a message's content: a string, a list of parts, or an object (text/content/message)."""
    if isinstance(content, str):
        return content.strip()
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
                return content_text(content[key])
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
            shown = f"'{role_text}'" if role_text else "no role"
            repairs.append(("coerced_unknown_role_to_user", f"message {number} has {shown} (treated as user)"))
        else:
            reason = "has no content" if not content else f"has unknown role '{role_text}'"
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


def _to_messages(record: dict[str, Any]) -> tuple[str, Any, list[tuple[str, str]]]:
    """Recognise the record's format; returns (format, messages or text, conversion repairs)."""
    if "messages" in record:
        return "messages", record["messages"], []
    if "prompt" in record and "completion" in record:
        prompt, completion = record["prompt"], record["completion"]
        messages = (prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]) + (
            completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
        )
        return "prompt_completion", messages, [
            ("converted_from_prompt_completion", "prompt/completion record converted to messages")
        ]
    if "instruction" in record and "output" in record:
        instruction = content_text(record["instruction"])
        extra = content_text(record.get("input"))
        user = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": record["output"]}]
        if record.get("system"):
            messages.insert(0, {"role": "system", "content": record["system"]})
        return "alpaca", messages, [("converted_from_alpaca", "Alpaca record converted to messages")]
    if "question" in record and "answer" in record:
        messages = [{"role": "user", "content": record["question"]}, {"role": "assistant", "content": record["answer"]}]
        return "question_answer", messages, [
            ("converted_from_question_answer", "question/answer record converted to messages")
        ]
    if "text" in record:
        return "text", record["text"], []
    return "", None, []


def sanitize_record(value: Any) -> Outcome:
    """Sanitize one parsed record (a pure function: no counting, no I/O)."""
    if not isinstance(value, dict):
        kind = type(value).__name__ if value is not None else "null"
        return Outcome(None, None, [], ("not_an_object", f"the line is JSON but not an object ({kind})"))
    fmt, payload, repairs = _to_messages(value)
    if not fmt:
        keys = ", ".join(sorted(map(str, value))[:6]) or "no keys"
        return Outcome(None, None, [], (
            "unrecognized_record",
            f"no known format (keys: {keys}); expected messages, prompt+completion, "
            "instruction+output, question+answer or text",
        ))
    if fmt == "text":
        text = content_text(payload)
        if not text:
            return Outcome(None, fmt, [], ("empty_text", "the text record is empty"))
        return Outcome({"text": text}, fmt, [])
    if not isinstance(payload, list):
        return Outcome(None, fmt, [], ("invalid_messages", "'messages' is not a list"))
    messages, message_repairs = sanitize_messages(payload)
    repairs += message_repairs
    roles = {m["role"] for m in messages}
    if "user" not in roles or "assistant" not in roles:
        missing = " and ".join(r for r in ("user", "assistant") if r not in roles)
        return Outcome(None, fmt, repairs, ("missing_user_or_assistant", f"no {missing} message left"))
    return Outcome({"messages": messages}, fmt, repairs)


class Sanitizer:
    """Sanitizes a stream of records, keeping the report and the duplicate index."""

    def __init__(self) -> None:
        self.report = SanitizeReport()
        self._seen: set[int] = set()

    def process(self, raw: RawRecord) -> tuple[str | None, Outcome]:
        """Returns (the clean JSONL line or None when dropped, the outcome)."""
        report = self.report
        report.total_records += 1
        if raw.error:
            message = "the line is not valid JSON" if raw.error == "invalid_json" else "the line is not valid UTF-8"
            outcome = Outcome(None, None, [], ("invalid_json", message))
        else:
            outcome = sanitize_record(raw.value)
        line = None
        if outcome.drop is None:
            line = _encode(outcome.record)
            key = hash(line)
            if key in self._seen:
                outcome.drop = ("duplicate", "identical to an earlier record after cleaning")
                line = None
            else:
                self._seen.add(key)
        if outcome.format:
            report.formats[outcome.format] += 1
        if outcome.drop is not None:
            kind, message = outcome.drop
            report.dropped_records += 1
            report.drop_counts[kind] += 1
            report.add_issue(raw.line, kind, f"line {raw.line}: {message} (record dropped)")
            return None, outcome
        report.kept_records += 1
        if outcome.repairs:
            report.repaired_records += 1
            for kind, message in outcome.repairs:
                report.repair_counts[kind] += 1
                report.add_issue(raw.line, kind, f"line {raw.line}: {message}")
            if len(report.repaired_examples) < MAX_EXAMPLES:
                report.repaired_examples.append({"line": raw.line, "before": raw.value, "after": outcome.record})
        return line, outcome


def sanitize_records(records: Iterable[RawRecord]) -> tuple[list[dict[str, Any]], SanitizeReport]:
    """Sanitize records in memory (for small inputs and tests); returns (clean records, report)."""
    sanitizer = Sanitizer()
    clean = []
    for raw in records:
        _, outcome = sanitizer.process(raw)
        if outcome.drop is None:
            clean.append(outcome.record)
    return clean, sanitizer.report


def iter_values(values: Iterable[Any]) -> Iterator[RawRecord]:
    """Wrap parsed values as records numbered from 1 (for callers that already hold objects)."""
    for number, value in enumerate(values, start=1):
        yield RawRecord(number, json.dumps(value, ensure_ascii=False, default=str), value)


def sanitize_file(
    input_path: str | Path,
    out_path: str | Path,
    rejects_path: str | Path | None = None,
    *,
    fmt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SanitizeReport:
    """Stream ``input_path`` into a clean JSONL file, and dropped records into ``rejects_path``.

    Raises ``DatasetReadError`` only when the file cannot be read as a dataset at all.
    """
    records = iter_records(input_path, fmt=fmt, progress=progress)
    sanitizer = Sanitizer()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejects = open(rejects_path, "w", encoding="utf-8") if rejects_path else None
    try:
        with open(out_path, "w", encoding="utf-8") as out:
            buffer: list[str] = []
            for raw in records:
                line, outcome = sanitizer.process(raw)
                if line is not None:
                    buffer.append(line)
                    if len(buffer) >= 2048:
                        out.write("\n".join(buffer) + "\n")
                        buffer.clear()
                elif rejects is not None:
                    kind, message = outcome.drop
                    rejects.write(json.dumps(
                        {"line": raw.line, "reason": kind, "message": message, "raw": raw.raw},
                        ensure_ascii=False,
                    ) + "\n")
            if buffer:
                out.write("\n".join(buffer) + "\n")
    finally:
        if rejects is not None:
            rejects.close()
            if not sanitizer.report.dropped_records:
                Path(rejects_path).unlink(missing_ok=True)  # nothing was dropped: no empty file left
    return sanitizer.report
