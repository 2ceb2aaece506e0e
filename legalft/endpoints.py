"""Model endpoints the Chat page and the legal API can call: managed deployments, vLLM, local servers.

An endpoint is only a base URL and a model name: one OpenAI-compatible client serves them all.
The API key is never stored here; ``key_env`` names the environment variable that holds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from legalft.db import connect
from legalft.jobs import utc_now

KINDS = ("token_factory", "vllm", "local")


@dataclass
class Endpoint:
    id: int
    kind: str
    name: str
    base_url: str
    model: str
    status: str
    created_at: str
    updated_at: str
    job_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row) -> "Endpoint":
        data = dict(row)
        data["details"] = json.loads(data.pop("details_json") or "{}")
        return cls(**data)


def save_endpoint(
    *, kind: str, name: str, base_url: str, model: str, status: str,
    job_id: str | None = None, details: dict[str, Any] | None = None,
) -> Endpoint:
    """Insert or update (by kind and model) an endpoint and return it."""
    if kind not in KINDS:
        raise ValueError(f"unknown endpoint kind {kind!r}; expected one of {', '.join(KINDS)}")
    now = utc_now()
    with connect() as conn:
        conn.execute(
            "INSERT INTO endpoints (kind, name, base_url, model, status, job_id, details_json,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (kind, model) DO UPDATE SET name = excluded.name, base_url = excluded.base_url,"
            " status = excluded.status, job_id = COALESCE(excluded.job_id, endpoints.job_id),"
            " details_json = excluded.details_json, updated_at = excluded.updated_at",
            (kind, name, base_url, model, status, job_id, json.dumps(details or {}), now, now),
        )
        row = conn.execute("SELECT * FROM endpoints WHERE kind = ? AND model = ?", (kind, model)).fetchone()
    return Endpoint.from_row(row)


def list_endpoints(kind: str | None = None) -> list[Endpoint]:
    query, args = "SELECT * FROM endpoints", []
    if kind:
        query += " WHERE kind = ?"
        args.append(kind)
    with connect() as conn:
        rows = conn.execute(query + " ORDER BY updated_at DESC, id DESC", args).fetchall()
    return [Endpoint.from_row(r) for r in rows]


def delete_endpoint(endpoint_id: int) -> None:
    with connect() as conn:
        conn.execute("DELETE FROM endpoints WHERE id = ?", (endpoint_id,))
