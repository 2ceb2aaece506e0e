"""The Evaluate page with AppTest: a run base against fine-tuned, grounded and not, against the managed
stand-in; the table, drill-down, CSV and run card; a stopped run continued from the page."""

from __future__ import annotations

import threading
from pathlib import Path

from managed import control, deployed  # noqa: F401 - fixtures
from statutes import statute_db, statute_index  # noqa: F401 - fixtures
from streamlit.testing.v1 import AppTest

from legalft.evaluate.runs import EvalTarget, create_run, load_run, run_evaluation
from legalft.evaluate.sets import generate_legislation_set
from tests.conftest import open_app_page

ROOT = Path(__file__).resolve().parent.parent
ARIA = "Advanced Research and Invention Agency Act 2022"


def open_evaluate() -> AppTest:
    return open_app_page("views/evaluate.py")


def test_page_without_endpoints_or_runs(statute_index):
    at = open_evaluate()
    assert any("No endpoint to evaluate yet" in i.value for i in at.info)
    assert any("No evaluation yet" in i.value for i in at.info)
    assert at.button(key="eval_run").disabled


def test_run_base_against_fine_tuned_from_the_page(deployed):
    control(deployed["server"], {"chat_reply": f"Section 1 of the {ARIA} applies; section 99 of that Act too."})
    at = open_evaluate()
    at.radio(key="eval_source").set_value("legislation").run()
    at.number_input(key="eval_limit").set_value(3).run()
    at.multiselect(key="eval_endpoints").set_value([deployed["tuned"].id]).run()
    at.selectbox(key="eval_base").set_value(deployed["base"].id).run()
    at.radio(key="eval_grounding").set_value("both").run()
    assert any("3 questions generated" in c.value for c in at.caption)
    at.button(key="eval_run").click().run()
    assert not at.exception, at.exception
    assert any("succeeded, 12 of 12 answers (0 failed)" in s.value for s in at.success)
    run = load_run(at.session_state["eval_run_id"])
    assert [(t["role"], t["grounded"]) for t in run.targets] == [
        ("base", False), ("base", True), ("fine-tuned", False), ("fine-tuned", True)]
    table = at.dataframe[0].value
    assert list(table["target"]) == [t["label"] for t in run.targets]
    assert set(table["invented citations"].str.split(" ").str[0]) == {"50.0%"}  # 1 of 2 checkable, every answer
    # The drill-down: the first question's four answers side by side, each with its citation verdicts.
    shown = " ".join(m.value for m in at.markdown)
    assert shown.count(f"s. 1 {ARIA}: verified") == 4 and shown.count(f"s. 99 {ARIA}: not found") == 4
    assert any(e.label == "Run card" for e in at.expander)


def test_a_stopped_run_is_continued_from_the_page(deployed):
    evalset = generate_legislation_set(deployed["index"], questions=4, seed=9)
    run_id = create_run(evalset, [EvalTarget(deployed["tuned"].id)])
    stop = threading.Event()
    stop.set()  # stopped before the first answer
    assert run_evaluation(run_id, stop=stop, index=deployed["index"]).status == "cancelled"
    at = open_evaluate()
    assert any("This run is cancelled: 4 answers missing" in w.value for w in at.warning)
    at.button(key="eval_continue").click().run()
    assert not at.exception, at.exception
    assert load_run(run_id).status == "succeeded"
    assert not any("answers missing" in w.value for w in at.warning)


def test_monitor_shows_the_latest_evaluation_before_deploying(deployed):
    job = deployed["job"]

    def monitor_page() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.session_state["monitor_job_id"] = job.id
        at.run()
        at.switch_page("views/monitor.py")
        at.run()
        assert not at.exception, at.exception
        return at

    at = monitor_page()
    assert any("Not evaluated against its base model yet" in c.value for c in at.caption)
    # The fine-tune invents a provision the base does not: the Monitor page says so before Deploy.
    evalset = generate_legislation_set(deployed["index"], questions=2, seed=11)
    run_id = create_run(evalset, [EvalTarget(deployed["base"].id, role="base"),
                                  EvalTarget(deployed["tuned"].id, role="fine-tuned")])
    control(deployed["server"], {"chat_reply": f"Section 1 of the {ARIA} applies."})
    run_evaluation(run_id, index=deployed["index"])
    from legalft.db import connect

    with connect() as conn:  # the fine-tune's answers, rewritten as if it had cited an absent section
        conn.execute("DELETE FROM eval_answers WHERE run_id = ? AND label = ?", (run_id, deployed["tuned"].name))
    control(deployed["server"], {"chat_reply": f"Section 99 of the {ARIA} applies."})
    run_evaluation(run_id, index=deployed["index"])
    at = monitor_page()
    warning = " ".join(w.value for w in at.warning)
    assert f"Latest evaluation ({run_id}" in warning
    assert "the fine-tuned model invents more citations than its base (100.0% vs 0.0%)" in warning
