"""Where keys and tokens come from: the environment first, then Streamlit secrets.

A leaf module: the chat client, the managed path and the legal API all read keys through it. A
value found here is only ever held in memory; it is never written to the database, files or logs.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def resolve_secret(name: str) -> tuple[str | None, str | None]:
    """(value, where it came from) for ``name``: the environment, then ``.streamlit/secrets.toml``;
    (None, None) when neither has it."""
    value = os.environ.get(name, "").strip()
    if value:
        return value, "environment"
    try:
        import streamlit as st
    except ImportError:
        return None, None
    try:
        # Only where a secrets.toml exists: touching st.secrets without one raises (and logs).
        if st.secrets.load_if_toml_exists():
            value = str(st.secrets.get(name, "") or "").strip()
    except Exception:  # noqa: BLE001 - a malformed secrets file must not take the app down
        log.warning("could not read Streamlit secrets; set %s in the environment instead", name)
        return None, None
    return (value, "streamlit secrets") if value else (None, None)
