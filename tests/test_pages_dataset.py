"""Home and Dataset pages through Streamlit's AppTest (the real app script, page switching included)."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from legalft.data.registry import list_datasets
from tests.conftest import ROOT

APP = str(ROOT / "app.py")


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page)
        at.run()
        assert not at.exception, at.exception
    return at


def issues_table(at: AppTest):
    table = next(t.value for t in at.table if {"kind", "message"} <= set(t.value.columns))
    return table.reset_index()


def browse_table(at: AppTest):
    return next(d.value for d in at.dataframe if "#" in d.value.columns)


def open_tab(at: AppTest, label: str) -> AppTest:
    """Select a tab as a click does: only the open tab's content runs."""
    at.session_state["dataset_tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_home_shows_workflow_and_state():
    at = open_page()
    assert at.title[0].value.endswith("legalft")
    values = metrics(at)
    assert values["Datasets registered"] == "0" and values["Fine-tuning jobs"] == "0"


def test_dataset_page_opens_with_reference_set_and_registers_it():
    at = open_page("views/dataset.py")
    values = metrics(at)
    assert (values["Records read"], values["Kept"], values["Repaired"], values["Dropped"]) == ("148", "148", "0", "0")
    issues = issues_table(at)
    # Line 1's question, moved out of the role field, is a fragment: flagged as doubtful, not shown as repaired.
    assert list(issues["line"]) == [1, 1]
    assert list(issues["kind"]) == ["doubtful_repair", "promoted_invalid_role_to_user_content"]
    assert any("look doubtful (line 1)" in w.value for w in at.warning)
    at.button(key="dataset_use").click().run()
    assert not at.exception
    assert [d.kept_records for d in list_datasets()] == [148]
    assert at.session_state["active_dataset_id"] == list_datasets()[0].id
    assert "Registered as dataset" in at.success[0].value
    # The home page now counts it.
    at.switch_page("views/home.py").run()
    assert metrics(at)["Datasets registered"] == "1"


def test_split_grouped_by_act_from_the_page():
    at = open_page("views/dataset.py")
    open_tab(at, "Split & export")
    at.button(key="dataset_split_go").click().run()
    assert not at.exception, at.exception
    split = at.session_state["dataset_split"]
    assert split["train_records"] + split["validation_records"] == 148
    assert split["grouped_by_act"] and split["shared_acts"] == []
    assert any("Train **" in m.value for m in at.markdown)


def test_upload_with_malformed_line_shows_counts_and_line_number():
    at = open_page("views/dataset.py")
    at.radio(key="dataset_source").set_value("Upload a file").run()
    content = "\n".join([
        json.dumps({"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]}),
        "{broken json",
        json.dumps({"prompt": "Q2", "completion": "A2"}),
    ]).encode()
    at.file_uploader(key="dataset_upload").upload("mixed.jsonl", content, "application/jsonl").run()
    assert not at.exception, at.exception
    values = metrics(at)
    assert (values["Records read"], values["Kept"], values["Repaired"], values["Dropped"]) == ("3", "2", "0", "1")
    assert values["Converted"] == "1"  # prompt/completion → messages is a conversion, not a repair
    issues = issues_table(at)
    row = issues[issues["kind"] == "invalid_json"].iloc[0]
    assert row["line"] == 2 and row["message"].startswith("line 2:")


def test_upload_of_binary_file_says_why():
    at = open_page("views/dataset.py")
    at.radio(key="dataset_source").set_value("Upload a file").run()
    at.file_uploader(key="dataset_upload").upload("weights.jsonl", b"\x00\x01" * 500).run()
    assert any("binary file" in e.value for e in at.error)


def test_convert_legislation_from_the_page():
    at = open_page("views/dataset.py")
    at.radio(key="dataset_source").set_value("Convert legislation").run()
    at.multiselect(key="dataset_kinds").set_value(["provision"]).run()
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, at.exception
    assert "pairs (provision" in at.success[0].value
    values = metrics(at)
    assert values["Records read"] == values["Kept"] and int(values["Records read"].replace(",", "")) > 800


# --- the Dataset page as a new user meets it (issue #10) ----------------------------------------


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    if at.radio(key="dataset_source").value != "Upload a file":
        at.radio(key="dataset_source").set_value("Upload a file").run()
    at.file_uploader(key="dataset_upload").upload(name, content, "application/octet-stream").run()
    assert not at.exception, at.exception
    return at


def test_csv_empty_row_is_counted_and_an_empty_answer_is_named():
    rows = ["question,answer"] + [f"What does section {i} provide?,It provides {i}." for i in range(1, 29)]
    rows += [",", "What does section 30 provide?,"]  # a fully empty row, and an empty answer cell
    at = upload(open_page("views/dataset.py"), "thirty.csv", ("\n".join(rows) + "\n").encode())
    values = metrics(at)
    assert (values["Records read"], values["Kept"], values["Dropped"]) == ("30", "28", "2")
    messages = list(issues_table(at)["message"])
    assert "line 30: the row is empty (record dropped)" in messages
    assert "line 31: the answer is empty (record dropped)" in messages


def test_conversions_are_not_repairs():
    content = b"".join(json.dumps({"question": f"Q{i}?", "answer": f"A{i}."}).encode() + b"\n" for i in range(24))
    at = upload(open_page("views/dataset.py"), "qa.jsonl", content)
    values = metrics(at)
    assert (values["Kept"], values["Converted"], values["Repaired"]) == ("24", "24", "0")
    assert any("Every record was valid" in s.value for s in at.success)


def test_prose_renamed_jsonl_gets_one_message_not_a_row_per_line():
    prose = b"Companies Act 2006\n\nPART 1\n1 Companies\nIn the Companies Acts a company means a company formed.\n"
    at = upload(open_page("views/dataset.py"), "act.jsonl", prose)
    assert [e.value for e in at.error if "plain text, not JSONL" in e.value and "Convert legislation" in e.value]
    assert not at.metric and not at.table  # no counts, no per-line table, no chart


def test_banner_and_report_belong_to_the_file_shown():
    at = open_page("views/dataset.py")
    at.button(key="dataset_use").click().run()
    assert any("Registered as dataset" in s.value for s in at.success)
    at = upload(at, "empty.jsonl", b'{"messages": [{"role": "user", "content": "only a question"}]}\n')
    assert metrics(at)["Kept"] == "0"
    assert not any("Registered as dataset" in s.value for s in at.success)
    at.file_uploader(key="dataset_upload").clear().run()
    assert not at.exception and not at.metric  # the previous file's report is gone with it
    assert any("Choose a file" in i.value for i in at.info)


def test_unloadable_tokenizer_stays_inside_statistics(tmp_path):
    at = open_tab(open_page("views/dataset.py"), "Statistics")
    at.text_input(key="dataset_tokenizer").set_value(str(tmp_path / "no-such-tokenizer")).run()
    assert not at.exception, at.exception
    assert any("cannot load tokenizer" in w.value and "approximate" in w.value for w in at.warning)
    assert metrics(at)["Tokens"] != "0"  # the labelled approximation is shown
    assert at.session_state["dataset_tab"] == "Statistics"  # no jump back to Report
    assert at.button(key="dataset_use").disabled is False  # "Use for training" still offered
    open_tab(at, "Browse")
    assert browse_table(at).shape[0] == 148


def test_browse_searches_the_whole_file_and_shows_a_matching_record():
    at = open_tab(open_page("views/dataset.py"), "Browse")
    at.session_state["dataset_pick"] = 1
    at.text_input(key="dataset_search").set_value("companies act 2006").run()
    table = browse_table(at)
    numbers = list(table["#"])
    assert numbers and 1 not in numbers
    assert at.selectbox(key="dataset_pick").value == numbers[0]
    assert "Companies Act 2006" in at.json[0].proto.body


def test_search_reads_past_the_first_50000_records(tmp_path):
    from legalft.data.workbench import search_records

    clean = tmp_path / "big.jsonl"
    with open(clean, "w", encoding="utf-8") as fh:
        for i in range(60_000):
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"Question {i} about the Tést Act"},
                                              {"role": "assistant", "content": "A"}]}, ensure_ascii=False) + "\n")
    found = search_records(clean, "question 55555 ")
    assert (found.matches, found.records) == (1, 60_000) and found.rows[0][0] == 55_556
    assert search_records(clean, "TÉST", limit=5).matches == 60_000


def test_train_page_reads_what_registration_computed(monkeypatch, tmp_path):
    import time

    from legalft import costs
    from legalft.data import split
    from legalft.data.registry import register_dataset

    clean = tmp_path / "big.jsonl"
    with open(clean, "w", encoding="utf-8") as fh:
        for i in range(5000):
            fh.write(json.dumps({"messages": [
                {"role": "user", "content": f"What does section {i} of the Test{i % 50} Act 2020 provide?"},
                {"role": "assistant", "content": "It provides that the Act applies. " * 20}]}) + "\n")
    dataset = register_dataset(clean, "big.jsonl", {"kept_records": 5000, "total_records": 5000})
    assert dataset.report["training"]["holdout"]["validation"]

    def not_again(*args, **kwargs):
        raise AssertionError("the Train page recomputed what registration stored")

    monkeypatch.setattr(costs, "estimate_trained_tokens", not_again)
    monkeypatch.setattr(split, "split_file", not_again)
    at = open_page()
    started = time.perf_counter()
    at.switch_page("views/train.py").run()
    elapsed = time.perf_counter() - started
    assert not at.exception, at.exception
    assert metrics(at)["Records"] == "5,000"
    assert elapsed < 5, f"the Train page took {elapsed:.1f} s"
