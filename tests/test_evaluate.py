"""Evaluation metrics on hand-computed values, the judge's parsing, and the reading of evaluation sets."""

from __future__ import annotations

import json

import pytest
from statutes import statute_db, statute_index  # noqa: F401 - fixtures

from legalft.evaluate import metrics
from legalft.evaluate.judge import parse_grade
from legalft.evaluate.sets import generate_legislation_set, load_file_set, load_validation_set
from legalft.legal.citations import check_citations, parse_citations

ARIA = "Advanced Research and Invention Agency Act 2022"
REFERENCE_QA = "data/legislation_qa_clean.jsonl"


def test_token_f1_by_hand():
    # "the" is dropped; 3 of 4 tokens shared each way: P = R = 3/4.
    assert metrics.token_f1("The Act applies to charities", "the act applies to trustees") == pytest.approx(0.75)
    # P = 2/2, R = 2/4: F1 = 2 * 1 * 0.5 / 1.5.
    assert metrics.token_f1("Act applies.", "the Act applies to trustees") == pytest.approx(2 / 3)
    assert metrics.token_f1("nothing shared", "entirely different") == 0.0
    assert metrics.token_f1("", "") == 1.0


def test_rouge_l_by_hand():
    # LCS "the cat on the mat" = 5 of 6 tokens each side.
    assert metrics.rouge_l("the cat lay on the mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    # Porter stemming: "provides" and "provided" are one token.
    assert metrics.rouge_l("section 3 provides", "section 3 provided") == pytest.approx(1.0)


def test_citation_precision_and_recall_by_hand():
    answer = parse_citations(f"Section 1(3) and section 2 of the {ARIA}.")
    reference = parse_citations(f"Sections 1 and 3 of the {ARIA}.")
    # A subsection counts as its section: 1 of 2 cited is right, 1 of 2 expected is found.
    assert metrics.citation_overlap(answer, reference) == (0.5, 0.5)
    assert metrics.citation_overlap([], reference) == (None, 0.0)
    assert metrics.citation_overlap(answer, []) == (0.0, None)


def test_invented_citation_rate_on_written_answers(statute_index):
    answers = [
        f"Section 1 of the {ARIA} establishes ARIA, and section 99 of that Act sets its budget.",  # real, absent
        "Section 172 of the Companies Act 2006 applies.",  # not indexed
        f"Section 1(3) of the {ARIA} points to Schedule 1, and section 1(7) of that Act adds a board.",
        "No provision covers that.",
    ]
    rows = []
    for text in answers:
        checked = check_citations(text, statute_index)
        rows.append({"status": "done", "seconds": 1.0, "judge": None,
                     "metrics": metrics.answer_metrics(text, "reference", checked, [])})
    per = [(r["metrics"]["verified"], r["metrics"]["not_found"], r["metrics"]["unknown_act"]) for r in rows]
    # answer 3: s. 1(3) verified, Schedule 1 not indexed (cannot be checked), s. 1(7) absent
    assert per == [(1, 1, 0), (0, 0, 1), (1, 1, 1), (0, 0, 0)]
    figures = metrics.aggregate(rows)
    assert figures["invented_rate"]["value"] == pytest.approx(2 / 4)  # not_found among checkable
    assert figures["unverifiable_share"]["value"] == pytest.approx(2 / 6)  # unknown among all cited
    assert figures["invented_rate"]["low"] == pytest.approx(0.1500, abs=1e-4)
    assert figures["invented_rate"]["high"] == pytest.approx(0.8500, abs=1e-4)


def test_wilson_interval_by_hand():
    estimate = metrics.wilson(0, 10)  # no successes: the interval still has width
    assert estimate.value == 0 and estimate.low == 0 and estimate.high == pytest.approx(0.27753, abs=1e-4)
    assert metrics.wilson(0, 0).value is None


def test_mean_ci_and_percentiles():
    constant = metrics.mean_ci([0.5, 0.5, 0.5])
    assert (constant.value, constant.low, constant.high, constant.n) == (0.5, 0.5, 0.5, 3)
    spread = metrics.mean_ci([0.0, 1.0, 0.0, 1.0])
    assert spread.value == 0.5 and 0.0 <= spread.low < 0.5 < spread.high <= 1.0
    assert metrics.mean_ci([0.0, 1.0, 0.0, 1.0]) == spread  # fixed seed: the same table every time
    assert metrics.mean_ci([None]).value is None
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5
    assert metrics.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)


def test_correct_refusals():
    reference = "The Charities Act 2022 does not address the taxation of trustees."
    good = metrics.answer_metrics("No: the Act does not deal with that point.", reference, [], [])
    bad = metrics.answer_metrics("Section 3 provides a tax relief for trustees.", reference, [], [])
    plain = metrics.answer_metrics("Section 3 provides ...", "Section 3 provides that ...", [], [])
    assert (good["correct_refusal"], bad["correct_refusal"], plain["correct_refusal"]) == (True, False, None)
    rows = [{"status": "done", "seconds": 0.1, "judge": None, "metrics": m} for m in (good, bad, plain)]
    assert metrics.aggregate(rows)["correct_refusals"]["value"] == 0.5


def test_aggregate_latency_length_and_failures():
    m = metrics.answer_metrics("one two three", "one two three", [], [])
    rows = [{"status": "done", "seconds": s, "judge": None, "metrics": m} for s in (1.0, 2.0, 3.0, 4.0)]
    rows.append({"status": "failed", "seconds": None, "judge": None, "metrics": {}})
    figures = metrics.aggregate(rows)
    assert (figures["answered"], figures["failed"]) == (4, 1)
    assert (figures["latency_p50"], figures["latency_p95"]) == (2.5, pytest.approx(3.85))
    assert figures["words"]["value"] == 3 and figures["token_f1"]["value"] == 1.0


def test_judge_scores_and_off_schema():
    good = parse_grade(json.dumps({"correct": 1, "cites_right_provision": 0, "invents_nothing": 1,
                                   "answers_question": 1, "rationale": "cites the wrong section"}))
    assert good["status"] == "scored" and good["score"] == 0.75
    assert parse_grade("The answer is good.") == {"status": "off_schema", "reason": "not JSON",
                                                  "raw": "The answer is good."}
    out_of_range = parse_grade(json.dumps({"correct": 5, "cites_right_provision": 0, "invents_nothing": 1,
                                           "answers_question": 1, "rationale": "x"}))
    assert out_of_range["status"] == "off_schema" and "correct" in out_of_range["reason"]
    assert parse_grade(json.dumps({"score": 9}))["status"] == "off_schema"
    assert parse_grade("[1, 2]")["status"] == "off_schema"


def test_file_set_accounts_for_every_line(tmp_path):
    lines = [json.dumps({"messages": [{"role": "user", "content": "What does section 1 of the Charities Act 2022 do?"},
                                      {"role": "assistant", "content": "It amends the Charities Act 2011."}]}),
             "{not json",
             json.dumps({"question": "Is there a question?", "answer": "Yes."}),
             json.dumps({"messages": [{"role": "user", "content": "no answer"}]})]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n")
    original = path.read_bytes()
    evalset = load_file_set(path)
    assert [i.line for i in evalset.items] == [1, 3]
    d = evalset.description
    assert (d["read"], d["kept"], d["dropped"]) == (4, 2, 2)
    assert sorted(r["line"] for r in evalset.rejects) == [2, 4]
    assert all(r["reason"] and r["raw"] for r in evalset.rejects)
    assert path.read_bytes() == original  # the input is never rewritten


def test_validation_set_is_grouped_by_act():
    evalset = load_validation_set(REFERENCE_QA)
    assert evalset.description["split"]["shared_acts"] == []
    assert 10 <= len(evalset.items) <= 25 and evalset.description["read"] == 148


def test_generated_set_has_cited_references_and_refusals(statute_index):
    evalset = generate_legislation_set(statute_index, questions=10, seed=1)
    assert len(evalset.items) == 10
    kinds = [i.meta["kind"] for i in evalset.items]
    assert kinds.count("refusal") == 2
    for item in evalset.items:
        if item.meta["kind"] != "refusal":
            # The provision the question is about comes first (the text may cite others after it).
            checked = check_citations(item.reference, statute_index)
            assert checked[0].status == "verified", item.reference
        else:
            assert metrics.is_refusal(item.reference)
    assert generate_legislation_set(statute_index, questions=10, seed=1).items == evalset.items
