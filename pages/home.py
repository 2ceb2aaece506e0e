"""Home: the workflow at a glance and where things stand."""

import streamlit as st

from legalft import doctor
from legalft.data.registry import list_datasets
from legalft.endpoints import list_endpoints
from legalft.errors import LegalftError, render_error
from legalft.jobs import list_jobs

st.title("legalft")
st.markdown("Fine-tune a language model on UK legislation, on **your own GPU** or on **Nebius Token Factory**, "
            "and see what each costs before you start.")

steps = st.columns(4)
steps[0].markdown("**1 · Data**  \nUpload Q&A or convert statute; repair, inspect, split.")
steps[1].markdown("**2 · Train**  \nLoRA on your GPU, or a managed fine-tune.")
steps[2].markdown("**3 · Monitor**  \nLoss, progress and cost, for both paths on one screen.")
steps[3].markdown("**4 · Chat**  \nAsk the fine-tuned model; compare with the base model.")
st.caption("Costs: the planner compares the managed service with a GPU of your own, with dated, editable prices.")

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
st.page_link("pages/dataset.py", label="Open the Dataset page", icon=":material/dataset:")

if jobs:
    st.subheader("Recent jobs")
    st.dataframe([{"id": j.id, "path": j.path, "status": j.status, "model": j.base_model, "created": j.created_at}
                  for j in jobs], hide_index=True, width="stretch")
if endpoints:
    st.subheader("Endpoints")
    st.dataframe([{"name": e.name, "kind": e.kind, "model": e.model, "status": e.status} for e in endpoints],
                 hide_index=True, width="stretch")
