"""Monitor: every job of both paths, and a live view of one. Everything is read back from the
database, the run folders and the API, so a refresh, a closed tab or a restarted server loses nothing."""


import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from legalft import costs, monitor
from legalft import managed as tf
from legalft.errors import LegalftError, render_error
from legalft.jobs import list_jobs
from legalft.managed.cleanup import delete_provider_data, provider_footprint
from legalft.train import merge_run, reconcile_jobs, resume_job

REFRESH_SECONDS = 2.0

st.title("Monitor")

# Re-attach to local runs whose process ended while nobody watched (a crash, a server restart).
reconcile_jobs()
jobs = list_jobs()
if not jobs:
    st.info("No fine-tuning job yet.")
    st.page_link("views/train.py", label="Launch one on the Train page", icon=":material/model_training:")
    st.stop()

rows = [{
    "job": j.id, "status": monitor.status_label(j.status), "path": monitor.path_label(j.path),
    "model": j.base_model, "dataset": monitor.dataset_label(j),
    "started": (j.started_at or j.created_at or "")[:16].replace("T", " "),
    "duration": monitor.format_duration(monitor.duration_seconds(j)),
} for j in jobs]
# Widths in pixels that add up to the page's width, so no column is cut off at the right.
st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config={
    "job": st.column_config.TextColumn("Job", width=190),
    "status": st.column_config.TextColumn("Status", width=85),
    "path": st.column_config.TextColumn("Path", width=120),
    "model": st.column_config.TextColumn("Model", width=150),
    "dataset": st.column_config.TextColumn("Dataset", width=150),
    "started": st.column_config.TextColumn("Started (UTC)", width=120),
    "duration": st.column_config.TextColumn("Duration", width=75),
})

ids = [j.id for j in jobs]
# The chosen job lives in the URL, so a browser refresh comes back to it.
wanted = st.session_state.pop("monitor_job_id", None) or st.query_params.get("job")
if wanted in ids:
    st.session_state["monitor_job"] = wanted
elif st.session_state.get("monitor_job") not in ids:
    st.session_state["monitor_job"] = ids[0]
job_id = st.selectbox("Job", ids, key="monitor_job",
                      format_func=lambda i: f"{i} · {next(r['status'] for r in rows if r['job'] == i)}")
st.query_params["job"] = job_id


def _charts(view: monitor.JobView) -> None:
    frame = pd.DataFrame(view.metrics)
    if frame.empty or "step" not in frame:
        st.caption("No metrics yet: the first rows appear after the first logged step.")
        return
    managed = view.job.path == "token_factory"
    panels = [("loss", "eval_loss")] + ([] if managed else [("learning_rate",), ("tokens_per_second",)])
    titles = ["loss (train and validation)" + (" per checkpoint" if managed else "")]
    titles += [] if managed else ["learning rate", "tokens / s"]
    figure = make_subplots(rows=1, cols=len(panels), subplot_titles=titles)
    names = {"loss": "train loss", "eval_loss": "validation loss", "learning_rate": "learning rate",
             "tokens_per_second": "tokens/s"}
    steps = frame["step"].dropna()
    few = steps.nunique() <= 2
    for col, keys in enumerate(panels, start=1):
        for key in keys:
            if key in frame and frame[key].notna().any():
                points = frame[["step", key]].dropna()
                figure.add_trace(go.Scatter(x=points["step"], y=points[key], name=names[key],
                                            showlegend=col == 1 and len(keys) > 1,
                                            mode="lines+markers" if managed or few or key == "eval_loss" else "lines"),
                                 row=1, col=col)
        # Steps are whole numbers; one or two points get a range around them rather than a zoom into decimals.
        xaxis = dict(title_text="step", tickformat="d", rangemode="tozero")
        if few and not steps.empty:
            xaxis.update(range=[max(0, steps.min() - 1), steps.max() + 1], dtick=1)
        figure.update_xaxes(row=1, col=col, **xaxis)
        if few:
            figure.update_yaxes(row=1, col=col, rangemode="tozero")
    # The legend sits above the first panel's title, clear of the axes and their titles.
    figure.update_layout(height=330, margin=dict(t=70, b=10),
                         legend=dict(orientation="h", x=0, xanchor="left", y=1.25, yanchor="bottom"))
    st.plotly_chart(figure, width="stretch", key=f"monitor_chart_{view.job.id}")


def _progress_text(view: monitor.JobView) -> str:
    """``step 12 of 34 · about 40s left``; the rate is measured, so the first steps say so instead of guessing."""
    job = view.job
    text = f"step {view.step or 0} of {view.total_steps or '?'}"
    if job.status == "running":
        text += (f" · about {monitor.format_duration(view.seconds_left)} left" if view.seconds_left is not None
                 else " · measuring the speed for the time left")
    if view.restarted_from is not None and not job.is_terminal:
        text += f" · resumed: it restarts from the checkpoint saved at step {view.restarted_from}"
    return text


def _serve_and_chat(job) -> None:
    """Start a server for the merged model (or find the one already serving it), then open Chat on it."""
    from legalft import serve

    with st.spinner("Starting a model server for this run; on a CPU it takes about half a minute …"):
        try:
            endpoint = serve.start_server(job.output["merged"], kind="local", name=f"{job.name or 'run'} · {job.id}")
        except (LegalftError, serve.ServeError) as exc:
            st.error(f"The server did not start: {render_error(exc) if isinstance(exc, LegalftError) else exc}")
            return
    if endpoint.status != "active":
        st.error(f"The server did not come up: {endpoint.details.get('error') or endpoint.status}")
        return
    for key in ("chat_endpoint", "_keep_chat_endpoint"):
        st.session_state[key] = endpoint.id
    st.session_state["chat_notice"] = ("success", f"{endpoint.name} is serving: ask it a question below.")
    st.switch_page("views/chat.py")


def _deploy_panel(job) -> None:
    """Deploy a checkpoint of a succeeded managed job; a deployment is followed until it settles."""
    from legalft.managed import display

    deployed, warning = display.follow_deployments(job.id)
    if warning:
        st.warning(warning)
    for endpoint in deployed:
        reason = endpoint.details.get("status_reason")
        st.write(f"Deployment `{endpoint.model}`: **{endpoint.status}**" + (f" ({reason})" if reason else ""))
    choices = dict(display.checkpoint_choices(job.id))
    if not choices:
        return
    with st.form(f"monitor_deploy_form_{job.id}"):
        d1, d2 = st.columns(2)
        name = d1.text_input("Deployment name", value=job.name or "uk-legal", key=f"monitor_deploy_name_{job.id}")
        checkpoint = d2.selectbox("Checkpoint", list(choices), key=f"monitor_deploy_ckpt_{job.id}",
                                  format_func=choices.get, help="The latest is listed first.")
        if st.form_submit_button("Deploy", type="primary"):
            try:
                tf.deploy_checkpoint(job.id, name=name, checkpoint_id=checkpoint)
            except (LegalftError, ValueError) as exc:
                st.error(render_error(exc))
            else:
                st.rerun()  # the panel now follows the deployment by itself


def _provider_data_panel(job) -> None:
    """What the managed job left at the provider, and one action to delete it (admins)."""
    with st.expander("Data at the provider"):
        checked = st.session_state.get(f"monitor_provider_checked_{job.id}", False)
        try:
            footprint = provider_footprint(job.id, check=checked)
        except LegalftError as exc:
            st.error(render_error(exc))
            return
        if footprint.deleted_at:
            st.success(f"Deleted at the provider on {footprint.deleted_at}.")
        st.dataframe(footprint.to_rows(), hide_index=True, width="stretch")
        c1, c2 = st.columns(2)
        if c1.button("Check at the provider", key=f"monitor_provider_check_{job.id}"):
            st.session_state[f"monitor_provider_checked_{job.id}"] = True
            st.rerun()
        if c2.button("Delete at the provider", key=f"monitor_provider_delete_{job.id}",
                     help="Deletes the job's deployments and its uploaded and result files there (admins)"):
            try:
                report = delete_provider_data(job.id)
                st.success(f"Deleted {len(report.deleted)} item(s) at the provider.")
            except LegalftError as exc:
                st.error(render_error(exc))


def _render(job_id: str, live: bool = False) -> bool:
    """Draw the job's panel; returns whether nothing more changes by itself (ended, deployments settled)."""
    view = monitor.view(job_id)
    job = view.job
    if live and _settled(job):
        # Swap in the finished panel before drawing its buttons here: a button drawn by this (live)
        # fragment's last run keeps its fragment, and a click on it would go nowhere after the swap.
        st.rerun()
    if view.sync_warning:
        st.warning(view.sync_warning)
    head = st.columns([2, 1, 1, 1])
    head[0].markdown(f"### {job.id}\n{monitor.path_label(job.path)} · `{job.base_model}` · {monitor.dataset_label(job)}")
    head[1].metric("Status", monitor.status_label(job.status), help=f"as the service says: {job.status}")
    head[2].metric("Duration", monitor.format_duration(monitor.duration_seconds(job)),
                   help="Time spent training: a spell cancelled before a resume is not counted.")
    spent = costs.job_cost(job)
    head[3].metric("Cost (est. → actual)", costs.format_money(spent.estimate) if spent.estimate is not None else "—",
                   delta=f"actual {costs.format_money(spent.actual)}" if spent.actual is not None else "actual: not yet",
                   delta_color="off", help=f"Estimate: {spent.estimate_basis}. Actual: {spent.actual_basis}.")
    st.progress(view.fraction or 0.0, text=_progress_text(view))
    if job.error:
        st.error(job.error)
    _charts(view)
    left, right = st.columns([3, 2])
    left.markdown("**" + ("Events" if job.path == "token_factory" else "Log") + "**")
    # The newest lines, short enough to keep the next steps' buttons within reach below.
    left.code("\n".join(view.activity[-20:]) or "(nothing yet)", language=None, wrap_lines=True)
    if job.path == "local":
        from pathlib import Path

        raw = Path(job.output.get("log") or "")
        left.caption("Library warnings and progress bars are left out here; the full log has them.")
        if raw.is_file():
            left.download_button("Download the full log", raw.read_bytes(), f"{job.id}.log", "text/plain",
                                 key=f"monitor_log_{job.id}")
    right.markdown("**Config**")
    right.json(job.config, expanded=False)
    if job.path == "local":
        from legalft.train.tracking import links_for_job

        for link in links_for_job(job):
            opener = f" · [open]({link.url})" if link.url else ""
            right.markdown(f"**Tracked with {link.reporter}**: {link.where}{opener}")
            if link.command:
                right.code(link.command, language="bash", wrap_lines=True)
    if job.output:
        right.markdown("**Outputs**")
        right.json(job.output, expanded=False)

    buttons = st.columns(5)
    if not job.is_terminal and buttons[0].button("Cancel", key=f"monitor_cancel_{job.id}"):
        try:
            monitor.cancel(job.id)
            st.rerun()
        except LegalftError as exc:
            st.error(render_error(exc))
    if (not job.is_terminal and job.progress.get("remote_missing")
            and buttons[1].button("Close this job", key=f"monitor_close_{job.id}",
                                  help="The service no longer knows this job: mark it failed here, with that reason")):
        tf.close_job(job.id)
        st.rerun()
    if monitor.can_resume(job) and buttons[1].button("Resume", key=f"monitor_resume_{job.id}", type="primary"):
        try:
            resume_job(job.id)
            st.rerun()
        except LegalftError as exc:
            st.error(render_error(exc))
    if job.status == "succeeded":
        # Before Deploy / Serve: the latest evaluation of this model against its base (Evaluate page).
        from legalft.evaluate.report import latest_verdict

        verdict = latest_verdict(job_id=job.id, model=job.output.get("merged"))
        if verdict is None:
            st.caption("Not evaluated against its base model yet: the Evaluate page compares them before you deploy.")
        elif verdict.warnings:
            st.warning(f"Latest evaluation ({verdict.run_id}, {verdict.created_at[:10]}, against {verdict.base_label}): "
                       + "; ".join(verdict.warnings) + ". Check before you deploy or serve it.")
        else:
            st.info(f"Latest evaluation ({verdict.run_id}, against {verdict.base_label}): " + "; ".join(verdict.lines))
        if job.path == "local":
            merged = job.output.get("merged")
            if not merged and buttons[2].button("Merge adapter", key=f"monitor_merge_{job.id}", type="primary"):
                try:
                    with st.spinner("Merging the adapter and checking parity …"):
                        report = merge_run(job.id)
                except LegalftError as exc:  # a viewer's refusal, or a run that cannot be merged
                    st.error(render_error(exc))
                else:
                    # Kept per job: a message about merging one job is not shown under another.
                    st.session_state.setdefault("monitor_merge_messages", {})[job.id] = report.message
                    st.rerun()
            if merged:
                parity = job.output.get("parity_ok")
                st.success(f"Merged into {merged} · parity check {'passed' if parity else 'FAILED'}")
                if buttons[3].button("Serve and chat", key=f"monitor_serve_{job.id}", type="primary",
                                     help="Starts a model server for the merged model, then opens Chat on it"):
                    _serve_and_chat(job)
            elif job.id in st.session_state.get("monitor_merge_messages", {}):
                st.info(st.session_state["monitor_merge_messages"][job.id])
        else:
            _deploy_panel(job)
        if buttons[4].button("Chat", key=f"monitor_chat_{job.id}"):
            st.switch_page("views/chat.py")
    if job.path == "token_factory" and job.is_terminal:
        _provider_data_panel(job)
    return _settled(job)


def _settled(job) -> bool:
    from legalft.managed import display

    return job.is_terminal and not (job.path == "token_factory" and display.needs_following(job.id))


@st.fragment(run_every=REFRESH_SECONDS)
def live_panel(job_id: str) -> None:
    """Re-drawn every few seconds while the job runs or a deployment settles; a full rerun then stops it."""
    _render(job_id, live=True)


@st.fragment
def finished_panel(job_id: str) -> None:
    _render(job_id)


if _settled(next(j for j in jobs if j.id == job_id)):
    finished_panel(job_id)
else:
    live_panel(job_id)
