"""The dated catalogue of base models Token Factory fine-tunes (``data/token_factory_models.toml``),
marked with what the API lists as served at the last refresh."""

from __future__ import annotations

import json
import logging
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from legalft.errors import ServiceError
from legalft.home import bundled_data_dir, subdir
from legalft.jobs import utc_now
from legalft.managed.client import TokenFactoryClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaseModelInfo:
    """A base model Token Factory fine-tunes."""

    id: str
    """Name for fine-tuning jobs."""
    deploy_as: str
    """``base_model`` name for deploying a LoRA checkpoint of it."""
    params_billion: float | None = None
    lora: bool = True
    full: bool = False
    lora_deploy: bool = True
    notes: str = ""
    served: bool | None = None
    """Whether the API listed ``deploy_as`` at the last refresh; None when never refreshed."""


@dataclass
class ModelCatalogue:
    """The dated catalogue, plus what the last refresh from the API said."""

    as_of: str
    source: str
    models: list[BaseModelInfo]
    refreshed_at: str | None = None
    refresh_error: str | None = None

    def get(self, model_id: str) -> BaseModelInfo | None:
        for model in self.models:
            if model.id == model_id or model.deploy_as == model_id:
                return model
        return None

    def ids(self) -> list[str]:
        return [m.id for m in self.models]


def catalogue_path() -> Path:
    return bundled_data_dir() / "token_factory_models.toml"


def _cache_path() -> Path:
    return subdir("cache") / "token_factory_models.json"


def load_model_catalogue(path: str | Path | None = None) -> ModelCatalogue:
    """The shipped catalogue, with the served flags of the last refresh when one is cached."""
    with open(path or catalogue_path(), "rb") as fh:
        data = tomllib.load(fh)
    models = [BaseModelInfo(**entry) for entry in data.get("models", [])]
    catalogue = ModelCatalogue(as_of=str(data["as_of"]), source=data.get("source", ""), models=models)
    cache = _cache_path()
    if path is None and cache.exists():
        try:
            cached = json.loads(cache.read_text())
            served = set(cached.get("served", []))
            catalogue.models = [replace(m, served=m.deploy_as in served) for m in models]
            catalogue.refreshed_at = cached.get("refreshed_at")
        except (OSError, ValueError):
            log.warning("ignoring an unreadable model cache at %s", cache)
    return catalogue


def refresh_model_catalogue(client: "TokenFactoryClient | None" = None) -> ModelCatalogue:
    """Ask the API which models it serves and mark the catalogue's entries; the shipped list on failure."""
    catalogue = load_model_catalogue()
    try:
        client = client or TokenFactoryClient()
        served = client.list_served_models()
    except ServiceError as exc:
        catalogue.refresh_error = str(exc)
        return catalogue
    now = utc_now()
    _cache_path().write_text(json.dumps({"refreshed_at": now, "served": sorted(served)}, indent=1))
    catalogue.models = [replace(m, served=m.deploy_as in served) for m in catalogue.models]
    catalogue.refreshed_at = now
    return catalogue


def deployment_base_model(model_id: str, catalogue: ModelCatalogue | None = None) -> str:
    """The ``base_model`` to deploy a checkpoint of ``model_id`` with (names differ between the two APIs)."""
    entry = (catalogue or load_model_catalogue()).get(model_id)
    return entry.deploy_as if entry else model_id


# --- launch configuration -------------------------------------------------------------------------
