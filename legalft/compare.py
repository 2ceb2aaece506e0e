"""Which model to compare an endpoint with, and whether an endpoint's answers are only noise.

The comparison for a fine-tuned endpoint is its base model: the base vLLM serves beside an
unmerged adapter, or for a managed deployment the service's own base model (the deployment's
``base_model``), recorded as an endpoint of its own the first time it is asked for; then any other
endpoint. The Chat page and the Evaluate page offer them in this order.
"""

from __future__ import annotations

import json
from pathlib import Path

from legalft.endpoints import Endpoint, list_endpoints, save_endpoint

NOISE_NOTE = ("Smoke model: random weights trained for seconds. Its answers are noise; it is there to check that "
              "the pipeline works, not to answer.")


def managed_base_endpoint(endpoint: Endpoint) -> Endpoint | None:
    """The service's base model of a managed deployment, as an endpoint (recorded on first use)."""
    base = endpoint.details.get("base_model")
    if endpoint.kind != "token_factory" or not base or base == endpoint.model:
        return None
    existing = next((e for e in list_endpoints("token_factory") if e.model == base), None)
    if existing is not None:
        return existing
    return save_endpoint(kind="token_factory", name=f"{base} (base)", base_url=endpoint.base_url, model=base,
                         status="active", details={"role": "base", "base_of": endpoint.id})


def base_candidates(endpoint: Endpoint, endpoints: list[Endpoint], *, add_managed_base: bool = True) -> list[Endpoint]:
    """Endpoints to compare ``endpoint`` with, the natural base model first."""
    others = [e for e in endpoints if e.id != endpoint.id]
    first: list[Endpoint] = [e for e in others if e.details.get("adapter_endpoint_id") == endpoint.id]
    if add_managed_base:
        managed = managed_base_endpoint(endpoint)
        if managed is not None and managed.id != endpoint.id:
            first.append(managed)
    seen = {e.id for e in first}
    return first + [e for e in others if e.id not in seen]


def is_noise_model(endpoint: Endpoint) -> bool:
    """An endpoint serving the smoke model, or a run fine-tuned from it (random weights: its answers are noise)."""
    folder = endpoint.details.get("model_dir")
    if not folder:
        return False
    path = Path(folder)
    if (path / "smoke_spec.json").is_file():
        return True
    adapter = path / "adapter_config.json"
    if adapter.is_file():
        try:
            base = json.loads(adapter.read_text()).get("base_model_name_or_path") or ""
        except (OSError, ValueError):
            return False
        return base == "builtin:smoke" or (Path(base) / "smoke_spec.json").is_file()
    for parent in (path.parent, path.parent.parent):  # a run folder's merged/ model: its config says
        config = parent / "config.json"
        if config.is_file():
            try:
                if "builtin:smoke" in config.read_text():
                    return True
            except OSError:
                return False
    return False
