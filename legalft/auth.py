"""Who is acting, and whether their role allows it: checked in the library, not only by hiding buttons.

Three roles, each including the one before: **viewer** (see, chat, evaluate), **trainer** (also
upload, register, launch, cancel, resume, merge, serve), **admin** (also deploy, delete at the
provider, prices, budgets, users). ``ACTIONS`` names every guarded action and the least role it
needs; ``require(role, action)`` raises ``AccessDenied`` (and audits the refusal).

Who the user is:

- **In the app with sign-in** (``[auth]`` in ``.streamlit/secrets.toml``, Streamlit's ``st.login``):
  the signed-in e-mail, allowed when the ``users`` table lists it or its ``@domain``; the entry's
  role is theirs. Not signed in, or not listed: no role at all.
- **In the app without sign-in**: one local user (the OS user) with every role; the app binds
  127.0.0.1, so only this machine can reach it.
- **On the command line**: the OS user (``os:NAME``). A machine whose allow-list names no OS user
  treats its shell users as admins (whoever runs the CLI can read the state folder anyway); once
  one ``os:`` entry exists, the others need theirs.

``acting_as(user)`` sets the user for a block (the API, tests, scripts acting for someone).
"""

from __future__ import annotations

import contextvars
import getpass
import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from legalft.errors import AccessDenied, UsageError

log = logging.getLogger(__name__)

ROLES = ("viewer", "trainer", "admin")

#: Every guarded action and the least role it needs.
ACTIONS: dict[str, str] = {
    "chat": "viewer",
    "evaluate.run": "viewer",
    "dataset.upload": "trainer",
    "dataset.register": "trainer",
    "train.start": "trainer",
    "train.cancel": "trainer",
    "train.resume": "trainer",
    "train.merge": "trainer",
    "serve.start": "trainer",
    "serve.stop": "trainer",
    "managed.launch": "trainer",
    "managed.cancel": "trainer",
    "managed.deploy": "admin",
    "managed.delete_model": "admin",
    "managed.cleanup": "admin",
    "prices.override": "admin",
    "budget.set": "admin",
    "budget.override": "admin",
    "users.set": "admin",
}


@dataclass(frozen=True)
class User:
    """The person acting: ``id`` is an e-mail (sign-in) or ``os:NAME`` (CLI, local app)."""

    id: str
    name: str
    role: str | None
    """None: known but not allowed (not signed in, or not on the allow-list)."""
    source: str
    """``sign-in``, ``local`` (the app without sign-in), ``cli`` or ``as`` (set by ``acting_as``)."""

    def can(self, role: str) -> bool:
        return self.role is not None and ROLES.index(self.role) >= ROLES.index(role)


_acting: contextvars.ContextVar[User | None] = contextvars.ContextVar("legalft_acting_user", default=None)


@contextmanager
def acting_as(user: User) -> Iterator[User]:
    """Run a block as ``user`` (checked and audited under that name)."""
    token = _acting.set(user)
    try:
        yield user
    finally:
        _acting.reset(token)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role


# --- the allow-list -------------------------------------------------------------------------------


def normalise_principal(principal: str) -> str:
    """An e-mail, ``@domain`` or ``os:NAME``, lower-cased (e-mail and domains are case-blind)."""
    text = principal.strip()
    if text.startswith("os:"):
        return text if len(text) > 3 else _bad(principal)
    text = text.lower()
    if text.startswith("@") and "." in text[1:] and "@" not in text[1:]:
        return text
    local, at, domain = text.partition("@")
    if local and at and "." in domain and "@" not in domain and " " not in text:
        return text
    return _bad(principal)


def _bad(principal: str) -> str:
    raise UsageError(f"{principal!r} is not a user: write an e-mail (alice@firm.co.uk), a whole domain "
                     "(@firm.co.uk) or an OS user (os:alice)")


def set_user(principal: str, role: str) -> str:
    """Add or change an allow-list entry (admins only; audited)."""
    from legalft.audit import guarded_call

    principal, role = normalise_principal(principal), check_role(role)
    return guarded_call("users.set", lambda: _save_user(principal, role), target=principal,
                        details={"role": role})


def remove_user(principal: str) -> bool:
    """Take an entry off the allow-list (admins only; audited)."""
    from legalft.audit import guarded_call

    principal = normalise_principal(principal)
    return guarded_call("users.set", lambda: _delete_user(principal), target=principal, details={"role": None})


def _save_user(principal: str, role: str) -> str:
    from legalft.db import connect
    from legalft.jobs import utc_now

    with connect() as conn:
        conn.execute("INSERT INTO users (principal, role, added_by, added_at) VALUES (?, ?, ?, ?) "
                     "ON CONFLICT(principal) DO UPDATE SET role = excluded.role, added_by = excluded.added_by, "
                     "added_at = excluded.added_at", (principal, role, current_user().id, utc_now()))
    return principal


def _delete_user(principal: str) -> bool:
    from legalft.db import connect

    with connect() as conn:
        return conn.execute("DELETE FROM users WHERE principal = ?", (principal,)).rowcount > 0


def list_users() -> dict[str, str]:
    """The allow-list: principal → role."""
    from legalft.db import connect

    with connect() as conn:
        return {row["principal"]: row["role"] for row in conn.execute("SELECT principal, role FROM users "
                                                                         "ORDER BY principal")}


def role_for(principal: str) -> str | None:
    """The role the allow-list gives an e-mail (its own entry, else its domain's) or an OS user."""
    users = list_users()
    key = principal.lower() if not principal.startswith("os:") else principal
    if key in users:
        return users[key]
    if key.startswith("os:"):
        return None if any(p.startswith("os:") for p in users) else "admin"
    _, _, domain = key.partition("@")
    return users.get(f"@{domain}") if domain else None


# --- who is acting --------------------------------------------------------------------------------


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


def _in_streamlit() -> bool:
    if "streamlit" not in sys.modules:  # the CLI never imports Streamlit
        return False
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    return get_script_run_ctx(suppress_warning=True) is not None


def signin_configured() -> bool:
    """Whether ``.streamlit/secrets.toml`` has an ``[auth]`` section (Streamlit's ``st.login``)."""
    try:
        import streamlit as st

        return bool(st.secrets.load_if_toml_exists() and "auth" in st.secrets)
    except Exception:  # noqa: BLE001 - a malformed secrets file: sign-in cannot work, and the app says so
        log.warning("could not read .streamlit/secrets.toml; sign-in is off")
        return False


def current_user() -> User:
    """The person acting now: ``acting_as``, else the app's signed-in or local user, else the OS user."""
    user = _acting.get()
    if user is not None:
        return user
    name = os_user()
    if _in_streamlit():
        if not signin_configured():
            return User(id=f"os:{name}", name=name, role="admin", source="local")
        import streamlit as st

        if not st.user.is_logged_in:
            return User(id="anonymous", name="not signed in", role=None, source="sign-in")
        email = str(st.user.get("email") or "").strip().lower()
        if not email:
            return User(id="unknown", name=str(st.user.get("name") or "unknown"), role=None, source="sign-in")
        return User(id=email, name=str(st.user.get("name") or email), role=role_for(email), source="sign-in")
    return User(id=f"os:{name}", name=name, role=role_for(f"os:{name}"), source="cli")


def require(role: str, action: str, target: str | None = None) -> User:
    """The current user, when their role is at least ``role``; else ``AccessDenied`` (audited)."""
    user = current_user()
    if user.can(role):
        return user
    from legalft.audit import record

    record(action, user=user, target=target, outcome="denied", details={"needs": role})
    if user.role is None:
        why = ("sign in first" if user.id == "anonymous" else
               f"{user.id} is not on this studio's allow-list; ask an admin to add you (`legalft users add`)")
    else:
        why = f"{user.id} is a {user.role}; {action} needs the {role} role (ask an admin)"
    raise AccessDenied(f"not allowed to {action}: {why}")


def visible_pages(user: User) -> set[str]:
    """Page titles a user sees: viewers see, chat and evaluate (no Dataset or Train); without a role, none."""
    if user.role is None:
        return set()
    pages = {"Home", "Monitor", "Evaluate", "Costs", "Chat", "Activity"}  # viewers see, chat and evaluate
    if user.can("trainer"):
        pages |= {"Dataset", "Train"}
    return pages
