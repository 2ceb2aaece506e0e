"""Dataset workbench: upload or pick a dataset, see what the sanitizer did, inspect, convert, split."""

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from legalft.data import workbench
from legalft.data.convert import ALL_KINDS, DEFAULT_KINDS, ConvertOptions, convert_file
from legalft.data.readers import DatasetReadError
from legalft.data.registry import register_dataset
from legalft.data.split import split_file
from legalft.home import subdir

st.title("Dataset")
st.caption("Upload a legislation Q&A set (JSONL, JSON, CSV or Parquet; gzipped too), or convert statutory text "
           "into one. Every record is accounted for: what is repaired is shown, what is dropped is kept for download.")

TABS = ["Report", "Statistics", "Browse", "Split & export"]


@st.cache_data(show_spinner="Counting tokens …", max_entries=8)
def _stats(_prepared: workbench.PreparedDataset, sha: str, tokenizer: str | None, max_length: int):
    return workbench.dataset_stats(_prepared, tokenizer or None, max_length)


@st.cache_data(show_spinner="Searching …", max_entries=16)
def _search(clean_path: str, sha: str, query: str) -> workbench.SearchResult:
    return workbench.search_records(clean_path, query, limit=1000)


def _prepare(path: Path, name: str, source: str, slot) -> None:
    """Sanitize ``path`` (or reuse the stored result), showing honest progress in ``slot``."""
    bar = slot.progress(0.0, text=f"Reading {name} …")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0,
                     text=f"Checking {name}: {done / 1e6:,.1f} of {total / 1e6:,.1f} MB")

    try:
        prepared = workbench.prepare_dataset(path, name, progress=progress)
    except DatasetReadError as exc:
        st.session_state["dataset_error"] = str(exc)
        st.session_state.pop("dataset_prepared", None)
    else:
        st.session_state["dataset_error"] = None
        st.session_state["dataset_prepared"] = prepared
    finally:
        slot.empty()
    st.session_state["dataset_prepared_for"] = source
    # A new file: its own report, from the first tab, with no banner of an earlier registration.
    st.session_state.pop("dataset_split", None)
    st.session_state["dataset_tab"] = TABS[0]


source = st.radio("Source", ["Bundled reference Q&A set", "Upload a file", "Convert legislation"],
                  horizontal=True, key="dataset_source")
# One fixed slot for progress, so elements above the tabs never change and the open tab stays open.
progress_slot = st.empty()

if source == "Bundled reference Q&A set":
    reference = workbench.bundled_reference()
    current = st.session_state.get("dataset_prepared")
    if st.session_state.get("dataset_prepared_for") != source or current is None or current.source_path != reference:
        _prepare(reference, reference.name, source, progress_slot)
elif source == "Upload a file":
    upload = st.file_uploader("Dataset file", type=["jsonl", "ndjson", "json", "csv", "tsv", "parquet", "gz"],
                              key="dataset_upload",
                              help="Chat `messages`, `prompt`+`completion`, Alpaca, question/answer or `text` records.")
    if upload is None:
        st.info("Choose a file to check: its report shows here.")
        st.stop()
    key = (upload.name, upload.size, getattr(upload, "file_id", None))
    if st.session_state.get("dataset_upload_key") != key or st.session_state.get("dataset_prepared_for") != source:
        progress_slot.progress(0.0, text=f"Saving {upload.name} ({upload.size / 1e6:,.1f} MB) …")
        path = workbench.save_upload(upload.name, upload.getvalue())
        st.session_state["dataset_upload_key"] = key
        _prepare(path, upload.name, source, progress_slot)
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
            _prepare(out, out.name, source, progress_slot)
    conv = st.session_state.get("dataset_convert_report")
    if conv:
        skipped = ", ".join(f"{k}: {v}" for k, v in conv["skipped"].items()) or "none"
        st.success(f"{conv['lines']} lines from {conv['acts']} Acts → {conv['pairs']} pairs "
                   f"({', '.join(f'{k} {v}' for k, v in conv['pairs_by_kind'].items())}). Skipped: {skipped}.")
    if st.session_state.get("dataset_prepared_for") != source:
        st.info("Convert legislation above: the result is checked here.")
        st.stop()

if st.session_state.get("dataset_error"):
    st.error(st.session_state["dataset_error"])

prepared = st.session_state.get("dataset_prepared")
if prepared is None:
    if not st.session_state.get("dataset_error"):
        st.info("Choose a dataset above.")
    st.stop()

report = prepared.report
st.subheader(prepared.name)
if report.get("summary"):
    # A file that is something else (prose saved as .jsonl): one message, not one row per line.
    st.error(f"{prepared.name}: {report['summary']}.")
    st.stop()

m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("Records read", f"{report['total_records']:,}")
m2.metric("Kept", f"{report['kept_records']:,}")
m3.metric("Converted", f"{report.get('converted_records', 0):,}",
          help="Records in another format (question/answer, prompt/completion, Alpaca) turned into messages: "
               "nothing was wrong with them.")
m4.metric("Repaired", f"{report['repaired_records']:,}", help="Kept records a rule changed.")
m5.metric("Dropped", f"{report['dropped_records']:,}")
formats = ", ".join(f"{k}: {v:,}" for k, v in report["formats"].items())
st.caption(f"Formats found: {formats or 'none'}")
doubtful = [i for i in report["issues"] if i["kind"] == "doubtful_repair"]
if report.get("doubtful_records"):
    lines = ", ".join(str(i["line"]) for i in doubtful[:10])
    st.warning(f"{report['doubtful_records']:,} repaired record(s) look doubtful (line {lines}): the repair kept the "
               "record, but its text may be garbled. Check them in the Report tab, or fix the source.")

tabs = st.tabs(TABS, key="dataset_tab", on_change="rerun")
tab_report, tab_stats, tab_browse, tab_split = tabs

if tab_report.open:
    with tab_report:
        counts = [{"what": "repaired", "kind": k, "records": v} for k, v in report["repair_counts"].items()]
        counts += [{"what": "converted", "kind": k, "records": v} for k, v in report.get("conversion_counts", {}).items()]
        counts += [{"what": "dropped", "kind": k, "records": v} for k, v in report["drop_counts"].items()]
        if counts:
            st.dataframe(pd.DataFrame(counts), hide_index=True, width="stretch")
        if not report["repair_counts"] and not report["drop_counts"]:
            st.success("Every record was valid as it stood.")
        if report["issues"]:
            shown = len(report["issues"])
            st.markdown(f"**Issues** ({report['issue_count']:,}"
                        + (f", first {shown:,} shown" if shown < report["issue_count"] else "") + ")")
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
                if example.get("doubtful"):
                    st.warning(f"Doubtful: {example['doubtful']}.")
                before, after = st.columns(2)
                before.markdown("**Before**")
                before.json(example["before"])
                after.markdown("**After**")
                after.json(example["after"])

if tab_stats.open:
    with tab_stats:
        c1, c2 = st.columns([2, 1])
        tokenizer = c1.text_input("Tokenizer (local folder or hub id; empty for an approximate count)",
                                  key="dataset_tokenizer")
        max_length = c2.number_input("Training max length (tokens)", 64, 131072, 1024, step=64, key="dataset_max_length")
        if report["kept_records"] == 0:
            st.info("No record was kept, so there is nothing to count: see the Report tab for why.")
        else:
            view = _stats(prepared, prepared.sha256, tokenizer.strip() or None, int(max_length))
            stats = view.stats
            if view.tokenizer_error:
                st.warning(f"{view.tokenizer_error}. Showing the approximate count instead.")
            s1, s2, s3, s4 = st.columns(4)
            s1.metric("Tokens", f"{stats['total_tokens']:,}")
            s2.metric("Mean tokens / record", stats["record_tokens"]["mean"])
            s3.metric("p95 tokens / record", stats["record_tokens"]["p95"])
            s4.metric(f"Longer than {int(max_length)}",
                      f"{stats['over_max_length']:,} ({stats['share_over_max_length']:.1%})",
                      help="These records would be truncated in training.")
            st.caption(f"Token counts: {stats['token_label']}.")
            fig = go.Figure()
            for role, values in view.message_tokens.items():
                fig.add_trace(go.Histogram(x=values, name=f"{role} message", opacity=0.6))
            fig.add_trace(go.Histogram(x=view.record_tokens, name="whole record", opacity=0.4))
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

if tab_browse.open:
    with tab_browse:
        query = st.text_input("Search records", key="dataset_search", placeholder="e.g. Companies Act 2006")
        found = _search(str(prepared.clean_path), prepared.sha256, query.strip())
        rows = []
        for number, record in found.rows:
            messages = record.get("messages") or [{"role": "text", "content": record.get("text", "")}]
            user = next((m["content"] for m in messages if m["role"] in ("user", "text")), "")
            answer = next((m["content"] for m in messages if m["role"] == "assistant"), "")
            rows.append({"#": number, "question": user[:200], "answer": answer[:300], "turns": len(messages)})
        shown = f", first {len(rows):,} listed" if found.matches > len(rows) else ""
        st.caption(f"{found.matches:,} of {found.records:,} records match{shown}." if query.strip()
                   else f"{found.records:,} records{shown}.")
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="dataset_browse_table")
        if rows:
            numbers = [r["#"] for r in rows]
            if st.session_state.get("dataset_pick") not in numbers:
                st.session_state["dataset_pick"] = numbers[0]  # the record shown always matches the search
            pick = st.selectbox("Show record #", numbers, key="dataset_pick")
            st.json(dict(found.rows)[pick], expanded=True)

if tab_split.open:
    with tab_split:
        c1, c2, c3 = st.columns(3)
        fraction = c1.slider("Validation fraction", 0.05, 0.5, 0.1, 0.05, key="dataset_val_fraction")
        seed = c2.number_input("Seed", 0, 2**31 - 1, 0, key="dataset_seed")
        grouped = c3.checkbox("Group by Act", value=True, key="dataset_group",
                              help="Keep each Act on one side, so validation measures answers about unseen Acts.")
        if st.button("Make the split", key="dataset_split_go", disabled=report["kept_records"] < 2):
            out = subdir("datasets/splits") / f"{prepared.sha256[:12]}-{fraction:.2f}-{int(seed)}-{'act' if grouped else 'rec'}"
            with st.spinner("Splitting …"):
                try:
                    train_path, val_path, result = split_file(prepared.clean_path, out, fraction, seed=int(seed),
                                                              group_by_act=grouped)
                except ValueError as exc:
                    st.error(str(exc))
                else:
                    st.session_state["dataset_split"] = {"sha": prepared.sha256, "train": str(train_path),
                                                         "val": str(val_path), **result.to_dict()}
        split = st.session_state.get("dataset_split")
        # Downloads are generated on click and do not rerun the page, so two quick clicks both finish.
        if split and split["sha"] == prepared.sha256:
            st.write(f"Train **{split['train_records']:,}** records, validation **{split['validation_records']:,}** "
                     f"({split['groups']:,} groups{', grouped by Act' if split['grouped_by_act'] else ''}).")
            if split["shared_acts"]:
                st.warning(f"{len(split['shared_acts'])} Acts appear on both sides; group by Act to prevent the leak.")
            d1, d2 = st.columns(2)
            d1.download_button("Download train.jsonl", Path(split["train"]).read_bytes, "train.jsonl",
                               "application/jsonl", key="dataset_dl_train", on_click="ignore")
            d2.download_button("Download validation.jsonl", Path(split["val"]).read_bytes, "validation.jsonl",
                               "application/jsonl", key="dataset_dl_val", on_click="ignore")
        st.divider()
        e1, e2 = st.columns(2)
        e1.download_button("Download the clean file", prepared.clean_path.read_bytes,
                           f"{Path(prepared.name).stem}.clean.jsonl", "application/jsonl", key="dataset_dl_clean",
                           on_click="ignore", disabled=report["kept_records"] == 0)
        if prepared.has_rejects:
            e2.download_button(f"Download the rejects ({report['dropped_records']:,})", prepared.rejects_path.read_bytes,
                               f"{Path(prepared.name).stem}.rejects.jsonl", "application/jsonl",
                               key="dataset_dl_rejects", on_click="ignore")

st.divider()
if st.button("Use for training", type="primary", key="dataset_use", disabled=report["kept_records"] == 0):
    with st.spinner("Registering: counting trained tokens and holding out a validation split, once …"):
        registered = register_dataset(prepared.clean_path, prepared.name, report)
    st.session_state["active_dataset_id"] = registered.id
    st.session_state["dataset_registered"] = {"id": registered.id, "sha": prepared.sha256}
registered = st.session_state.get("dataset_registered")
if registered and registered.get("sha") == prepared.sha256:
    st.success(f"Registered as dataset #{registered['id']}: it is ready on the Train page.")
