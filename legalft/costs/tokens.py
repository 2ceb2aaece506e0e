"""Trained tokens as training sees them: the one estimator every page, the CLI and the pre-flight use.

A record is trained as its base model's chat template renders it (beginning-of-sequence, the
template's default system header, role markers, end-of-turn tokens), so counting only the text
undercounts. With packing, records are concatenated and cut into context-length sequences, so
every token is trained; without it, each record is cut at the context length.

The managed service bills more than that count (``data/trained_tokens.toml`` says by how much and
on what evidence), so :class:`TrainedTokens` carries both: ``sequence_per_epoch``, what a trainer
processes (the Cloud path's figure), and ``per_epoch``, as the service counts them (the managed
path's figure, the one the Train page, the Costs page and the CLI show as trained tokens).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from legalft.home import bundled_data_dir

DEFAULT_TRAINING_MODEL = "meta-llama/Llama-3.1-8B-Instruct"
"""The managed path's default base model (the reference run's)."""


@dataclass(frozen=True)
class TemplateProfile:
    """Tokens a chat template adds around a record and around each message."""

    key: str
    label: str
    record_tokens: int
    message_tokens: int
    basis: str
    match: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceCount:
    """How the managed service's billed count relates to the template + text count."""

    factor: float
    basis: str
    bill_trained_tokens: int
    bill_records: int
    bill_epochs: int
    bill_model: str
    bill_source: str
    default_context_length: int


@dataclass(frozen=True)
class TokenRules:
    templates: dict[str, TemplateProfile]
    service: ServiceCount

    def template_for(self, model: str) -> TemplateProfile:
        """The template profile whose name patterns the model id contains; generic otherwise."""
        name = (model or "").lower()
        for profile in self.templates.values():
            if any(pattern in name for pattern in profile.match):
                return profile
        return self.templates["generic"]


@lru_cache(maxsize=2)
def load_token_rules(path: str | None = None) -> TokenRules:
    """The template profiles and the service factor from ``data/trained_tokens.toml``."""
    with open(path or bundled_data_dir() / "trained_tokens.toml", "rb") as handle:
        data = tomllib.load(handle)
    templates = {
        key: TemplateProfile(key=key, label=entry["label"], record_tokens=int(entry["record_tokens"]),
                             message_tokens=int(entry["message_tokens"]), basis=entry["basis"],
                             match=tuple(p.lower() for p in entry.get("match", [])))
        for key, entry in data["templates"].items()
    }
    if "generic" not in templates:
        raise ValueError("trained_tokens.toml needs a [templates.generic] profile")
    s = data["service"]
    service = ServiceCount(factor=float(s["factor"]), basis=s["basis"],
                           bill_trained_tokens=int(s["bill_trained_tokens"]), bill_records=int(s["bill_records"]),
                           bill_epochs=int(s["bill_epochs"]), bill_model=s["bill_model"],
                           bill_source=s["bill_source"], default_context_length=int(s["default_context_length"]))
    return TokenRules(templates=templates, service=service)


@dataclass(frozen=True)
class TrainedTokens:
    """A dataset's tokens as training sees them, for one base model and setting."""

    model: str
    records: int
    """Records counted (those the sanitizer keeps)."""
    skipped_records: int
    """Records read but not counted (unreadable, or dropped by the sanitizer)."""
    text_tokens: int
    """Tokens of the messages' text alone."""
    template_tokens: int
    """Tokens the chat template adds (headers, role markers, default system prompt)."""
    truncated_tokens: int
    """Tokens cut off per epoch because packing is off and a record is longer than the context."""
    sequence_per_epoch: int
    """Template + text, after truncation: what a trainer processes in one epoch."""
    sequences_per_epoch: int
    """Sequences in one epoch (packed sequences with packing on, records otherwise)."""
    epochs: float
    packing: bool
    context_length: int
    service_factor: float
    """The managed service's billed count ÷ the sequence count (1 for a real count)."""
    tokenizer: str | None
    """The tokenizer counted with; None for the approximation (characters ÷ 4)."""
    basis: str
    """One sentence on how the figure was reached, for pages and the CLI."""

    @property
    def per_epoch(self) -> int:
        """Trained tokens in one epoch as the managed service counts them."""
        return round(self.sequence_per_epoch * self.service_factor)

    @property
    def total(self) -> int:
        """Trained tokens over all epochs as the managed service counts (and bills) them."""
        return round(self.sequence_per_epoch * self.service_factor * self.epochs)

    @property
    def sequence_total(self) -> int:
        """Template + text tokens over all epochs: what a trainer on your own GPU processes."""
        return round(self.sequence_per_epoch * self.epochs)

    @property
    def approximate(self) -> bool:
        return self.tokenizer is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "records": self.records, "skipped_records": self.skipped_records,
            "text_tokens": self.text_tokens, "template_tokens": self.template_tokens,
            "truncated_tokens": self.truncated_tokens, "sequence_per_epoch": self.sequence_per_epoch,
            "sequences_per_epoch": self.sequences_per_epoch, "epochs": self.epochs, "packing": self.packing,
            "context_length": self.context_length, "service_factor": self.service_factor,
            "trained_tokens_per_epoch": self.per_epoch, "trained_tokens": self.total,
            "sequence_tokens": self.sequence_total, "tokenizer": self.tokenizer,
            "approximate": self.approximate, "basis": self.basis,
        }


def _clean_records(path: str | Path) -> tuple[list[dict[str, Any]], int]:
    """The records the sanitizer keeps, and how many were read but not kept."""
    from legalft.data.readers import iter_records
    from legalft.data.sanitize import sanitize_record

    kept, skipped = [], 0
    for raw in iter_records(path):
        if raw.error:
            skipped += 1
            continue
        outcome = sanitize_record(raw.value)
        if outcome.record is None:
            skipped += 1
        else:
            kept.append(outcome.record)
    return kept, skipped


def _messages(record: dict[str, Any]) -> list[dict[str, str]]:
    if "messages" in record:
        return [{"role": m.get("role", ""), "content": str(m.get("content", ""))} for m in record["messages"]]
    if "prompt" in record or "completion" in record:
        return [{"role": "user", "content": str(record.get("prompt", ""))},
                {"role": "assistant", "content": str(record.get("completion", ""))}]
    return [{"role": "text", "content": str(record.get("text", ""))}]


def _real_counter(tokenizer: str):
    """(text counter, whole-record counter or None) from a real tokenizer."""
    from legalft.data.stats import load_tokenizer

    tok = load_tokenizer(tokenizer)

    def text(content: str) -> int:
        return len(tok(content, add_special_tokens=False)["input_ids"])

    if not getattr(tok, "chat_template", None):
        return text, None

    def record(messages: list[dict[str, str]]) -> int:
        if messages and messages[0]["role"] == "text":
            return len(tok(messages[0]["content"])["input_ids"])
        ids = tok.apply_chat_template(messages, tokenize=True)
        if hasattr(ids, "keys"):
            ids = ids["input_ids"]
        return len(ids)

    return text, record


def estimate_trained_tokens(
    source: str | Path | Iterable[dict[str, Any]],
    *,
    model: str = DEFAULT_TRAINING_MODEL,
    epochs: float = 1,
    packing: bool = True,
    context_length: int | None = None,
    tokenizer: str | None = None,
    service: bool = True,
) -> TrainedTokens:
    """Trained tokens of a dataset file (or clean records) for ``model``, as training sees them.

    ``tokenizer`` names a real tokenizer (local folder or hub id): its own chat template is then
    applied. Without one, text is characters ÷ 4 plus the template profile's tokens. ``service``
    applies the managed service's factor (``per_epoch``/``total``); it is 1 when False.
    """
    from legalft.data.stats import CHARS_PER_TOKEN

    if epochs <= 0:
        raise ValueError("epochs must be > 0")
    rules = load_token_rules()
    context = int(context_length or rules.service.default_context_length)
    if context < 1:
        raise ValueError("context length must be ≥ 1")
    if isinstance(source, (str, Path)):
        records, skipped = _clean_records(source)
    else:
        records, skipped = list(source), 0
    profile = rules.template_for(model)
    if tokenizer:
        count_text, count_record = _real_counter(tokenizer)
    else:
        count_text, count_record = (lambda text: math.ceil(len(text) / CHARS_PER_TOKEN)), None

    text_tokens = template_tokens = truncated = sequence = 0
    for record in records:
        messages = _messages(record)
        text = sum(count_text(m["content"]) for m in messages)
        if count_record is not None:
            whole = count_record(messages)
        else:
            whole = text + profile.record_tokens + profile.message_tokens * len(messages)
        text_tokens += text
        template_tokens += max(0, whole - text)
        if not packing and whole > context:
            truncated += whole - context
            whole = context
        sequence += whole
    sequences = math.ceil(sequence / context) if packing else len(records)

    factor = rules.service.factor if service else 1.0
    counted = f"tokenizer {tokenizer} with its chat template" if count_record is not None else (
        f"tokenizer {tokenizer} + {profile.label}" if tokenizer else
        f"characters ÷ {CHARS_PER_TOKEN:g} + {profile.label} ({profile.record_tokens} per record, "
        f"{profile.message_tokens} per message)")
    basis = f"{counted}; packing {'on' if packing else f'off (cut at {context:,} tokens)'}"
    if service:
        basis += f"; × {factor:g} for the service's own count ({rules.service.basis})"
    return TrainedTokens(
        model=model, records=len(records), skipped_records=skipped, text_tokens=text_tokens,
        template_tokens=template_tokens, truncated_tokens=truncated, sequence_per_epoch=sequence,
        sequences_per_epoch=sequences, epochs=float(epochs), packing=packing, context_length=context,
        service_factor=factor, tokenizer=tokenizer, basis=basis,
    )
