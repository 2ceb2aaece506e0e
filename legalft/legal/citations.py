"""UK statutory citations in free text: find them, normalise them, check them against the index.

``parse_citations`` turns "sections 3 and 4 of the Charities Act 2022", "s. 12(1)", "ss. 3–5",
"paragraph 3 of Schedule 1", "regulation 4 of the X Regulations 2018" or "subsection (2) of that
section" into one ``Citation`` per provision cited. Provisions that name no Act ("this Act", a bare
"section 5") take the Act named nearby: the last one before, else the first one after.
``check_citations`` gives each a verdict against a ``StatuteIndex``: ``verified`` (the provision
exists and its text is at hand), ``not_found`` (the Act is indexed but has no such provision: an
invented citation) or ``unknown_act`` (it cannot be checked: the Act, or that kind of provision of
it, is not indexed). Pure regular expressions, no model: fast enough to run after every answer.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Iterable, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from legalft.legal.index import IndexedProvision

KINDS = ("section", "subsection", "schedule", "paragraph", "regulation", "article", "part")
STATUSES = ("verified", "not_found", "unknown_act")
#: The longest range expanded into one citation per provision ("ss. 1–400" is more likely a typo).
MAX_RANGE = 200

# --- Act titles ----------------------------------------------------------------------------------

_WORD = r"(?:[A-Z][\w’'\-\.&]*,?|\([^()\n]{1,80}\)|Act\s+\d{4}(?=\s+\(Amendment\)))"
_FIRST = r"(?:[A-Z][\w’'\-\.&]*,?)"
_TOKEN_RE = re.compile(r"\([^()\n]{1,80}\)|\S+")
_CONNECTOR = r"(?:of|and|the|for|to|in|on|with|etc\.?|by|from|or|upon|at|&|as|into|over|under|a|an|no\.)"
_ACT_RE = re.compile(
    rf"(?<![\w’'\-\.])(?P<title>{_FIRST}(?:[ \t]+(?:{_WORD}|{_CONNECTOR}))*?)[ \t]+"
    r"(?P<suffix>Act|Regulations|Order|Rules)"
    r"(?:[ \t]+\((?:Northern Ireland|Scotland|Wales)\))?[ \t]+(?P<year>1[2-9]\d\d|20\d\d)\b(?!\s+\(Amendment\)\s+Act)"
)
# Capitalised words that start sentences or phrases before a title, never a title's first word.
_LEADING = {
    "a", "about", "according", "after", "again", "also", "although", "amended", "an", "and", "any",
    "are", "article", "articles", "as", "at", "before", "both", "but", "by", "can", "could", "did",
    "do", "does", "each", "either", "every", "following", "for", "from", "further", "given", "has",
    "have", "here", "how", "however", "if", "in", "inserted", "into", "is", "it", "its", "may",
    "might", "must", "neither", "no", "nor", "not", "now", "of", "on", "or", "para", "paragraph",
    "paragraphs", "part", "parts", "per", "pursuant", "reg", "regulation", "regulations", "s", "s.",
    "chapter", "sch", "sch.", "schedule", "schedules", "section", "sections", "see", "shall", "should", "since",
    "so", "ss", "ss.", "subsection", "subsections", "such", "than", "that", "the", "their", "then",
    "there", "these", "this", "those", "though", "thus", "to", "under", "unlike", "was", "were",
    "what", "when", "where", "whereas", "whether", "which", "while", "who", "whom", "why", "will",
    "with", "within", "without", "would", "yes",
}


def _leading(word: str) -> bool:
    """A word that cannot start a title: a question word, a provision word, a roman numeral, "(1)"."""
    bare = word.rstrip(",")
    return (bare.lower() in _LEADING or bare.startswith("(") or not bare[:1].isupper()
            or re.fullmatch(r"[IVXLC]+", bare) is not None)


@lru_cache(maxsize=4096)
def act_key(title: str) -> str:
    """The form titles are compared in: case, quotes, dashes and spacing ignored."""
    text = title.replace("’", "'").replace("‘", "'").replace("–", "-").replace("—", "-")
    text = re.sub(r"\s+", " ", text).strip().strip(",.;:").lower()
    return re.sub(r"^the ", "", text)


@dataclass(frozen=True)
class ActMention:
    """An Act (or Regulations, Order, Rules) named in the text, with where it was written."""

    title: str
    year: int
    start: int
    end: int


class KnownActs(Protocol):
    """What the parser needs from an index: the canonical title of an indexed Act, by key."""

    def title_for(self, key: str) -> str | None: ...


def find_acts(text: str, known: KnownActs | None = None) -> list[ActMention]:
    """Acts named in ``text`` in order ("Companies Act 2006"); titles the index knows win."""
    mentions = []
    for match in _ACT_RE.finditer(text):
        words = _TOKEN_RE.findall(match.group("title"))
        tail = f"{match.group(0)[match.end('title') - match.start():].strip()}"
        chosen: tuple[int, str] | None = None
        if known is not None:
            for drop in range(len(words)):
                candidate = " ".join(words[drop:] + [tail])
                title = known.title_for(act_key(candidate))
                if title:
                    chosen = (drop, title)
                    break
        if chosen is None:
            drop = 0
            while drop < len(words) and _leading(words[drop]):
                drop += 1
            if drop == len(words):
                continue  # "The Act 2020": no title left
            chosen = (drop, re.sub(r"\s+", " ", " ".join(words[drop:] + [tail])).strip())
        drop, title = chosen
        start = match.start()
        for word in words[:drop]:
            start = text.index(word, start) + len(word)
        start = len(text) - len(text[start:].lstrip())
        mentions.append(ActMention(title=title, year=int(match.group("year")), start=start, end=match.end()))
    return mentions


def cited_act_titles(text: str, known: KnownActs | None = None) -> list[str]:
    """The distinct Acts named in the text, in order of first appearance."""
    seen: dict[str, str] = {}
    for mention in find_acts(text, known):
        seen.setdefault(act_key(mention.title), mention.title)
    return list(seen.values())


# --- provisions ----------------------------------------------------------------------------------

_NUM = r"\d{1,4}[A-Z]{0,3}(?:\(\w{1,4}\))*"
_SEP = r"\s*(?:,\s*(?:and\s+|or\s+)?|and|or|to|–|—|-)\s*"
_NUMLIST = rf"{_NUM}(?:{_SEP}{_NUM})*"
_SUB = r"\(\d{1,3}[A-Z]{0,3}\)"
_SUBLIST = rf"{_SUB}(?:{_SEP}{_SUB})*"
_SCHED_NUM = r"\d{1,3}[A-Z]?"
_ROMAN = r"(?:[IVXLC]+)\b"

_PROVISION_RE = re.compile(
    # The lookahead rejects most positions at once, before the alternatives are tried one by one.
    r"(?<![\w’'])(?=[SsPpRrAa])(?:" + "|".join([
        # subsection (2) of section 5 / subsections (2) and (3) of that section
        rf"(?P<subof>\b[Ss]ub-?sections?|\bsubss?\.)\s+(?P<subof_list>{_SUBLIST})\s+of\s+"
        rf"(?:(?:section|s\.?)\s*(?P<subof_sec>{_NUM})|(?P<subof_ref>that|this|the\s+same)\s+section)",
        # paragraph 3 of Schedule 1
        rf"(?P<para>\b(?:[Pp]aragraphs?|[Pp]aras?\.?))\s+(?P<para_list>{_NUMLIST})\s+(?:of|to|in)\s+(?:the\s+)?"
        rf"(?:Schedule|Sch\.?)\s+(?P<para_sched>{_SCHED_NUM})\b",
        # Schedule 1, paragraph 3 / Sch 1 para 3
        rf"(?P<schedpara>\b(?:Schedule|Sch\.?))\s+(?P<schedpara_sched>{_SCHED_NUM}),?\s+"
        rf"(?:paragraphs?|paras?\.?)\s+(?P<schedpara_list>{_NUMLIST})",
        # Schedule 2 / Schedules 2 and 3
        rf"(?P<sched>\b(?:Schedules?|Schs?\.))\s+(?P<sched_list>{_SCHED_NUM}(?:{_SEP}{_SCHED_NUM})*)\b",
        # Part 2 / Part II / Parts 2 and 3
        rf"(?P<part>\bParts?)\s+(?P<part_list>(?:\d{{1,3}}[A-Z]?\b|{_ROMAN})(?:{_SEP}(?:\d{{1,3}}[A-Z]?\b|{_ROMAN}))*)",
        # regulation 4 / reg. 4(2)
        rf"(?P<reg>\b(?:[Rr]egulations?|[Rr]egs?\.))\s*(?P<reg_list>{_NUMLIST})",
        # article 5 / art. 5
        rf"(?P<art>\b(?:[Aa]rticles?|[Aa]rts?\.))\s*(?P<art_list>{_NUMLIST})",
        # section 3 / s. 3(1) / ss. 3–5 / sections 3 and 4
        rf"(?P<sec>\b[Ss]ections?|(?<![\w’'])[Ss]{{1,2}}\.|(?<![\w’'])s{{1,2}}(?=\s*\d))\s*(?P<sec_list>{_NUMLIST})",
    ]) + ")"
)
_PROVISION_KINDS = {"subof": "subsection", "para": "paragraph", "schedpara": "paragraph", "sched": "schedule",
                    "part": "part", "reg": "regulation", "art": "article", "sec": "section"}
# What ties a provision to an Act written after it: "of the X Act 2022", "of this Act", "of that Act".
_ATTACH_RE = re.compile(r"\s*,?\s*(?:of|in|under|to|made\s+under)\s+(?:the\s+)?")
_THIS_RE = re.compile(r"\s*,?\s*(?:of|in|under|to)\s+(?P<which>this|that|the\s+same|the\s+said)\s+"
                      r"(?:Act|Regulations|Order|Rules)\b")
# "the X Act 2022, s 12" / "X Act 2022 section 12": an Act written just before the provision.
_BEFORE_RE = re.compile(r"\s*,?\s*(?:at\s+)?$")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100}


@dataclass(frozen=True)
class Citation:
    """One provision cited, normalised; ``text`` is the span as written (shared by a range's members)."""

    text: str
    act: str | None
    year: int | None
    kind: str
    number: str
    subsection: str | None = None
    schedule: str | None = None
    """The Schedule a cited paragraph belongs to."""
    start: int = 0
    end: int = 0

    @property
    def key(self) -> tuple:
        return (act_key(self.act) if self.act else None, self.kind, self.number, self.subsection, self.schedule)

    @property
    def label(self) -> str:
        """How a lawyer writes it: "s. 3(1) Charities Act 2022", "Sch. 1 para. 3"."""
        if self.kind in ("section", "subsection"):
            core = f"s. {self.number}" + (f"({self.subsection})" if self.subsection else "")
        elif self.kind == "paragraph":
            core = f"Sch. {self.schedule} para. {self.number}"
        elif self.kind == "schedule":
            core = f"Sch. {self.number}"
        else:
            core = {"regulation": "reg.", "article": "art.", "part": "Part"}[self.kind] + f" {self.number}"
            if self.subsection:
                core += f"({self.subsection})"
        return f"{core} {self.act}" if self.act else core


def _roman(text: str) -> str:
    if not re.fullmatch(r"[IVXLC]+", text):
        return text
    total = 0
    for char, nxt in zip(text, text[1:] + " "):
        value = _ROMAN_VALUES[char]
        total += -value if nxt != " " and _ROMAN_VALUES[nxt] > value else value
    return str(total)


def _split_number(raw: str) -> tuple[str, str | None]:
    """'3(1)(a)' → ('3', '1'); '12ZA' → ('12ZA', None)."""
    head = re.match(r"\d+[A-Z]*", raw)
    number = head.group(0) if head else raw
    sub = re.match(r"\((\d+[A-Z]*)\)", raw[len(number):])
    return number, (sub.group(1) if sub else None)


def _expand(listing: str, numbers: str = _NUM) -> list[str]:
    """'3, 4 and 5' → ['3', '4', '5']; '3–5' / '3 to 5' → ['3', '4', '5'] (plain numbers only)."""
    items = re.findall(rf"({numbers})|(\s*(?:to|–|—|-)\s*)", listing)
    out: list[str] = []
    pending_range = False
    for item, range_sep in items:
        if range_sep:
            pending_range = True
            continue
        if pending_range and out:
            low, high = out[-1], item
            if low.isdigit() and high.isdigit() and 0 < int(high) - int(low) <= MAX_RANGE:
                out.extend(str(n) for n in range(int(low) + 1, int(high) + 1))
            else:
                out.append(item)
            pending_range = False
            continue
        out.append(item)
    return out


def _context_act(acts: list[ActMention], ends: list[int], position: int, which: str = "this") -> ActMention | None:
    """The Act named nearby: the last one before ``position``, else (for "this Act") the first after."""
    before = bisect.bisect_right(ends, position)
    if before:
        return acts[before - 1]
    if which == "that":
        return None
    return next((a for a in acts if a.start >= position), None)


def parse_citations(text: str, known: KnownActs | None = None) -> list[Citation]:
    """Every provision cited in ``text``, in order, one per provision (ranges expanded, repeats merged)."""
    acts = find_acts(text, known)
    by_start = {a.start: a for a in acts}
    by_end = {a.end: a for a in acts}
    citations: list[Citation] = []
    seen: set[tuple] = set()
    last_section: Citation | None = None

    starts = [a.start for a in acts]
    ends = [a.end for a in acts]

    def inside_title(start: int, end: int) -> bool:
        i = bisect.bisect_right(starts, start) - 1  # the last title starting at or before the match
        if i >= 0 and start < ends[i]:
            return True
        j = i + 1  # or a title starting inside the match
        return j < len(starts) and starts[j] < end

    for match in _PROVISION_RE.finditer(text):
        if inside_title(match.start(), match.end()):
            continue  # "Regulations 2018" in "the X Regulations 2018" is a title, not regulation 2018
        group = match.lastgroup if match.lastgroup in _PROVISION_KINDS else \
            next(name for name in _PROVISION_KINDS if match.group(name))
        kind = _PROVISION_KINDS[group]
        span_end = match.end()
        act: ActMention | None = None
        explicit_act = False
        # An Act written right after: "of the X Act 2022"; or "of this Act".
        rest = text[span_end:span_end + 400]
        attach = _ATTACH_RE.match(rest)
        this = _THIS_RE.match(rest)
        if attach and (span_end + attach.end()) in by_start:
            act = by_start[span_end + attach.end()]
            span_end = act.end
            explicit_act = True
        elif this:
            act = _context_act(acts, ends, match.start(), "that" if this.group("which").startswith("that") else "this")
            span_end += this.end()
            explicit_act = act is not None
        else:
            # An Act written right before: "the X Act 2022, s 12".
            head = text[max(0, match.start() - 12):match.start()]
            gap = _BEFORE_RE.search(head)
            prior_end = match.start() - len(gap.group(0)) if gap else None
            if prior_end in by_end:
                act = by_end[prior_end]
                explicit_act = True
        if act is None and not (group == "subof" and match.group("subof_ref")):
            act = _context_act(acts, ends, match.start())
        span = text[match.start():span_end]
        entries: list[dict[str, Any]] = []
        if group == "subof":
            if match.group("subof_sec"):
                section, _ = _split_number(match.group("subof_sec"))
            elif last_section is not None:
                section = last_section.number
                if not explicit_act:
                    act = ActMention(last_section.act, last_section.year or 0, 0, 0) if last_section.act else None
            else:
                continue  # "subsection (2) of that section" with no section cited before
            for sub in re.findall(r"\((\d{1,3}[A-Z]{0,3})\)", match.group("subof_list")):
                entries.append({"kind": "subsection", "number": section, "subsection": sub})
        elif group in ("para", "schedpara"):
            schedule = match.group(f"{group}_sched")
            for item in _expand(match.group(f"{group}_list")):
                number, _ = _split_number(item)
                entries.append({"kind": "paragraph", "number": number, "schedule": schedule})
        elif group == "sched":
            for item in _expand(match.group("sched_list"), _SCHED_NUM):
                entries.append({"kind": "schedule", "number": item})
        elif group == "part":
            for item in _expand(match.group("part_list"), rf"\d{{1,3}}[A-Z]?|{_ROMAN}"):
                entries.append({"kind": "part", "number": _roman(item)})
        else:
            for item in _expand(match.group(f"{group}_list")):
                number, sub = _split_number(item)
                entry_kind = "subsection" if kind == "section" and sub else kind
                entries.append({"kind": entry_kind, "number": number, "subsection": sub})
        for entry in entries:
            citation = Citation(text=span.strip(), act=act.title if act else None,
                                year=(act.year or None) if act else None, start=match.start(), end=span_end,
                                **entry)
            if citation.act and citation.year is None:
                found = re.search(r"(1[2-9]\d\d|20\d\d)$", citation.act)
                citation = Citation(**{**asdict(citation), "year": int(found.group(1)) if found else None})
            if citation.kind in ("section", "subsection"):
                last_section = citation
            if citation.key in seen:
                continue
            seen.add(citation.key)
            citations.append(citation)
    return citations


# --- verdicts ------------------------------------------------------------------------------------


class CitationIndex(KnownActs, Protocol):
    """What checking needs from the statute index."""

    def covers(self, key: str, kind: str) -> bool | None: ...

    def find(self, citation: Citation) -> "IndexedProvision | None": ...


@dataclass
class CheckedCitation:
    """A citation with its verdict, and the provision's text and link when it was verified."""

    citation: Citation
    status: str
    provision: "IndexedProvision | None" = None
    retrieved: bool | None = None
    """Grounded answers: whether the provision was among those given to the model (None: not grounded)."""
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The ``legalft cite check --json`` shape."""
        c = self.citation
        return {"text": c.text, "act": c.act, "year": c.year, "kind": c.kind, "number": c.number,
                "subsection": c.subsection, "status": self.status}


def _subsection_present(text: str, subsection: str) -> bool:
    mark = re.escape(f"({subsection})")
    return bool(re.search(rf"(?:^|\n|[—:;.]\s*|\s){mark}\s", text))


def check_citation(citation: Citation, index: CitationIndex) -> CheckedCitation:
    """The verdict on one citation (see the module docstring)."""
    if not citation.act:
        return CheckedCitation(citation, "unknown_act", reason="no Act is named, so it cannot be checked")
    key = act_key(citation.act)
    covered = index.covers(key, "section" if citation.kind == "subsection" else citation.kind)
    if covered is None:
        return CheckedCitation(citation, "unknown_act", reason=f"the {citation.act} is not in the statute index")
    if covered is False:
        return CheckedCitation(citation, "unknown_act",
                               reason=f"the index holds no {citation.kind}s of the {citation.act}: cannot be checked")
    provision = index.find(citation)
    if provision is None:
        what = citation.label.replace(f" {citation.act}", "")
        return CheckedCitation(citation, "not_found", reason=f"the {citation.act} has no {what}")
    if citation.subsection and not _subsection_present(provision.text, citation.subsection):
        return CheckedCitation(citation, "not_found", provision=None,
                               reason=f"section {citation.number} of the {citation.act} has no subsection "
                                      f"({citation.subsection})")
    return CheckedCitation(citation, "verified", provision=provision)


def check_citations(text: str, index: CitationIndex, retrieved: Iterable["IndexedProvision"] | None = None
                    ) -> list[CheckedCitation]:
    """Parse ``text`` and give each citation its verdict; with ``retrieved`` (grounded answers),
    also say whether each verified provision was among those the model was given."""
    retrieved_ids = None if retrieved is None else {p.id for p in retrieved}
    checked = []
    citations = parse_citations(text, index)
    prefetch = getattr(index, "prefetch", None)
    if prefetch is not None:
        prefetch(citations)  # one query for the texts of all the provisions cited
    for citation in citations:
        result = check_citation(citation, index)
        if retrieved_ids is not None:
            result.retrieved = bool(result.provision and result.provision.id in retrieved_ids)
        checked.append(result)
    return checked


@dataclass
class CitationSummary:
    """Counts of verdicts, and the one line the Chat page shows under an answer."""

    total: int = 0
    verified: int = 0
    not_found: int = 0
    unknown_act: int = 0
    outside_context: int = 0
    """Grounded answers: verified citations of provisions the model was not given."""
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def line(self) -> str:
        if not self.total:
            return "No citations."
        parts = [f"{n} {label}" for n, label in ((self.verified, "verified"), (self.not_found, "not found"),
                                                 (self.unknown_act, "cannot be checked")) if n]
        noun = "citation" if self.total == 1 else "citations"
        line = f"{self.total} {noun}: {', '.join(parts)}"
        if self.outside_context:
            line += f" ({self.outside_context} verified outside the retrieved provisions)"
        return line


def summarise(checked: list[CheckedCitation]) -> CitationSummary:
    summary = CitationSummary(total=len(checked))
    for item in checked:
        setattr(summary, item.status, getattr(summary, item.status) + 1)
        if item.status == "verified" and item.retrieved is False:
            summary.outside_context += 1
    summary.counts = {s: getattr(summary, s) for s in STATUSES}
    return summary
