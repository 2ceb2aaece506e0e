"""legalft: the Streamlit router. Page files lay out widgets; the work is done in ``legalft``."""

from pathlib import Path

import streamlit as st

ROOT = Path(__file__).parent

# A local file: an icon name (":material/...:" or an emoji) makes the browser fetch the favicon from the
# internet, which fails offline.
st.set_page_config(page_title="legalft", page_icon=str(ROOT / "assets" / "favicon.png"), layout="wide")

# (section, file, title, icon). The default page comes first.
PAGES = [
    ("Workflow", "views/home.py", "Home", ":material/account_balance:"),
    ("Workflow", "views/dataset.py", "Dataset", ":material/dataset:"),
    ("Workflow", "views/train.py", "Train", ":material/model_training:"),
    ("Workflow", "views/monitor.py", "Monitor", ":material/monitoring:"),
    ("Workflow", "views/evaluate.py", "Evaluate", ":material/fact_check:"),
    ("Plan", "views/costs.py", "Costs", ":material/payments:"),
    ("Use", "views/chat.py", "Chat", ":material/forum:"),
    ("Studio", "views/activity.py", "Activity", ":material/history:"),
]

# Sign-in (st.login, OpenID Connect) when .streamlit/secrets.toml has an [auth] section; otherwise one
# local user on 127.0.0.1. The role checks themselves are in the library calls (legalft.auth).
from legalft import auth  # noqa: E402 - after set_page_config, which must come first


def _sign_in() -> None:
    st.title("legalft")
    st.markdown("This studio is shared: sign in with your firm account to continue.")
    st.button("Sign in", key="app_login", type="primary", on_click=st.login)


def _refused() -> None:
    st.title("legalft")
    st.error(f"{auth.current_user().id} is not on this studio's allow-list. Ask an admin to add you "
             "(`legalft users add EMAIL --role viewer`).")
    st.button("Sign out", key="app_logout_refused", on_click=st.logout)


# A gate is the only page there is (st.navigation, so no file under views/ can be reached by its URL;
# the folder is not named pages/, which Streamlit would serve by itself on a fresh server, gate skipped).
gate = None
if auth.signin_configured() and not st.user.is_logged_in:
    gate = _sign_in
elif (user := auth.current_user()).role is None:
    gate = _refused
if gate is not None:
    st.navigation([st.Page(gate, title="legalft", url_path="signin")], position="hidden").run()
    st.stop()
visible = auth.visible_pages(user)
if user.source == "sign-in":
    with st.sidebar:
        st.caption(f"{user.name} · {user.role}")
        st.button("Sign out", key="app_logout", on_click=st.logout)

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
    if (ROOT / path).exists() and title in visible:
        navigation.setdefault(section, []).append(st.Page(path, title=title, icon=icon, default=index == 0))

st.navigation(navigation).run()
