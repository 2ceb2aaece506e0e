"""legalft: the Streamlit router. Page files lay out widgets; the work is done in ``legalft``."""

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="legalft", page_icon=":material/balance:", layout="wide")

ROOT = Path(__file__).parent

# (section, file, title, icon). The default page comes first.
PAGES = [
    ("Workflow", "pages/home.py", "Home", ":material/account_balance:"),
    ("Workflow", "pages/dataset.py", "Dataset", ":material/dataset:"),
    ("Workflow", "pages/train.py", "Train", ":material/model_training:"),
    ("Workflow", "pages/monitor.py", "Monitor", ":material/monitoring:"),
    ("Workflow", "pages/evaluate.py", "Evaluate", ":material/fact_check:"),
    ("Plan", "pages/costs.py", "Costs", ":material/payments:"),
    ("Use", "pages/chat.py", "Chat", ":material/forum:"),
]

if "app_reconciled" not in st.session_state:
    # Once per browser session: local runs whose process died while the app was down are marked failed.
    from legalft.errors import LegalftError
    from legalft.train import reconcile_jobs

    try:
        reconcile_jobs()
        st.session_state["app_reconciled"] = True
    except LegalftError:
        pass  # a damaged index or unwritable home: Home says so and offers the repair

navigation: dict[str, list] = {}
for index, (section, path, title, icon) in enumerate(PAGES):
    if (ROOT / path).exists():
        navigation.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=index == 0))

st.navigation(navigation).run()
