"""The citation parser on hand-written statutory phrasing, and verdicts against the bundled index."""

from __future__ import annotations

import json

import pytest
from statutes import statute_db, statute_index  # noqa: F401 - fixtures

from legalft.legal.citations import check_citations, find_acts, parse_citations, summarise

CA = "Charities Act 2022"
BSA = "Building Safety Act 2022"
ARIA = "Advanced Research and Invention Agency Act 2022"

# (text, [(act, kind, number, subsection)]); paragraph cases carry the Schedule as a fifth item.
CASES: list[tuple[str, list[tuple]]] = [
    # plain sections
    ("Section 3 of the Charities Act 2022 provides that ...", [(CA, "section", "3", None)]),
    ("Under section 12 of the Companies Act 2006, a company must ...", [("Companies Act 2006", "section", "12", None)]),
    ("section 1 of the Interpretation Act 1978", [("Interpretation Act 1978", "section", "1", None)]),
    ("See section 7A of the Building Safety Act 2022.", [(BSA, "section", "7A", None)]),
    ("section 12ZA of the Finance Act 2020", [("Finance Act 2020", "section", "12ZA", None)]),
    ("SECTION-free text: the Charities Act 2022 as a whole.", []),
    # abbreviations
    ("Charities Act 2022, s 12", [(CA, "section", "12", None)]),
    ("Charities Act 2022, s. 12(1)", [(CA, "subsection", "12", "1")]),
    ("the Companies Act 2006 s.172", [("Companies Act 2006", "section", "172", None)]),
    ("as s. 3(1) of the Charities Act 2022 says", [(CA, "subsection", "3", "1")]),
    ("s 3(2)(a) of the Charities Act 2022", [(CA, "subsection", "3", "2")]),
    ("s. 12(1A) of the Charities Act 2022", [(CA, "subsection", "12", "1A")]),
    # subsections
    ("section 3(1) of the Charities Act 2022", [(CA, "subsection", "3", "1")]),
    ("subsection (2) of section 5 of the Charities Act 2022", [(CA, "subsection", "5", "2")]),
    ("subsections (2) and (3) of section 5 of the Charities Act 2022",
     [(CA, "subsection", "5", "2"), (CA, "subsection", "5", "3")]),
    ("Section 5 of the Charities Act 2022 applies; subsection (4) of that section adds a duty.",
     [(CA, "section", "5", None), (CA, "subsection", "5", "4")]),
    ("Sub-section (1) of section 2 of the Charities Act 2022", [(CA, "subsection", "2", "1")]),
    # ranges and lists
    ("ss. 3–5 of the Charities Act 2022", [(CA, "section", n, None) for n in ("3", "4", "5")]),
    ("ss 3-5 of the Charities Act 2022", [(CA, "section", n, None) for n in ("3", "4", "5")]),
    ("sections 3 to 5 of the Charities Act 2022", [(CA, "section", n, None) for n in ("3", "4", "5")]),
    ("sections 3 and 4 of the Charities Act 2022", [(CA, "section", "3", None), (CA, "section", "4", None)]),
    ("sections 3, 4 and 7 of the Charities Act 2022",
     [(CA, "section", "3", None), (CA, "section", "4", None), (CA, "section", "7", None)]),
    ("sections 3 or 4 of the Charities Act 2022", [(CA, "section", "3", None), (CA, "section", "4", None)]),
    ("sections 10A to 10C of the Charities Act 2022", [(CA, "section", "10A", None), (CA, "section", "10C", None)]),
    ("ss. 1–3 and 9 of the Charities Act 2022", [(CA, "section", n, None) for n in ("1", "2", "3", "9")]),
    # schedules and paragraphs
    ("Schedule 2 to the Charities Act 2022", [(CA, "schedule", "2", None)]),
    ("Schedule 1 contains further provision about ARIA (Advanced Research and Invention Agency Act 2022).",
     [(ARIA, "schedule", "1", None)]),
    ("Schedules 2 and 3 to the Charities Act 2022", [(CA, "schedule", "2", None), (CA, "schedule", "3", None)]),
    ("paragraph 3 of Schedule 1 to the Charities Act 2022", [(CA, "paragraph", "3", None, "1")]),
    ("paragraphs 3 and 4 of Schedule 1 to the Charities Act 2022",
     [(CA, "paragraph", "3", None, "1"), (CA, "paragraph", "4", None, "1")]),
    ("Schedule 1 paragraph 4 of the Charities Act 2022", [(CA, "paragraph", "4", None, "1")]),
    ("Sch. 2, para. 5 of the Charities Act 2022", [(CA, "paragraph", "5", None, "2")]),
    ("para 3(2) of Schedule 4 to the Charities Act 2022", [(CA, "paragraph", "3", None, "4")]),
    # regulations, orders, rules
    ("regulation 4 of the Money Laundering Regulations 2017", [("Money Laundering Regulations 2017", "regulation", "4", None)]),
    ("reg. 4(2) of the Money Laundering Regulations 2017", [("Money Laundering Regulations 2017", "regulation", "4", "2")]),
    ("regulations 4 and 5 of the Money Laundering Regulations 2017",
     [("Money Laundering Regulations 2017", "regulation", "4", None), ("Money Laundering Regulations 2017", "regulation", "5", None)]),
    ("article 5 of the Companies (Northern Ireland) Order 1986", [("Companies (Northern Ireland) Order 1986", "article", "5", None)]),
    ("art. 3 of the Road Traffic (Northern Ireland) Order 1981", [("Road Traffic (Northern Ireland) Order 1981", "article", "3", None)]),
    ("The Money Laundering Regulations 2017 apply.", []),
    # parts
    ("Part 2 of the Charities Act 2022", [(CA, "part", "2", None)]),
    ("Part II of the Companies Act 1967", [("Companies Act 1967", "part", "2", None)]),
    ("Parts 2 and 3 of the Building Safety Act 2022", [(BSA, "part", "2", None), (BSA, "part", "3", None)]),
    # "this Act", "that Act" and context
    ("The Charities Act 2022 amends much; section 4 of this Act deals with orders.", [(CA, "section", "4", None)]),
    ("Under section 1 of the Building Safety Act 2022, and section 2 of that Act, ...",
     [(BSA, "section", "1", None), (BSA, "section", "2", None)]),
    ("Section 2 of this Act refers back to the Charities Act 2022.", [(CA, "section", "2", None)]),
    ("Section 1 of the Charities Act 2022 applies. Section 2 then adds a power.",
     [(CA, "section", "1", None), (CA, "section", "2", None)]),
    ("section 1 of the Charities Act 2022 and section 1 of the Building Safety Act 2022",
     [(CA, "section", "1", None), (BSA, "section", "1", None)]),
    ("What does section 5 provide?", [(None, "section", "5", None)]),
    # titles the old detector missed
    ("What does section 1(1) of the Statutory Companies (Redeemable Stock) Act 1915 permit?",
     [("Statutory Companies (Redeemable Stock) Act 1915", "subsection", "1", "1")]),
    ("section 2 of the Company and Business Names (Chamber of Commerce, Etc.) Act 1999",
     [("Company and Business Names (Chamber of Commerce, Etc.) Act 1999", "section", "2", None)]),
    ("section 1 of the Open-Ended Investment Companies Act (Northern Ireland) 2002",
     [("Open-Ended Investment Companies Act (Northern Ireland) 2002", "section", "1", None)]),
    ("section 3 of the Carer’s Leave Act 2023", [("Carer’s Leave Act 2023", "section", "3", None)]),
    ("section 1 of the Building Societies Act 1986 (Amendment) Act 2024",
     [("Building Societies Act 1986 (Amendment) Act 2024", "section", "1", None)]),
    ("section 2 of the Co-operatives, Mutuals and Friendly Societies Act 2023",
     [("Co-operatives, Mutuals and Friendly Societies Act 2023", "section", "2", None)]),
    ("section 4 of the Employers' Liability (Compulsory Insurance) Act 1969",
     [("Employers' Liability (Compulsory Insurance) Act 1969", "section", "4", None)]),
    # repeats are one citation
    ("Section 3 of the Charities Act 2022 ... as section 3 of the Charities Act 2022 says", [(CA, "section", "3", None)]),
    # text that merely looks like a citation
    ("a section of the community", []),
    ("Act 2 of the play opens in Verona.", []),
    ("The schedule for 2 weeks was tight.", []),
    ("It's 3 o'clock, the parts 2 go together.", []),
    ("The article 5 writers published in the paper was long.", [(None, "article", "5", None)]),
    ("She read paragraph 3 of the letter.", []),
    ("There were 12 sections in total.", []),
    ("In 2022 the Act came into force.", []),
    ("Costs 3 pounds.", []),
    ("The regulation of markets matters.", []),
    ("Part of the reason is cost.", []),
]


def _tuple(citation) -> tuple:
    base = (citation.act, citation.kind, citation.number, citation.subsection)
    return base + (citation.schedule,) if citation.kind == "paragraph" else base


@pytest.mark.parametrize("text, expected", CASES, ids=[c[0][:50] for c in CASES])
def test_parser_table(text, expected):
    assert [_tuple(c) for c in parse_citations(text)] == expected


def test_table_is_large_enough():
    assert len(CASES) >= 60


def test_span_is_as_written_and_shared_by_a_range():
    citations = parse_citations("As ss. 3–5 of the Charities Act 2022 show.")
    assert {c.text for c in citations} == {"ss. 3–5 of the Charities Act 2022"}
    assert [c.year for c in citations] == [2022, 2022, 2022]


def test_act_titles_drop_question_words():
    titles = [m.title for m in find_acts("Does the Company and Business Names (Chamber of Commerce, Etc.) Act 1999 "
                                         "extend to Northern Ireland? Under the Companies Act 2006, yes.")]
    assert titles == ["Company and Business Names (Chamber of Commerce, Etc.) Act 1999", "Companies Act 2006"]


# --- verdicts against the bundled index --------------------------------------------------------------


def _verdicts(text, index):
    return [(c.citation.kind, c.citation.number, c.citation.subsection, c.status) for c in check_citations(text, index)]


def test_verdicts_real_absent_and_unindexed(statute_index):
    text = ("Section 1 of the Charities Act 2022 amends the Charities Act 2011. Section 400 of the Charities Act 2022 "
            "does not exist. Section 172 of the Companies Act 2006 is about directors.")
    assert _verdicts(text, statute_index) == [
        ("section", "1", None, "verified"), ("section", "400", None, "not_found"),
        ("section", "172", None, "unknown_act")]


def test_subsection_must_exist_in_the_text(statute_index):
    text = f"Section 1(3) of the {ARIA} says that Schedule 1 has more; section 1(9) adds nothing."
    assert _verdicts(text, statute_index) == [("subsection", "1", "3", "verified"),
                                              ("schedule", "1", None, "unknown_act"),
                                              ("subsection", "1", "9", "not_found")]


def test_verified_carries_the_text_and_the_link(statute_index):
    (item,) = check_citations(f"section 1 of the {ARIA}", statute_index)
    assert item.provision.url == "https://www.legislation.gov.uk/ukpga/2022/4/section/1"
    assert "Advanced Research and Invention Agency is established" in item.provision.text


def test_known_titles_win_over_the_heuristic(statute_index):
    # "Carer’s" with a curly apostrophe, written here with a straight one: the index's title is kept.
    (item,) = check_citations("Carer's Leave Act 2023, s 1", statute_index)
    assert item.citation.act == "Carer’s Leave Act 2023" and item.status == "verified"


def test_unknown_act_is_never_verified(statute_index):
    checked = check_citations("What does section 5 provide? Section 3 of the Widgets Act 2031.", statute_index)
    assert [c.status for c in checked] == ["unknown_act", "unknown_act"]


def test_summary_line(statute_index):
    checked = check_citations(f"Sections 1 and 2 of the {ARIA}; section 99 of the {ARIA}.", statute_index)
    assert summarise(checked).line == "3 citations: 2 verified, 1 not found"
    assert summarise([]).line == "No citations."


def test_grounded_marks_verified_outside_the_context(statute_index):
    hits = [p for p, _ in statute_index.search("establishment ARIA body corporate", 1, act=ARIA)]
    checked = check_citations(f"Section 1 and section 2 of the {ARIA}.", statute_index, retrieved=hits)
    assert [c.retrieved for c in checked] == [True, False]
    assert "1 verified outside the retrieved provisions" in summarise(checked).line


def test_cli_json_shape(statute_index, capsys):
    from legalft.cli import main

    assert main(["cite", "check", f"ss. 1-2 of the {ARIA}; section 99 of the Charities Act 2022; "
                 "s. 3(1) of the Companies Act 2006", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"citations": [
        {"text": f"ss. 1-2 of the {ARIA}", "act": ARIA, "year": 2022, "kind": "section", "number": "1",
         "subsection": None, "status": "verified"},
        {"text": f"ss. 1-2 of the {ARIA}", "act": ARIA, "year": 2022, "kind": "section", "number": "2",
         "subsection": None, "status": "verified"},
        {"text": "section 99 of the Charities Act 2022", "act": CA, "year": 2022, "kind": "section",
         "number": "99", "subsection": None, "status": "not_found"},
        {"text": "s. 3(1) of the Companies Act 2006", "act": "Companies Act 2006", "year": 2006,
         "kind": "subsection", "number": "3", "subsection": "1", "status": "unknown_act"},
    ]}


def test_cli_reads_a_file_and_a_user_corpus(statute_index, tmp_path, capsys):
    from legalft.cli import main

    corpus = tmp_path / "widgets.jsonl"
    corpus.write_text(json.dumps({"id": "https://www.legislation.gov.uk/ukpga/2031/9/section/3",
                                  "act_title": "Widgets Act 2031", "section": "3", "heading": "Widgets",
                                  "text": "(1) A widget is a thing.\n(2) Nothing else is."}) + "\nnot json\n")
    answer = tmp_path / "answer.txt"
    answer.write_text("Section 3(2) of the Widgets Act 2031, and section 4 of that Act.")
    assert main(["cite", "check", str(answer), "--corpus", str(corpus), "--json"]) == 0
    statuses = [c["status"] for c in json.loads(capsys.readouterr().out)["citations"]]
    assert statuses == ["verified", "not_found"]
    assert main(["cite", "check", "x", "--corpus", str(tmp_path / "missing.jsonl")]) == 2
