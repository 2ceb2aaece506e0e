"""legalft: the Streamlit router. Page files lay out widgets; the work is done in ``legalft``."""

import streamlit as st

st.set_page_config(page_title="legalft", page_icon="⚖️", layout="wide")

PAGES = {
    "Workflow": [
        st.Page("pages/home.py", title="Home", icon="🏛️", default=True),
        st.Page("pages/dataset.py", title="Dataset", icon="📚"),
    ],
    "Plan": [
        st.Page("pages/costs.py", title="Costs", icon="💷"),
    ],
}

st.navigation(PAGES).run()
