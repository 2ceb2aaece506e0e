"""Dataset statistics: characters and tokens per role and per record, lengths, turns, Acts cited.

Tokens are counted with a real tokenizer when one is named (a local folder or a hub id, loaded on
first use), otherwise approximated as characters ÷ 4 and labelled as such.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

from legalft.data.readers import iter_records
from legalft.data.sanitize import sanitize_record

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0
# Chat templates add a few tokens around each message (role markers, separators).
MESSAGE_OVERHEAD_TOKENS = 4
APPROXIMATION_LABEL = f"approximate: characters ÷ {CHARS_PER_TOKEN:g}, +{MESSAGE_OVERHEAD_TOKENS} per message"

ACT_PATTERN = re.compile(
    r"\b((?:[A-Z][\w’'\-]*)(?:\s+(?:[A-Z][\w’'\-,]*|of|and|the|for|to|in|on|with|etc\.))*"
    r"\s+Act(?:\s+\((?:Northern Ireland|Scotland|Wales|Amendment)\))?\s+(?:1[5-9]|20)\d{2})\b"
)


def cited_acts(text: str) -> list[str]:
    """Acts named in the text ("Companies Act 2006"), in order of appearance."""
    acts = []
    for match in ACT_PATTERN.finditer(text):
        name = re.sub(r"\s+", " ", match.group(1))
        name = re.sub(r"^(?:The|Under|Section|Sections|Part|Schedule|In|By|See|Of)\s+(?:the\s+)?", "", name)
        acts.append(name)
    return acts


# Tokenizers that failed to load, with why: an offline hub id can take many seconds to fail, so it
# is tried once per process, not on every page rerun.
_FAILED_TOKENIZERS: dict[str, str] = {}


@lru_cache(maxsize=4)
def load_tokenizer(name_or_path: str):
    """A Hugging Face tokenizer from a local folder or a hub id (imports transformers on first use)."""
    if name_or_path in _FAILED_TOKENIZERS:
        raise ValueError(_FAILED_TOKENIZERS[name_or_path])
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a runtime dependency
        raise RuntimeError("counting with a tokenizer needs transformers: run `make run` once to install it") from exc
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:  # noqa: BLE001 - hub and file errors vary
        message = (f"cannot load tokenizer {name_or_path!r}: {exc.__class__.__name__}. "
                   "Give a local model folder, or a hub id this machine can download")
        _FAILED_TOKENIZERS[name_or_path] = message
        raise ValueError(message) from None


def tokenizer_problem(name_or_path: str) -> str | None:
    """Why the tokenizer cannot be used (loading it once to find out), or None when it can."""
    try:
        load_tokenizer(name_or_path)
    except (ValueError, RuntimeError) as exc:
        return str(exc)
    return None


def token_counter(tokenizer: str | None) -> Callable[[str], int]:
    """A function text → token count, real or approximate."""
    if not tokenizer:
        return lambda text: math.ceil(len(text) / CHARS_PER_TOKEN)
    tok = load_tokenizer(tokenizer)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


@dataclass
class RoleStats:
    messages: int = 0
    chars: int = 0
    tokens: int = 0
    max_tokens: int = 0

    @property
    def mean_tokens(self) -> float:
        return self.tokens / self.messages if self.messages else 0.0


@dataclass
class DatasetStats:
    """Statistics of a dataset. ``record_tokens`` and ``message_tokens`` feed the charts."""

    records: int = 0
    tokenizer: str | None = None
    max_length: int = 1024
    total_chars: int = 0
    total_tokens: int = 0
    per_role: dict[str, RoleStats] = field(default_factory=dict)
    record_tokens: list[int] = field(default_factory=list)
    message_tokens: dict[str, list[int]] = field(default_factory=dict)
    turns: Counter = field(default_factory=Counter)
    acts: Counter = field(default_factory=Counter)
    skipped_records: int = 0

    @property
    def tokens_are_approximate(self) -> bool:
        return self.tokenizer is None

    @property
    def token_label(self) -> str:
        return f"tokenizer {self.tokenizer}" if self.tokenizer else APPROXIMATION_LABEL

    @property
    def over_max_length(self) -> int:
        return sum(1 for t in self.record_tokens if t > self.max_length)

    @property
    def share_over_max_length(self) -> float:
        return self.over_max_length / self.records if self.records else 0.0

    def top_acts(self, n: int = 10) -> list[tuple[str, int]]:
        return self.acts.most_common(n)

    def to_dict(self) -> dict[str, Any]:
        tokens = sorted(self.record_tokens)
        return {
            "records": self.records,
            "skipped_records": self.skipped_records,
            "tokenizer": self.tokenizer,
            "tokens_are_approximate": self.tokens_are_approximate,
            "token_label": self.token_label,
            "total_chars": self.total_chars,
            "total_tokens": self.total_tokens,
            "max_length": self.max_length,
            "over_max_length": self.over_max_length,
            "share_over_max_length": round(self.share_over_max_length, 4),
            "record_tokens": {
                "mean": round(sum(tokens) / len(tokens), 1) if tokens else 0,
                "median": tokens[len(tokens) // 2] if tokens else 0,
                "p95": tokens[min(len(tokens) - 1, int(len(tokens) * 0.95))] if tokens else 0,
                "max": tokens[-1] if tokens else 0,
            },
            "per_role": {
                role: {"messages": s.messages, "chars": s.chars, "tokens": s.tokens,
                       "mean_tokens": round(s.mean_tokens, 1), "max_tokens": s.max_tokens}
                for role, s in self.per_role.items()
            },
            "turns": {str(k): v for k, v in sorted(self.turns.items())},
            "top_acts": [{"act": a, "records": c} for a, c in self.top_acts()],
        }


def compute_stats_from_records(
    records: Iterable[dict[str, Any]], tokenizer: str | None = None, max_length: int = 1024
) -> DatasetStats:
    """Statistics of clean records (``{"messages": [...]}`` or ``{"text": ...}``)."""
    count = token_counter(tokenizer)
    stats = DatasetStats(tokenizer=tokenizer, max_length=max_length)
    for record in records:
        if "messages" in record:
            messages = record["messages"]
        elif "text" in record:
            messages = [{"role": "text", "content": record["text"]}]
        else:
            stats.skipped_records += 1
            continue
        stats.records += 1
        record_tokens = 0
        acts_here: set[str] = set()
        for message in messages:
            role, content = message["role"], message["content"]
            tokens = count(content)
            role_stats = stats.per_role.setdefault(role, RoleStats())
            role_stats.messages += 1
            role_stats.chars += len(content)
            role_stats.tokens += tokens
            role_stats.max_tokens = max(role_stats.max_tokens, tokens)
            stats.message_tokens.setdefault(role, []).append(tokens)
            stats.total_chars += len(content)
            record_tokens += tokens + MESSAGE_OVERHEAD_TOKENS
            acts_here.update(cited_acts(content))
        stats.total_tokens += record_tokens
        stats.record_tokens.append(record_tokens)
        stats.turns[len(messages)] += 1
        stats.acts.update(acts_here)
    return stats


def compute_stats(path: str | Path, tokenizer: str | None = None, max_length: int = 1024) -> DatasetStats:
    """Statistics of a dataset file; records that are not clean are sanitized first (in memory)."""

    def clean_records():
        for raw in iter_records(path):
            if raw.error:
                continue
            outcome = sanitize_record(raw.value)
            if outcome.record is not None:
                yield outcome.record

    return compute_stats_from_records(clean_records(), tokenizer=tokenizer, max_length=max_length)
