"""Dataset workbench: upload or pick a dataset, see what the sanitizer did, inspect, convert, split."""

import json
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from legalft.data import workbench
from legalft.data.convert import ALL_KINDS, DEFAULT_KINDS, ConvertOptions, convert_file
from legalft.data.readers import DatasetReadError
from legalft.data.registry import register_dataset
from legalft.data.split import split_file
from legalft.data.stats import compute_stats
from legalft.home import subdir

st.title("Dataset")
st.caption("Upload a legislation Q&A set (JSONL, JSON, CSV or Parquet), or convert statutory text into one. "
           "Every record is accounted for: what is repaired is shown, what is dropped is kept for download.")


@st.cache_data(show_spinner=False, max_entries=8)
def _stats(clean_path: str, sha: str, tokenizer: str | None, max_length: int):
    stats = compute_stats(clean_path, tokenizer=tokenizer or None, max_length=max_length)
    return stats.to_dict(), stats.record_tokens, stats.message_tokens


@st.cache_data(show_spinner=False, max_entries=4)
def _browse_records(clean_path: str, sha: str, limit: int) -> list[dict]:
    return workbench.read_records(clean_path, limit=limit)


def _prepare(path: Path, name: str) -> None:
    bar = st.progress(0.0, text=f"Reading {name} …")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0, text=f"Reading {name} … {done / 1e6:,.1f} / {total / 1e6:,.1f} MB")

    try:
        prepared = workbench.prepare_dataset(path, name, progress=progress)
    except DatasetReadError as exc:
        bar.empty()
        st.session_state["dataset_error"] = str(exc)
        st.session_state.pop("dataset_prepared", None)
        return
    bar.empty()
    st.session_state["dataset_error"] = None
    st.session_state["dataset_prepared"] = prepared


source = st.radio("Source", ["Bundled reference Q&A set", "Upload a file", "Convert legislation"],
                  horizontal=True, key="dataset_source")

if source == "Bundled reference Q&A set":
    reference = workbench.bundled_reference()
    current = st.session_state.get("dataset_prepared")
    if current is None or current.source_path != reference:
        _prepare(reference, reference.name)
elif source == "Upload a file":
    upload = st.file_uploader("Dataset file", type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet"],
                              key="dataset_upload",
                              help="Chat `messages`, `prompt`+`completion`, Alpaca, question/answer or `text` records.")
    if upload is not None:
        key = (upload.name, upload.size, getattr(upload, "file_id", None))
        if st.session_state.get("dataset_upload_key") != key:
            path = workbench.save_upload(upload.name, upload.getvalue())
            st.session_state["dataset_upload_key"] = key
            _prepare(path, upload.name)
else:
    with st.form("dataset_convert_form"):
        st.markdown("Turn statutory text into grounded Q&A that cites the provision. Input: one section per line "
                    "(`act_title`, `section`, `heading`, `text`) or one Act per line (`title`, `text`).")
        legislation = st.file_uploader("Legislation JSONL (leave empty for the bundled sample of 102 Acts)",
                                       type=["jsonl"], key="dataset_legislation")
        kinds = st.multiselect("Kinds of pair", ALL_KINDS, default=list(DEFAULT_KINDS), key="dataset_kinds",
                               help="provision, heading, subsection are grounded and cited; the rest match the reference converter.")
        c1, c2, c3 = st.columns(3)
        embed = c1.checkbox("Embed the provision in the question", key="dataset_embed")
        include_meta = c2.checkbox("Keep provenance (meta)", value=True, key="dataset_meta")
        amending = c3.checkbox("Include amending-only sections", key="dataset_amending")
        convert_clicked = st.form_submit_button("Convert", type="primary")
    if convert_clicked:
        try:
            options = ConvertOptions(kinds=tuple(kinds), embed_context=embed, include_meta=include_meta,
                                     include_amending=amending)
        except ValueError as exc:
            st.error(str(exc))
        else:
            src = (workbench.save_upload(legislation.name, legislation.getvalue()) if legislation
                   else workbench.bundled_legislation())
            out = subdir("datasets/converted") / f"{src.stem}-{'-'.join(kinds)}.jsonl"
            with st.spinner("Converting …"):
                report = convert_file(src, out, options)
            st.session_state["dataset_convert_report"] = report.to_dict()
            _prepare(out, out.name)
    conv = st.session_state.get("dataset_convert_report")
    if conv:
        skipped = ", ".join(f"{k}: {v}" for k, v in conv["skipped"].items()) or "none"
        st.success(f"{conv['lines']} lines from {conv['acts']} Acts → {conv['pairs']} pairs "
                   f"({', '.join(f'{k} {v}' for k, v in conv['pairs_by_kind'].items())}). Skipped: {skipped}.")

if st.session_state.get("dataset_error"):
    st.error(st.session_state["dataset_error"])

prepared = st.session_state.get("dataset_prepared")
if prepared is None:
    st.info("Choose a dataset above.")
    st.stop()

report = prepared.report
st.subheader(prepared.name)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Records read", f"{report['total_records']:,}")
m2.metric("Kept", f"{report['kept_records']:,}")
m3.metric("Repaired", f"{report['repaired_records']:,}")
m4.metric("Dropped", f"{report['dropped_records']:,}")
formats = ", ".join(f"{k}: {v:,}" for k, v in report["formats"].items())
st.caption(f"Formats found: {formats or 'none'}")

tab_report, tab_stats, tab_browse, tab_split = st.tabs(["Report", "Statistics", "Browse", "Split & export"])

with tab_report:
    counts = [{"what": "repaired", "kind": k, "records": v} for k, v in report["repair_counts"].items()]
    counts += [{"what": "dropped", "kind": k, "records": v} for k, v in report["drop_counts"].items()]
    if counts:
        st.dataframe(pd.DataFrame(counts), hide_index=True, width="stretch")
    else:
        st.success("Every record was valid as it stood.")
    if report["issues"]:
        shown = len(report["issues"])
        st.markdown(f"**Issues** ({report['issue_count']:,}" + (f", first {shown:,} shown" if shown < report["issue_count"] else "") + ")")
        issues = pd.DataFrame(report["issues"])[["line", "kind", "message"]]
        st.table(issues.head(10).set_index("line"))
        if len(issues) > 10:
            with st.expander(f"All {len(issues):,} issues shown"):
                st.dataframe(issues, hide_index=True, width="stretch")
    if prepared.repaired_examples:
        with st.expander(f"Before and after ({len(prepared.repaired_examples)} repaired records)"):
            lines = [ex["line"] for ex in prepared.repaired_examples]
            line = st.selectbox("Record at line", lines, key="dataset_example_line")
            example = next(ex for ex in prepared.repaired_examples if ex["line"] == line)
            before, after = st.columns(2)
            before.markdown("**Before**")
            before.json(example["before"])
            after.markdown("**After**")
            after.json(example["after"])

with tab_stats:
    c1, c2 = st.columns([2, 1])
    tokenizer = c1.text_input("Tokenizer (local folder or hub id; empty for an approximate count)", key="dataset_tokenizer")
    max_length = c2.number_input("Training max length (tokens)", 64, 131072, 1024, step=64, key="dataset_max_length")
    try:
        stats, record_tokens, message_tokens = _stats(str(prepared.clean_path), prepared.sha256, tokenizer.strip() or None, int(max_length))
    except (ValueError, RuntimeError) as exc:
        st.error(str(exc))
        st.stop()
    s1, s2, s3, s4 = st.columns(4)
    s1.metric("Tokens", f"{stats['total_tokens']:,}")
    s2.metric("Mean tokens / record", stats["record_tokens"]["mean"])
    s3.metric("p95 tokens / record", stats["record_tokens"]["p95"])
    s4.metric(f"Longer than {int(max_length)}", f"{stats['over_max_length']:,} ({stats['share_over_max_length']:.1%})",
              help="These records would be truncated in training.")
    st.caption(f"Token counts: {stats['token_label']}.")
    fig = go.Figure()
    for role, values in message_tokens.items():
        fig.add_trace(go.Histogram(x=values, name=f"{role} message", opacity=0.6))
    fig.add_trace(go.Histogram(x=record_tokens, name="whole record", opacity=0.4))
    fig.add_vline(x=int(max_length), line_dash="dash", line_color="#b00020",
                  annotation_text=f"max length {int(max_length)}")
    fig.update_layout(barmode="overlay", xaxis_title="tokens", yaxis_title="count", height=360,
                      margin=dict(t=30, b=10), legend=dict(orientation="h"))
    st.plotly_chart(fig, width="stretch", key="dataset_length_chart")
    r1, r2 = st.columns(2)
    r1.markdown("**Per role**")
    r1.dataframe(pd.DataFrame.from_dict(stats["per_role"], orient="index"), width="stretch")
    r1.markdown("**Turns per record**")
    r1.dataframe(pd.DataFrame({"messages": list(stats["turns"]), "records": list(stats["turns"].values())}),
                 hide_index=True, width="stretch")
    r2.markdown("**Acts most cited**")
    r2.dataframe(pd.DataFrame(stats["top_acts"]), hide_index=True, width="stretch")

with tab_browse:
    records = _browse_records(str(prepared.clean_path), prepared.sha256, 50_000)
    query = st.text_input("Search records", key="dataset_search", placeholder="e.g. Companies Act 2006")
    rows = []
    for number, record in enumerate(records, start=1):
        if query and query.lower() not in json.dumps(record, ensure_ascii=False).lower():
            continue
        messages = record.get("messages") or [{"role": "text", "content": record.get("text", "")}]
        user = next((m["content"] for m in messages if m["role"] in ("user", "text")), "")
        answer = next((m["content"] for m in messages if m["role"] == "assistant"), "")
        rows.append({"#": number, "question": user[:200], "answer": answer[:300], "turns": len(messages)})
    st.caption(f"{len(rows):,} of {len(records):,} records match" + (" (first 50,000 read)" if len(records) == 50_000 else ""))
    st.dataframe(pd.DataFrame(rows[:1000]), hide_index=True, width="stretch", key="dataset_browse_table")
    if rows:
        pick = st.number_input("Show record #", 1, len(records), rows[0]["#"], key="dataset_pick")
        st.json(records[int(pick) - 1], expanded=True)

with tab_split:
    c1, c2, c3 = st.columns(3)
    fraction = c1.slider("Validation fraction", 0.05, 0.5, 0.1, 0.05, key="dataset_val_fraction")
    seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="dataset_seed")
    grouped = c3.checkbox("Group by Act", value=True, key="dataset_group",
                          help="Keep each Act on one side, so validation measures answers about unseen Acts.")
    if st.button("Make the split", key="dataset_split_go", disabled=report["kept_records"] < 2):
        out = subdir("datasets/splits") / f"{prepared.sha256[:12]}-{fraction:.2f}-{int(seed)}-{'act' if grouped else 'rec'}"
        with st.spinner("Splitting …"):
            train_path, val_path, result = split_file(prepared.clean_path, out, fraction, seed=int(seed),
                                                      group_by_act=grouped)
        st.session_state["dataset_split"] = {"sha": prepared.sha256, "train": str(train_path), "val": str(val_path),
                                             **result.to_dict()}
    split = st.session_state.get("dataset_split")
    if split and split["sha"] == prepared.sha256:
        st.write(f"Train **{split['train_records']:,}** records, validation **{split['validation_records']:,}** "
                 f"({split['groups']:,} groups{', grouped by Act' if split['grouped_by_act'] else ''}).")
        if split["shared_acts"]:
            st.warning(f"{len(split['shared_acts'])} Acts appear on both sides; group by Act to prevent the leak.")
        d1, d2 = st.columns(2)
        d1.download_button("Download train.jsonl", Path(split["train"]).read_bytes, "train.jsonl", "application/jsonl",
                           key="dataset_dl_train")
        d2.download_button("Download validation.jsonl", Path(split["val"]).read_bytes, "validation.jsonl",
                           "application/jsonl", key="dataset_dl_val")
    st.divider()
    e1, e2 = st.columns(2)
    e1.download_button("Download the clean file", prepared.clean_path.read_bytes, f"{Path(prepared.name).stem}.clean.jsonl",
                       "application/jsonl", key="dataset_dl_clean")
    if prepared.has_rejects:
        e2.download_button(f"Download the rejects ({report['dropped_records']:,})", prepared.rejects_path.read_bytes,
                           f"{Path(prepared.name).stem}.rejects.jsonl", "application/jsonl", key="dataset_dl_rejects")

st.divider()
if st.button("Use for training", type="primary", key="dataset_use", disabled=report["kept_records"] == 0):
    registered = register_dataset(prepared.clean_path, prepared.name, report)
    st.session_state["active_dataset_id"] = registered.id
    st.session_state["dataset_registered"] = registered.id
if st.session_state.get("dataset_registered"):
    st.success(f"Registered as dataset #{st.session_state['dataset_registered']}: it is ready on the Train page.")
