"""Convert raw legislation into grounded Q&A chat records that cite the provision.

Two input schemas: one section per line (``act_title``, ``section``, ``heading``, ``text``, ...) and
one Act per line (``title``, ``year_number``, ``text``), as the reference converter took. Grounded
kinds answer the question asked and cite the section ("Section 3 of the X Act 2023 provides
that ..."); the reference converter's extractive kinds are offered too, for parity. The output is
deterministic: the same input and options give the same file.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from legalft.data.outputs import atomic_output, check_outputs
from legalft.data.readers import iter_records

GROUNDED_KINDS = ("provision", "heading", "subsection")
PARITY_KINDS = ("summary", "bullets", "subject", "quote", "metadata")
ALL_KINDS = GROUNDED_KINDS + PARITY_KINDS
DEFAULT_KINDS = GROUNDED_KINDS

CHUNK_CHARS = 3500
CHUNK_OVERLAP = 400
CONTEXT_INSTRUCTION = "Answer using only the provision below, and cite it."
_SUBSECTION = re.compile(r"^\((\d+[A-Z]*)\)\s*", re.MULTILINE)
_SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z(“\"])")
_ENACTING = re.compile(r"BE IT ENACTED|Be it enacted", re.IGNORECASE)


@dataclass
class ConvertOptions:
    """What the converter emits."""

    kinds: tuple[str, ...] = DEFAULT_KINDS
    """Pair kinds: grounded (provision, heading, subsection) and reference parity (summary, bullets, subject, quote, metadata)."""
    embed_context: bool = False
    """Put the provision's text in the user turn, with an instruction to answer only from it."""
    include_meta: bool = False
    """Keep provenance (Act, section, source URL, kind) in each record's ``meta``."""
    include_amending: bool = False
    """Also convert sections that only amend other Acts (their text is mostly 'for X substitute Y')."""
    chunk_chars: int = CHUNK_CHARS
    """Longest provision text in one answer; longer sections are cut at subsection or sentence boundaries."""

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in ALL_KINDS]
        if unknown:
            raise ValueError(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(ALL_KINDS)}")
        if not self.kinds:
            raise ValueError("choose at least one kind of pair")
        if self.chunk_chars < 200:
            raise ValueError("chunk_chars must be at least 200")


@dataclass
class ConvertReport:
    """Every line read is accounted for: converted, skipped (with reason) or invalid."""

    lines: int = 0
    sections: int = 0
    acts: int = 0
    pairs: int = 0
    pairs_by_kind: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    issues: list[dict[str, Any]] = field(default_factory=list)

    def skip(self, line: int, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        if len(self.issues) < 1000:
            self.issues.append({"line": line, "kind": reason, "message": f"line {line}: {message}"})

    def to_dict(self) -> dict[str, Any]:
        return {"lines": self.lines, "sections": self.sections, "acts": self.acts, "pairs": self.pairs,
                "pairs_by_kind": dict(self.pairs_by_kind), "skipped": dict(self.skipped),
                "issues": self.issues}


@dataclass
class Provision:
    """A piece of statute to ask about: an Act, a section label, a heading and the text."""

    act: str
    section: str | None
    heading: str | None
    text: str
    source: str | None = None
    chapter: str | None = None
    year: int | None = None

    @property
    def cite(self) -> str:
        return f"section {self.section} of the {self.act}" if self.section else f"the {self.act}"

    @property
    def cite_start(self) -> str:
        return self.cite[0].upper() + self.cite[1:]


def clean_text(text: str) -> str:
    """Collapse runs of spaces but keep line structure (subsections stand on their own lines)."""
    text = re.sub(r"^https?://\S+\s*", "", text.strip())
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def subsections(text: str) -> list[tuple[str, str]]:
    """[(number, text)] of a section whose lines start "(1)", "(2)", ...; empty when it has none."""
    marks = list(_SUBSECTION.finditer(text))
    if len(marks) < 2 or marks[0].start() != 0:
        return []
    parts = []
    for mark, nxt in zip(marks, marks[1:] + [None]):
        body = text[mark.end(): nxt.start() if nxt else len(text)].strip()
        parts.append((mark.group(1), body))
    return parts


def chunk_text(text: str, size: int = CHUNK_CHARS, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Cut text into pieces of at most ``size`` characters at line or sentence ends, overlapping a little."""
    if len(text) <= size:
        return [text]
    chunks, start = [], 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = max(text.rfind("\n", start + size // 2, end), text.rfind(". ", start + size // 2, end))
            if cut > start:
                end = cut + 1
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
        # Start the overlap at a word boundary.
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < end else start
    return [c for c in chunks if c]


def sentences(text: str) -> list[str]:
    flat = re.sub(r"\s+", " ", text).strip()
    return [s.strip() for s in _SENTENCE_END.split(flat) if s.strip()]


_PLAIN_OPENING = re.compile(r"^(A|An|The|Any|Each|Every|No|Nothing|Where|If|It|This|That|Regulations|Subsection)\b(?! Act)")


def _lower_first(text: str) -> str:
    """Lower-case an ordinary opening word so it reads on inside a sentence; keep names and acronyms."""
    if re.match(r"^(Meaning|Interpretation|Definition) of\b", text):
        return "the " + text[:1].lower() + text[1:]
    return text[:1].lower() + text[1:] if re.match(r"^[A-Z][a-z]", text) else text


def _provides(cite: str, body: str) -> str:
    """'X provides that a ...' where the text reads on as a sentence; otherwise quote it as a block."""
    if _PLAIN_OPENING.match(body):
        return f"{cite} provides that {body[:1].lower()}{body[1:]}"
    return f"{cite} provides:\n\n{body}"


def _chunks_of(provision: Provision, size: int) -> list[tuple[str, str]]:
    """[(label, text)]: the whole section, or runs of subsections, or plain chunks when it is long."""
    if len(provision.text) <= size:
        return [("", provision.text)]
    parts = subsections(provision.text)
    if not parts:
        chunks = chunk_text(provision.text, size)
        return [(f" (part {i} of {len(chunks)})", c) for i, c in enumerate(chunks, 1)]
    runs, current = [], []
    for number, body in parts:
        piece = f"({number}) {body}"
        if current and sum(len(p[1]) for p in current) + len(piece) > size:
            runs.append(current)
            current = []
        current.append((number, piece))
    runs.append(current)
    labelled = []
    for run in runs:
        first, last = run[0][0], run[-1][0]
        label = f"({first})" if first == last else f"({first}) to ({last})"
        text = "\n".join(p for _, p in run)
        for i, piece in enumerate(chunk_text(text, size)):
            labelled.append((f"{label}" + (f" part {i + 1}" if len(text) > size else ""), piece))
    return labelled


def _user(question: str, context: str | None, embed: bool) -> str:
    if embed and context:
        return f"{CONTEXT_INSTRUCTION}\n\nProvision:\n{context}\n\nQuestion: {question}"
    return question


def pairs_for_provision(provision: Provision, options: ConvertOptions) -> Iterator[tuple[str, str, str, dict]]:
    """Yield (kind, user, assistant, meta) for one provision."""
    kinds = set(options.kinds)
    heading = provision.heading
    for label, text in _chunks_of(provision, options.chunk_chars):
        where = f"{provision.cite}{' subsections ' + label if label.startswith('(') else label}"
        where_start = where[0].upper() + where[1:]
        meta = {"act": provision.act, "section": provision.section, "part": label.strip() or None,
                "source": provision.source}
        if "provision" in kinds:
            about = f' ("{heading}")' if heading and not label else ""
            question = f"What does {where} provide?"
            answer = f"{where_start}{about} provides:\n\n{text}"
            yield "provision", _user(question, text, options.embed_context), answer, meta
        if "summary" in kinds:
            first = " ".join(sentences(text)[:2])
            yield "summary", _user("Summarise this provision in plain English.", text, True), (
                f"{where_start} provides, in short: {first}"), meta
        if "bullets" in kinds:
            points = sentences(text)[:5]
            yield "bullets", _user("List the key points of this provision as bullet points.", text, True), (
                "\n".join(f"- {p}" for p in points)), meta
        if "subject" in kinds:
            subject = heading or (sentences(text)[:1] or [text[:120]])[0]
            yield "subject", _user("What is the subject matter of this provision?", text, True), (
                f"{where_start} concerns: {subject}"), meta
        if "quote" in kinds:
            quote = max(sentences(text) or [text], key=len)[:600]
            yield "quote", _user("Quote the key sentence of this provision.", text, True), (
                f"The key words of {where} are: “{quote}”"), meta
    if "heading" in kinds and heading and provision.section:
        question = f"Which section of the {provision.act} deals with {_lower_first(heading)}?"
        opening = chunk_text(provision.text, min(options.chunk_chars, 1200))[0]
        more = " …" if len(opening) < len(provision.text) else ""
        answer = f"{provision.cite_start}, headed “{heading}”, deals with that. It provides:\n\n{opening}{more}"
        yield "heading", _user(question, provision.text[: options.chunk_chars], options.embed_context), answer, {
            "act": provision.act, "section": provision.section, "part": None, "source": provision.source}
    if "subsection" in kinds and provision.section:
        parts = subsections(provision.text)
        for number, body in parts:
            if len(body) > options.chunk_chars:
                body = chunk_text(body, options.chunk_chars)[0] + " …"
            cite = f"section {provision.section}({number}) of the {provision.act}"
            question = f"What does {cite} say?"
            answer = _provides(cite[0].upper() + cite[1:], body)
            yield "subsection", _user(question, f"({number}) {body}", options.embed_context), answer, {
                "act": provision.act, "section": f"{provision.section}({number})", "part": None,
                "source": provision.source}


def metadata_pair(act: str, chapter: str | None, year: int | None, headings: list[str], leg_type: str | None):
    kind = leg_type[:-1] if leg_type and leg_type.endswith("s") else (leg_type or "Act")
    facts = [f"The {act} is a {kind}"]
    if chapter:
        facts[0] += f" ({chapter})"
    if year:
        facts.append(f"It was enacted in {year}.")
    if headings:
        shown = "; ".join(headings[:12])
        facts.append(f"Its sections include: {shown}{'; …' if len(headings) > 12 else ''}.")
    answer = facts[0] + ". " + " ".join(facts[1:])
    return "metadata", f"What is the {act}, and what does it cover?", answer.strip()


def _provision_from_section(value: dict[str, Any]) -> Provision:
    return Provision(
        act=str(value["act_title"]).strip(), section=str(value.get("section") or "").strip() or None,
        heading=(str(value.get("heading") or "").strip() or None), text=clean_text(str(value["text"])),
        source=value.get("source_url") or value.get("id"), chapter=value.get("chapter"), year=value.get("year"),
    )


def _provision_from_act(value: dict[str, Any]) -> Provision:
    text = clean_text(str(value["text"]))
    enacting = _ENACTING.search(text)
    if enacting:
        text = text[enacting.start():]
    year_number = str(value.get("year_number") or "")
    year = int(year_number[:4]) if year_number[:4].isdigit() else None
    return Provision(act=str(value["title"]).strip(), section=None, heading=None, text=text,
                     source=value.get("id"), chapter=year_number or None, year=year)


def convert_records(values: Iterable[tuple[int, Any]], options: ConvertOptions) -> tuple[list[dict], ConvertReport]:
    """Convert (line, parsed value) pairs; returns (chat records, report)."""
    report = ConvertReport()
    records: list[dict[str, Any]] = []
    acts: dict[str, dict[str, Any]] = {}

    def emit(kind: str, user: str, assistant: str, meta: dict[str, Any]) -> None:
        record: dict[str, Any] = {"messages": [{"role": "user", "content": user},
                                               {"role": "assistant", "content": assistant}]}
        if options.include_meta:
            record["meta"] = {**{k: v for k, v in meta.items() if v is not None}, "kind": kind}
        records.append(record)
        report.pairs += 1
        report.pairs_by_kind[kind] += 1

    for line, value in values:
        report.lines += 1
        if value is None:
            report.skip(line, "invalid_json", "not valid JSON")
            continue
        if not isinstance(value, dict):
            report.skip(line, "not_an_object", "not a JSON object")
            continue
        if "act_title" in value and "text" in value:
            provision = _provision_from_section(value)
            if value.get("amends_other_legislation") and not options.include_amending:
                report.skip(line, "amending_section", f"{provision.cite} only amends other legislation")
                continue
            report.sections += 1
        elif "title" in value and "text" in value:
            provision = _provision_from_act(value)
        else:
            report.skip(line, "unrecognized_record", "neither a section (act_title, text) nor an Act (title, text)")
            continue
        if not provision.text:
            report.skip(line, "empty_text", f"{provision.cite} has no text")
            continue
        info = acts.setdefault(provision.act, {"chapter": provision.chapter, "year": provision.year,
                                               "headings": [], "leg_type": value.get("leg_type")})
        if provision.heading:
            info["headings"].append(f"section {provision.section}: {provision.heading}")
        for kind, user, assistant, meta in pairs_for_provision(provision, options):
            emit(kind, user, assistant, meta)
    report.acts = len(acts)
    if "metadata" in options.kinds:
        for act, info in acts.items():
            kind, user, assistant = metadata_pair(act, info["chapter"], info["year"], info["headings"], info["leg_type"])
            emit(kind, user, assistant, {"act": act})
    return records, report


def convert_file(input_path: str | Path, out_path: str | Path, options: ConvertOptions | None = None) -> ConvertReport:
    """Convert a legislation JSONL file into a chat JSONL file."""
    options = options or ConvertOptions()
    out_path = Path(out_path)
    check_outputs({"the input file": input_path}, {"--out": out_path})
    values = ((raw.line, None if raw.error else raw.value) for raw in iter_records(input_path, fmt="jsonl"))
    records, report = convert_records(values, options)
    with atomic_output(out_path, "w") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return report
