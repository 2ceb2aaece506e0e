"""legalft: the Streamlit router. Page files lay out widgets; the work is done in ``legalft``."""

from pathlib import Path

import streamlit as st

st.set_page_config(page_title="legalft", page_icon="⚖️", layout="wide")

ROOT = Path(__file__).parent

# (section, file, title, icon). The default page comes first.
PAGES = [
    ("Workflow", "pages/home.py", "Home", "🏛️"),
    ("Workflow", "pages/dataset.py", "Dataset", "📚"),
    ("Workflow", "pages/train.py", "Train", "🚀"),
    ("Workflow", "pages/monitor.py", "Monitor", "📈"),
    ("Plan", "pages/costs.py", "Costs", "💷"),
    ("Use", "pages/chat.py", "Chat", "💬"),
]

navigation: dict[str, list] = {}
for index, (section, path, title, icon) in enumerate(PAGES):
    if (ROOT / path).exists():
        navigation.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=index == 0))

st.navigation(navigation).run()
