"""The Chat page with AppTest against the managed stand-in: citation chips under every answer (compare
mode and streaming included), grounded answers, the service's base model as the comparison, settings
kept across visits, an answer cut short kept in the history, and the smoke model labelled as noise."""

from __future__ import annotations

from pathlib import Path

from managed import control, deployed  # noqa: F401 - fixtures
from statutes import statute_db, statute_index  # noqa: F401 - fixtures
from streamlit.testing.v1 import AppTest

from legalft.endpoints import save_endpoint
from tests.conftest import open_app_page

ROOT = Path(__file__).resolve().parent.parent
ARIA = "Advanced Research and Invention Agency Act 2022"


def open_chat(**state) -> AppTest:
    return open_app_page("views/chat.py", timeout=60, **state)


def test_chips_and_summary_under_a_streamed_answer(deployed):
    tuned = deployed["tuned"]
    at = open_chat(chat_endpoint=tuned.id)
    at.chat_input(key="chat_question").set_value("What does the Interpretation Act 1978 say?").run()
    assert not at.exception, at.exception
    [turn] = at.session_state["chat_history"]
    answer = turn["answers"][0]
    assert answer["citations"]["line"] == "1 citation: 1 cannot be checked"
    assert any(c.value == "1 citation: 1 cannot be checked" for c in at.caption)

    control(deployed["server"], {"chat_reply": f"Section 1 of the {ARIA} establishes ARIA; section 99 of that "
                                               "Act sets its budget."})
    at.chat_input(key="chat_question").set_value("What is ARIA?").run()
    assert not at.exception, at.exception
    report = at.session_state["chat_history"][1]["answers"][0]["citations"]
    assert report["line"] == "2 citations: 1 verified, 1 not found"
    verified, absent = report["chips"]
    assert verified["url"] == "https://www.legislation.gov.uk/ukpga/2022/4/section/1"
    assert "body corporate called the Advanced Research and Invention Agency" in verified["text"]
    assert absent["status"] == "not_found" and absent["reason"] == f"the {ARIA} has no s. 99"
    # The earlier answer's chips are still shown after the rerun; the verified one opens a popover.
    at.run()
    assert [c.value for c in at.caption if "citation" in c.value] == [
        "1 citation: 1 cannot be checked", "2 citations: 1 verified, 1 not found"]
    popovers = [p.proto.popover.label for p in at.get("popover")]
    assert popovers == [f"✓ s. 1 {ARIA}"]


def test_compare_offers_the_services_base_model_and_checks_both(deployed):
    tuned = deployed["tuned"]
    at = open_chat(chat_endpoint=tuned.id)
    at.toggle(key="chat_compare").set_value(True).run()
    assert not at.exception, at.exception
    base_box = at.selectbox(key="chat_base_endpoint")
    assert base_box.value != tuned.id
    chosen = at.session_state["chat_base_endpoint"]
    from legalft.endpoints import list_endpoints

    base = next(e for e in list_endpoints() if e.id == chosen)
    assert base.model == tuned.details["base_model"] and base.details["role"] == "base"
    at.chat_input(key="chat_question").set_value("What does the Interpretation Act 1978 say?").run()
    assert not at.exception, at.exception
    answers = at.session_state["chat_history"][0]["answers"]
    assert [a["endpoint_id"] for a in answers] == [tuned.id, base.id]
    assert [a["model"] for a in answers] == [tuned.model, base.model]
    assert all(a["citations"]["line"] == "1 citation: 1 cannot be checked" for a in answers)


def test_grounded_answer_is_given_the_retrieved_provisions(deployed):
    at = open_chat(chat_endpoint=deployed["tuned"].id)
    at.toggle(key="chat_grounded").set_value(True).run()
    at.chat_input(key="chat_question").set_value(f"What does section 2 of the {ARIA} let ARIA do?").run()
    assert not at.exception, at.exception
    turn = at.session_state["chat_history"][0]
    assert turn["grounded"] and turn["answers"][0]["retrieved"][0]["label"] == f"Section 2 of the {ARIA}"
    assert any(e.label.startswith("Provisions given to the model") for e in at.expander)


def test_settings_and_model_are_kept_across_visits(deployed):
    at = open_chat(chat_endpoint=deployed["base"].id)
    at.number_input(key="chat_max_tokens").set_value(77).run()
    at.switch_page("views/costs.py")
    at.run()
    at.switch_page("views/chat.py")
    at.run()
    assert not at.exception, at.exception
    assert at.number_input(key="chat_max_tokens").value == 77
    assert at.session_state["chat_endpoint"] == deployed["base"].id


def test_an_answer_cut_short_is_kept_and_marked(deployed):
    tuned = deployed["tuned"]
    history = [{"question": "first", "answers": [{"endpoint_id": tuned.id, "name": tuned.name, "text": "Full answer."}]},
               {"question": "second", "answers": [{"endpoint_id": tuned.id, "name": tuned.name, "text": "Half an",
                                                   "streaming": True}]}]
    at = open_chat(chat_endpoint=tuned.id, chat_history=history)
    kept = at.session_state["chat_history"]
    assert [t["question"] for t in kept] == ["first", "second"]
    assert kept[1]["answers"][0]["stopped"] and "streaming" not in kept[1]["answers"][0]
    assert any("stopped before the end" in c.value for c in at.caption)
    assert "Half an" in [m.value for m in at.markdown]


def test_smoke_model_is_labelled_as_noise(statute_index, tmp_path):
    folder = tmp_path / "smoke"
    folder.mkdir()
    (folder / "smoke_spec.json").write_text("{}")
    endpoint = save_endpoint(kind="local", name="smoke", base_url="http://127.0.0.1:9/v1", model=str(folder),
                             status="active", details={"model_dir": str(folder)})
    at = open_chat(chat_endpoint=endpoint.id)
    assert any("Its answers are noise" in w.value for w in at.warning)
