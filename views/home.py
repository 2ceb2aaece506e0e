"""Home: the workflow at a glance and where things stand."""

import streamlit as st

from legalft import auth, doctor, monitor
from legalft.data.registry import list_datasets
from legalft.endpoints import list_endpoints
from legalft.errors import LegalftError, render_error
from legalft.jobs import list_jobs

st.title("legalft")
st.markdown("Fine-tune a language model on UK legislation, on **your own GPU** or on **Nebius Token Factory**, "
            "and see what each costs before you start.")

def page_title(page: str) -> str:
    return page.removeprefix("views/").removesuffix(".py").capitalize()


# The four steps are links to their pages: the workflow is read and followed from here.
visible = auth.visible_pages(auth.current_user())
STEPS = [
    ("views/dataset.py", "1 · Data", ":material/dataset:", "Upload Q&A or convert statute; repair, inspect, split."),
    ("views/train.py", "2 · Train", ":material/model_training:", "LoRA on your GPU, or a managed fine-tune."),
    ("views/monitor.py", "3 · Monitor", ":material/monitoring:", "Loss, progress and cost, for both paths on one screen."),
    ("views/chat.py", "4 · Chat", ":material/forum:", "Ask the fine-tuned model; compare with the base model."),
]
for column, (page, label, icon, text) in zip(st.columns(4), STEPS):
    with column.container(border=True):
        if page_title(page) in visible:
            st.page_link(page, label=f"**{label}**", icon=icon)
        else:  # a viewer has no Dataset or Train page to go to
            st.markdown(f"**{label}**")
        st.caption(text)
st.page_link("views/costs.py", label="Costs", icon=":material/payments:")
st.caption("The planner compares the managed service with a GPU of your own, with dated, editable prices.")

health = doctor.check()
if not health.ok:
    with st.container(border=True):
        st.warning(f"The job index needs attention: {health.summary()}", icon=":material/build:")
        if st.button("Rebuild the index from the run folders", key="home_rebuild_index", type="primary"):
            with st.spinner("Re-indexing the jobs found on disk..."):
                repaired = doctor.repair()
            st.success(f"Re-indexed {len(repaired.restored)} job(s)."
                       + (f" The damaged file is kept as {repaired.damaged_copy}." if repaired.damaged_copy else ""))
            if not repaired.ok:
                st.error(repaired.summary())
try:
    datasets = list_datasets()
    jobs = list_jobs(limit=20)
    endpoints = list_endpoints()
except LegalftError as exc:
    st.error(render_error(exc))
    st.stop()
c1, c2, c3 = st.columns(3)
c1.metric("Datasets registered", len(datasets))
c2.metric("Fine-tuning jobs", len(jobs), help="Both paths")
c3.metric("Model endpoints", len(endpoints))

st.subheader("Datasets")
if datasets:
    st.dataframe(
        [{"id": d.id, "name": d.name, "kept": d.kept_records, "repaired": d.repaired_records,
          "dropped": d.dropped_records, "registered": d.created_at} for d in datasets],
        hide_index=True, width="stretch",
    )
else:
    st.info("No dataset registered yet. The Dataset page opens with the bundled reference set ready: "
            "review it and press **Use for training**.")
if "Dataset" in visible:
    st.page_link("views/dataset.py", label="Open the Dataset page", icon=":material/dataset:")

if jobs:
    st.subheader("Recent jobs")
    # One row a job, each a link to it on the Monitor page; the path named as the Monitor page names it.
    for job in jobs:
        row = st.columns([3, 1, 2, 3, 2], vertical_alignment="center")
        row[0].page_link("views/monitor.py", label=job.name and f"{job.name} · {job.id}" or job.id,
                         icon=":material/open_in_new:", query_params={"job": job.id})
        row[1].markdown(monitor.status_label(job.status))
        row[2].markdown(monitor.path_label(job.path))
        row[3].markdown(f"`{job.base_model}`")
        row[4].caption((job.created_at or "")[:16].replace("T", " ") + " UTC")
if endpoints:
    st.subheader("Endpoints")
    st.dataframe([{"name": e.name, "kind": e.kind, "run": e.job_id or "", "model": e.model, "status": e.status}
                  for e in endpoints], hide_index=True, width="stretch")
    st.page_link("views/chat.py", label="Chat with a model", icon=":material/forum:")
