"""Metrics of one answer against its reference, and their aggregates with confidence intervals.

Per answer: token F1 (SQuAD-style bag of words), ROUGE-L F (Google's ``rouge-score``), citation
precision and recall against the reference answer's citations, counts of citation verdicts
(invented = ``not_found`` among checkable citations; unverifiable = ``unknown_act`` among all),
whether a reference that says the law does not cover the point is matched by an answer that
says so too (a correct refusal), length in words. Aggregates: means with a bootstrap 95% interval
(fixed seed, so a table is reproducible), rates with a Wilson 95% interval, latency p50/p95.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterable, Sequence

from legalft.legal.citations import CheckedCitation, Citation

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’–—"})
_REFUSAL = re.compile(
    r"\b(?:does not|do not|doesn't|don't|did not|cannot|can't|is not|isn't)\s+(?:\w+\s+){0,3}?"
    r"(?:cover|address|deal with|apply|provide for|say|mention|contain|extend)|"
    r"\bno (?:such )?(?:provision|section|mention)\b|\bnot (?:covered|addressed|dealt with)\b|"
    r"\bsilent on\b|\boutside the scope\b",
    re.IGNORECASE,
)
BOOTSTRAP_SAMPLES = 1000
Z95 = 1.959963984540054


def normalise_tokens(text: str) -> list[str]:
    """Lower case, punctuation and articles removed, split on white space (the SQuAD normalisation)."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of token precision and recall (bag of words, counts clipped)."""
    pred, ref = normalise_tokens(answer), normalise_tokens(reference)
    if not pred and not ref:
        return 1.0
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure (longest common subsequence, Porter-stemmed), from ``rouge-score``."""
    return float(_rouge().score(reference, answer)["rougeL"].fmeasure)


def _provision_key(citation: Citation) -> tuple:
    """Citations match at the provision: a subsection counts as its section."""
    kind = "section" if citation.kind == "subsection" else citation.kind
    return (citation.key[0], kind, citation.number.upper(), citation.schedule)


def citation_overlap(answer: Sequence[Citation], reference: Sequence[Citation]) -> tuple[float | None, float | None]:
    """(precision, recall) of the answer's cited provisions against the reference's; None where undefined."""
    got = {_provision_key(c) for c in answer}
    want = {_provision_key(c) for c in reference}
    hits = len(got & want)
    precision = hits / len(got) if got else None
    recall = hits / len(want) if want else None
    return precision, recall


def is_refusal(text: str) -> bool:
    """The text says the law does not cover the point ("the Act does not address ...")."""
    return bool(_REFUSAL.search(text))


def answer_metrics(answer: str, reference: str, checked: Sequence[CheckedCitation],
                   reference_citations: Sequence[Citation]) -> dict[str, Any]:
    """All per-answer figures, as stored with the answer."""
    statuses = Counter(c.status for c in checked)
    precision, recall = citation_overlap([c.citation for c in checked], reference_citations)
    reference_refuses = is_refusal(reference)
    return {
        "token_f1": token_f1(answer, reference),
        "rouge_l": rouge_l(answer, reference),
        "citation_precision": precision,
        "citation_recall": recall,
        "citations": len(checked),
        "verified": statuses["verified"],
        "not_found": statuses["not_found"],
        "unknown_act": statuses["unknown_act"],
        "reference_refuses": reference_refuses,
        "correct_refusal": (is_refusal(answer) if reference_refuses else None),
        "words": len(answer.split()),
    }


# --- aggregates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95% interval (None when there is nothing to estimate)."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "n": self.n}


def mean_ci(values: Iterable[float | None], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> Estimate:
    """The mean with a percentile bootstrap 95% interval (deterministic for a seed)."""
    import numpy as np

    data = np.array([v for v in values if v is not None], dtype=float)
    if data.size == 0:
        return Estimate(None)
    mean = float(data.mean())
    if data.size == 1:
        return Estimate(mean, mean, mean, 1)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(mean, float(low), float(high), int(data.size))


def wilson(successes: int, total: int) -> Estimate:
    """A proportion with its Wilson score 95% interval (sound at 0 and at small n)."""
    if total <= 0:
        return Estimate(None)
    p = successes / total
    denominator = 1 + Z95 ** 2 / total
    centre = (p + Z95 ** 2 / (2 * total)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / total + Z95 ** 2 / (4 * total ** 2)) / denominator
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), total)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, as numpy's default)."""
    import numpy as np

    return float(np.percentile(np.array(values, dtype=float), q)) if len(values) else None


def aggregate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One target's figures from its answers' metrics (``rows``: {"status", "seconds", "metrics", "judge"})."""
    done = [r for r in rows if r["status"] == "done"]
    metrics = [r["metrics"] for r in done]
    checkable = sum(m["verified"] + m["not_found"] for m in metrics)
    cited = sum(m["citations"] for m in metrics)
    refusals = [m for m in metrics if m.get("reference_refuses")]
    seconds = [r["seconds"] for r in done if r.get("seconds") is not None]
    judged = [r["judge"] for r in done if r.get("judge") and r["judge"].get("status") == "scored"]
    out = {
        "answered": len(done),
        "failed": sum(1 for r in rows if r["status"] == "failed"),
        "token_f1": mean_ci(m["token_f1"] for m in metrics).to_dict(),
        "rouge_l": mean_ci(m["rouge_l"] for m in metrics).to_dict(),
        "citation_precision": mean_ci(m["citation_precision"] for m in metrics).to_dict(),
        "citation_recall": mean_ci(m["citation_recall"] for m in metrics).to_dict(),
        "invented_rate": wilson(sum(m["not_found"] for m in metrics), checkable).to_dict(),
        "unverifiable_share": wilson(sum(m["unknown_act"] for m in metrics), cited).to_dict(),
        "correct_refusals": wilson(sum(1 for m in refusals if m["correct_refusal"]), len(refusals)).to_dict(),
        "citations_per_answer": (cited / len(metrics)) if metrics else None,
        "words": mean_ci(m["words"] for m in metrics).to_dict(),
        "latency_p50": percentile(seconds, 50),
        "latency_p95": percentile(seconds, 95),
    }
    if judged:
        out["judge_score"] = mean_ci(j["score"] for j in judged).to_dict()
        out["judge_off_schema"] = sum(1 for r in done if r.get("judge") and r["judge"].get("status") == "off_schema")
    return out
