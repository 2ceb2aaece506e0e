"""Sign-in end to end: a real `streamlit run app.py` with `[auth]` configured, Streamlit's own
``st.login`` (Authlib), the system Chromium, and a local OpenID Connect provider
(``oidc-provider-mock``, the test double for the firm's identity provider, which is external)."""

from __future__ import annotations

import secrets

import pytest

from legalft.auth import set_user
from tests.browser import StreamlitServer, chromium_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def oidc_provider(monkeypatch):
    from oidc_provider_mock import run_server_in_thread

    monkeypatch.setenv("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on localhost, for the test only
    with run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


def _secrets(tmp_path, provider: str, port: int):
    path = tmp_path / "secrets.toml"
    path.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{secrets.token_urlsafe(32)}"
client_id = "legalft-studio"
client_secret = "{secrets.token_urlsafe(16)}"
server_metadata_url = "{provider}/.well-known/openid-configuration"
""")
    return path


def _sign_in(page, url: str, email: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    page.locator("input[name=sub]").fill(email)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{url}/**")


def _sign_out(page, url: str) -> None:
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()  # the provider's own sign-out page
    page.goto(url)
    page.get_by_text("This studio is shared: sign in").wait_for()


def _nav(page) -> set[str]:
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    return {t.strip().splitlines()[-1] for t in page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()}


def test_sign_in_with_roles_and_the_allow_list(tmp_path, legalft_home, oidc_provider):
    set_user("vera@firm.co.uk", "viewer")
    set_user("@firm.co.uk", "trainer")
    set_user("ada@firm.co.uk", "admin")
    server = StreamlitServer(legalft_home)
    server.args = ["--secrets.files", str(_secrets(tmp_path, oidc_provider, server.port))]
    server.start()
    try:
        with chromium_page() as page:
            # Closed: nothing but the sign-in button before signing in.
            page.goto(server.url)
            page.get_by_text("This studio is shared: sign in").wait_for()
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0

            _sign_in(page, server.url, "vera@firm.co.uk")
            assert _nav(page) == {"Home", "Monitor", "Evaluate", "Costs", "Chat", "Activity"}
            page.goto(f"{server.url}/activity")
            page.get_by_text("vera@firm.co.uk, viewer").wait_for()
            assert page.get_by_text("Set a budget").count() == 0  # admin forms are not offered
            page.goto(f"{server.url}/train")  # not one of her pages: the router shows Home instead
            page.get_by_text("Fine-tune a language model on UK legislation").wait_for()
            assert page.get_by_text("Pick a registered dataset").count() == 0
            page.screenshot(path=str(tmp_path / "viewer-train.png"))
            page.goto(server.url)
            page.get_by_text("Fine-tune a language model on UK legislation").wait_for()
            _sign_out(page, server.url)

            _sign_in(page, server.url, "tom@firm.co.uk")  # by the domain's entry
            assert _nav(page) == {"Home", "Dataset", "Train", "Monitor", "Evaluate", "Costs", "Chat", "Activity"}
            _sign_out(page, server.url)

            _sign_in(page, server.url, "ada@firm.co.uk")
            page.goto(f"{server.url}/activity")
            page.get_by_text("Set a budget").wait_for()
            _sign_out(page, server.url)

            _sign_in(page, server.url, "eve@elsewhere.example")
            page.get_by_text("eve@elsewhere.example is not on this studio's allow-list").wait_for()
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0
            page.screenshot(path=str(tmp_path / "refused.png"))
    finally:
        server.stop()
    from legalft.audit import list_audit

    assert [e.action for e in list_audit(action_prefix="users")] == ["users.set"] * 3


def test_a_page_url_on_a_fresh_server_is_behind_the_sign_in_too(tmp_path, legalft_home, oidc_provider):
    """The first request of a fresh server goes straight to a page's URL: Streamlit must not run a page
    file it discovered by itself (which would skip app.py's gate); the sign-in shows instead."""
    server = StreamlitServer(legalft_home)
    server.args = ["--secrets.files", str(_secrets(tmp_path, oidc_provider, server.port))]
    server.start()
    try:
        with chromium_page() as page:
            for path in ("activity", "monitor", "costs"):
                page.goto(f"{server.url}/{path}")
                page.get_by_text("This studio is shared: sign in").wait_for(timeout=30_000)
                assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    finally:
        server.stop()
