"""Evaluate: does the fine-tune help? Held-out questions asked of base and fine-tuned, with and without grounding.

The page lays out a run (set, endpoints, grounding, judge), runs it with a progress bar (stored per
answer in SQLite: a run stopped half way is continued with **Continue**), and shows what
``legalft.evaluate.report`` computes: the comparison table, charts, a per-question drill-down with
the answers side by side and their citation verdicts, history across runs, CSV and a run card.
"""

import pandas as pd
import plotly.express as px
import streamlit as st

from legalft.data.registry import list_datasets
from legalft.data.workbench import save_upload
from legalft.endpoints import list_endpoints
from legalft.evaluate import report, sets
from legalft.evaluate.runs import EvalConfig, EvalTarget, create_run, list_runs, load_run, run_evaluation
from legalft.home import bundled_data_dir
from legalft.legal.index import default_index

NOT_USABLE = ("stopped", "failed", "error", "validating", "deleted")
SOURCES = {"validation": "Validation split of a dataset (grouped by Act)", "file": "Upload a file",
           "legislation": "Generated from the statute index"}

st.title("Evaluate")
st.caption("Ask held-out questions of the fine-tuned model and its base, each with and without grounding, and see "
           "which answers better and which invents fewer provisions. Citations are checked against the statute index.")

with st.spinner("Opening the statute index (built once, on first use) …"):
    index = default_index()
endpoints = [e for e in list_endpoints() if e.status not in NOT_USABLE]
by_id = {e.id: e for e in endpoints}

tab_new, tab_results, tab_history = st.tabs(["New run", "Results", "History"])


def _label(endpoint_id: int) -> str:
    e = by_id[endpoint_id]
    return f"{e.name} · {e.kind}"


def _progress_bar():
    bar = st.progress(0.0, text="Starting …")

    def update(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"{done} of {total} answers")

    return update


with tab_new:
    if not endpoints:
        st.info("No endpoint to evaluate yet: start a model server on the Chat page, or deploy a managed job "
                "from the Monitor page.")
    source = st.radio("Questions", list(SOURCES), format_func=SOURCES.get, key="eval_source", horizontal=True)
    evalset = None
    c1, c2, c3 = st.columns(3)
    limit = int(c1.number_input("Questions at most", 1, 5000, 20, key="eval_limit"))
    seed = int(c2.number_input("Seed", 0, 10_000, 0, key="eval_seed"))
    if source == "validation":
        choices = {"The bundled reference set (148 records)": str(bundled_data_dir() / "legislation_qa_clean.jsonl")}
        choices.update({f"{d.name} (#{d.id})": d.path for d in list_datasets()})
        picked = c3.selectbox("Dataset", list(choices), key="eval_dataset")
        fraction = st.slider("Validation fraction", 0.05, 0.5, 0.1, 0.05, key="eval_fraction")
        evalset = sets.load_validation_set(choices[picked], val_fraction=fraction, seed=seed, limit=limit)
    elif source == "file":
        upload = st.file_uploader("Questions with reference answers (JSONL, JSON, CSV/TSV or Parquet)",
                                  key="eval_upload")
        if upload is not None:
            evalset = sets.load_file_set(save_upload(upload.name, upload.getvalue()), limit=limit, name=upload.name)
    else:
        evalset = sets.generate_legislation_set(index, questions=limit, seed=seed)
    if evalset is not None:
        d = evalset.description
        if "read" in d:
            st.caption(f"{d['read']} records read: {d['kept']} kept, {d['dropped']} dropped; "
                       f"{len(evalset.items)} questions will be asked.")
            if d.get("dropped"):
                with st.expander(f"{d['dropped']} records dropped (kept with line and reason)"):
                    for issue in d["issues"][:20]:
                        st.write(issue)
            if d.get("split"):
                shared = d["split"]["shared_acts"]
                st.caption("No Act sits on both sides of the split." if not shared else
                           f"Acts on both sides: {', '.join(shared)}")
        else:
            st.caption(f"{len(evalset.items)} questions generated from indexed provisions (some on points the "
                       "named Act does not cover).")
    ids = list(by_id)
    tuned = st.multiselect("Endpoints to evaluate", ids, format_func=_label, key="eval_endpoints",
                           default=[i for i in ids if by_id[i].details.get("role") != "base"][:1])
    base = st.selectbox("Base model (compared with the others)", [None] + ids,
                        format_func=lambda i: "none" if i is None else _label(i), key="eval_base")
    g1, g2, g3 = st.columns(3)
    grounding = g1.radio("Grounding", ["off", "on", "both"], key="eval_grounding", horizontal=True,
                         help="both: each endpoint is asked twice, with and without the retrieved provisions.")
    k = int(g2.number_input("Provisions retrieved", 1, 10, 4, key="eval_k"))
    concurrency = int(g3.number_input("Questions in flight", 1, 16, 4, key="eval_concurrency"))
    h1, h2 = st.columns(2)
    max_tokens = int(h1.number_input("Max tokens per answer", 1, 4096, 512, key="eval_max_tokens"))
    judge = h2.selectbox("Judge (LLM as judge, optional)", [None] + ids,
                         format_func=lambda i: "no judge" if i is None else _label(i), key="eval_judge")
    ready = evalset is not None and evalset.items and (tuned or base is not None)
    if st.button("Run evaluation", key="eval_run", type="primary", disabled=not ready):
        flags = {"off": [False], "on": [True], "both": [False, True]}[grounding]
        targets = ([EvalTarget(base, grounded=g, role="base") for g in flags] if base is not None else []) + [
            EvalTarget(i, grounded=g, role="fine-tuned" if base is not None else None)
            for i in tuned if i != base for g in flags]
        config = EvalConfig(max_tokens=max_tokens, k=k, concurrency=concurrency, judge_endpoint_id=judge)
        try:
            run_id = create_run(evalset, targets, config)
        except ValueError as exc:
            st.error(str(exc))
        else:
            st.session_state["eval_run_id"] = run_id
            run = run_evaluation(run_id, progress=_progress_bar(), index=index)
            st.success(f"Run {run.id}: {run.status}, {run.done} of {run.total} answers ({run.failed} failed). "
                       "See Results.")


runs = list_runs()
with tab_results:
    if not runs:
        st.info("No evaluation yet: start one under New run, or with `legalft eval run`.")
    else:
        run_ids = [r["id"] for r in runs]
        if st.session_state.get("eval_run_id") not in run_ids:
            st.session_state["eval_run_id"] = run_ids[0]
        labels = {r["id"]: f"{r['id']} · {r['status']} · {r['questions']} questions · {r['created_at']}" for r in runs}
        run_id = st.selectbox("Run", run_ids, format_func=labels.get, key="eval_run_id")
        run = load_run(run_id)
        st.caption(f"{run.set.get('name')} · {run.done} of {run.total} answers, {run.failed} failed · "
                   f"grounded: top {run.config.get('k')} provisions")
        if run.status != "succeeded":
            st.warning(f"This run is {run.status}: {run.total - run.done} answers missing. Continue asks only those.")
            if st.button("Continue", key="eval_continue"):
                run = run_evaluation(run.id, progress=_progress_bar(), index=index)
                st.rerun()
        table = pd.DataFrame(report.comparison_rows(run))
        st.dataframe(table, hide_index=True, key="eval_table")
        chart = pd.DataFrame(report.chart_rows(run))
        if not chart.empty:
            chart["minus"] = chart["value"] - chart["low"].fillna(chart["value"])
            chart["plus"] = chart["high"].fillna(chart["value"]) - chart["value"]
            figure = px.bar(chart, x="metric", y="value", color="target", barmode="group",
                            error_y="plus", error_y_minus="minus", title="Figures with 95% intervals")
            st.plotly_chart(figure, key="eval_chart")
        d1, d2 = st.columns(2)
        d1.download_button("Download CSV", report.to_csv(run), f"{run.id}.csv", "text/csv", key="eval_csv")
        card_label = d2.selectbox("Run card for", [t["label"] for t in run.targets], key="eval_card_target")
        card = report.run_card(run, card_label)
        d2.download_button("Download run card", card, f"{run.id}-card.md", "text/markdown", key="eval_card_download")
        with st.expander("Run card"):
            st.markdown(card)

        st.subheader("Question by question")
        rows = report.question_rows(run)
        pick = st.selectbox("Question", list(range(len(rows))), key="eval_question",
                            format_func=lambda i: f"{i + 1}. {rows[i]['question'][:100]}")
        row = rows[pick]
        st.markdown(f"**Question** {row['question']}")
        st.markdown(f"**Reference** {row['reference']}")
        for column, (label, answer) in zip(st.columns(len(row["targets"])), row["targets"].items()):
            with column:
                st.markdown(f"**{label}**")
                if not answer:
                    st.caption("not asked yet")
                    continue
                if answer["status"] == "failed":
                    st.error(answer["error"])
                    continue
                st.markdown(answer["answer"] or "_(empty answer)_")
                metrics = answer["metrics"]
                st.caption(f"F1 {metrics['token_f1']:.2f} · ROUGE-L {metrics['rouge_l']:.2f} · "
                           f"{answer['seconds']:.1f} s")
                for citation in answer["citations"]:
                    color = {"verified": "green", "not_found": "red"}.get(citation["status"], "gray")
                    st.badge(f"{citation['label']}: {citation['status'].replace('_', ' ')}", color=color,
                             help=citation["reason"] or None)
                if answer.get("judge"):
                    judge_result = answer["judge"]
                    st.caption(f"judge: {judge_result['score']:.2f}" if judge_result["status"] == "scored"
                               else f"judge: {judge_result['status']} ({judge_result.get('reason') or judge_result.get('error')})")

with tab_history:
    if runs:
        history = pd.DataFrame([{"run": r["id"], "status": r["status"], "created": r["created_at"],
                                 "questions": r["questions"], "targets": r["targets"]} for r in runs])
        st.dataframe(history, hide_index=True, key="eval_history")
        trend = pd.DataFrame([{"run": r["id"], "created": r["created_at"], "target": label,
                               "token F1": (figures.get("token_f1") or {}).get("value"),
                               "invented citations": (figures.get("invented_rate") or {}).get("value")}
                              for r in reversed(runs) for label, figures in r["summary"].items()])
        if not trend.empty:
            st.plotly_chart(px.line(trend, x="created", y="token F1", color="target", markers=True,
                                    title="Token F1 across runs"), key="eval_trend")
