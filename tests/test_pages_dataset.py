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
    at = open_page("pages/dataset.py")
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
    at.switch_page("pages/home.py").run()
    assert metrics(at)["Datasets registered"] == "1"


def test_split_grouped_by_act_from_the_page():
    at = open_page("pages/dataset.py")
    open_tab(at, "Split & export")
    at.button(key="dataset_split_go").click().run()
    assert not at.exception, at.exception
    split = at.session_state["dataset_split"]
    assert split["train_records"] + split["validation_records"] == 148
    assert split["grouped_by_act"] and split["shared_acts"] == []
    assert any("Train **" in m.value for m in at.markdown)


def test_upload_with_malformed_line_shows_counts_and_line_number():
    at = open_page("pages/dataset.py")
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
    at = open_page("pages/dataset.py")
    at.radio(key="dataset_source").set_value("Upload a file").run()
    at.file_uploader(key="dataset_upload").upload("weights.jsonl", b"\x00\x01" * 500).run()
    assert any("binary file" in e.value for e in at.error)


def test_convert_legislation_from_the_page():
    at = open_page("pages/dataset.py")
    at.radio(key="dataset_source").set_value("Convert legislation").run()
    at.multiselect(key="dataset_kinds").set_value(["provision"]).run()
    at.button[0].click().run()  # the form's submit button
    assert not at.exception, at.exception
    assert "pairs (provision" in at.success[0].value
    values = metrics(at)
    assert values["Records read"] == values["Kept"] and int(values["Records read"].replace(",", "")) > 800
