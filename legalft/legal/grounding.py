"""Grounded answers: retrieve the provisions a question is about and give them to the model, cited.

Retrieval is the statute index's BM25 search, narrowed first to the Acts the question names and
led by any provision it cites outright ("What does section 3 of the X Act 2022 provide?"). The
model gets each provision with its citation and is asked to answer from them and cite them; its
answer's citations are then checked against the index and against what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from legalft.legal.citations import act_key, check_citation, find_acts, parse_citations
from legalft.legal.index import IndexedProvision, StatuteIndex

DEFAULT_K = 4
#: Characters of one provision given to the model (long sections are cut; the citation stays whole).
PROVISION_CHARS = 1800
GROUNDED_INSTRUCTION = (
    "Answer from the provisions below where they apply, and cite the section and Act you rely on. "
    "If they do not cover the question, say so rather than citing other provisions."
)


@dataclass
class Grounding:
    """The provisions retrieved for one question, in the order given to the model."""

    question: str
    provisions: list[IndexedProvision] = field(default_factory=list)
    provision_chars: int = PROVISION_CHARS
    """Characters of each provision's text given (small models have short contexts)."""

    @property
    def context(self) -> str:
        parts = []
        limit = self.provision_chars
        for number, p in enumerate(self.provisions, start=1):
            text = p.text if len(p.text) <= limit else p.text[:limit].rsplit(" ", 1)[0] + " …"
            heading = f" ({p.heading})" if p.heading else ""
            parts.append(f"[{number}] {p.label}{heading}:\n{text}")
        return "\n\n".join(parts)

    def to_list(self) -> list[dict]:
        return [{"id": p.id, "label": p.label, "url": p.url} for p in self.provisions]


def retrieve(question: str, index: StatuteIndex, k: int = DEFAULT_K,
             provision_chars: int = PROVISION_CHARS) -> Grounding:
    """The top ``k`` provisions for ``question``: those it cites, then BM25 within the Acts it names, then anywhere."""
    chosen: dict[int, IndexedProvision] = {}
    for citation in parse_citations(question, index):
        verdict = check_citation(citation, index)
        if verdict.provision is not None:
            chosen.setdefault(verdict.provision.id, verdict.provision)
    for mention in find_acts(question, index):
        if len(chosen) >= k:
            break
        if index.title_for(act_key(mention.title)) is None:
            continue
        for provision, _ in index.search(question, k, act=mention.title):
            chosen.setdefault(provision.id, provision)
    if len(chosen) < k:
        for provision, _ in index.search(question, k):
            chosen.setdefault(provision.id, provision)
    return Grounding(question=question, provisions=list(chosen.values())[:k], provision_chars=provision_chars)


def grounded_question(question: str, grounding: Grounding) -> str:
    """The user turn of a grounded request: the instruction, the provisions, then the question."""
    if not grounding.provisions:
        return question
    return f"{GROUNDED_INSTRUCTION}\n\n{grounding.context}\n\nQuestion: {question}"


STATUS_LABELS = {"verified": "verified", "not_found": "not found", "unknown_act": "cannot be checked"}


def check_answer(text: str, index: StatuteIndex, grounding: Grounding | None = None) -> dict:
    """An answer's citations as the Chat page shows them: one chip per provision and a summary line.

    ``{"line": "3 citations: 2 verified, 1 not found", "chips": [{"label", "status", "status_label",
    "reason", "heading", "text", "url", "retrieved"}]}``; verified chips carry the provision's text.
    """
    from legalft.legal.citations import check_citations, summarise

    checked = check_citations(text, index, retrieved=grounding.provisions if grounding else None)
    chips = []
    for item in checked:
        provision = item.provision
        chips.append({"label": item.citation.label, "written": item.citation.text, "status": item.status,
                      "status_label": STATUS_LABELS[item.status], "reason": item.reason,
                      "heading": provision.heading if provision else None,
                      "title": provision.label if provision else None,
                      "text": provision.text if provision else None, "url": provision.url if provision else None,
                      "retrieved": item.retrieved})
    return {"line": summarise(checked).line, "chips": chips}
