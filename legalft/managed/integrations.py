"""The service's experiment tracking and export (W&B, MLflow, Hugging Face), built at launch time.

A job's config records only which integrations it asked for; their settings and secrets are read
from the environment or Streamlit secrets (``legalft.secrets``) at the moment of the launch and go
to the service only (its schema marks them write-only), never to the database, logs or messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from legalft.errors import MissingKey
from legalft.secrets import resolve_secret


@dataclass(frozen=True)
class IntegrationSetting:
    """One field of an integration and the variable that supplies it."""

    field: str
    env: str
    secret: bool = False
    required: bool = True
    default: str | None = None


INTEGRATION_SETTINGS: dict[str, tuple[IntegrationSetting, ...]] = {
    "wandb": (
        IntegrationSetting("project", "WANDB_PROJECT", default="legalft"),
        IntegrationSetting("entity", "WANDB_ENTITY", required=False),
        IntegrationSetting("api_key", "WANDB_API_KEY", secret=True),
    ),
    "mlflow": (
        IntegrationSetting("tracking_uri", "MLFLOW_TRACKING_URI"),
        IntegrationSetting("experiment_name", "MLFLOW_EXPERIMENT_NAME", default="legalft"),
        IntegrationSetting("username", "MLFLOW_TRACKING_USERNAME"),
        IntegrationSetting("password", "MLFLOW_TRACKING_PASSWORD", secret=True),
        IntegrationSetting("certificate_file", "MLFLOW_CERTIFICATE_FILE", default=""),
    ),
    "hf": (
        IntegrationSetting("output_repo_name", "LEGALFT_HF_EXPORT_REPO"),
        IntegrationSetting("api_token", "HF_TOKEN", secret=True),
    ),
}
INTEGRATION_LABELS = {"wandb": "Weights & Biases", "mlflow": "MLflow", "hf": "Hugging Face export"}


def integration_status(kind: str) -> dict[str, Any]:
    """What an integration still needs, for display: ``{"ready": bool, "missing": [ENV, ...]}``."""
    missing = [s.env for s in INTEGRATION_SETTINGS[kind]
               if s.required and s.default is None and not resolve_secret(s.env)[0]]
    return {"ready": not missing, "missing": missing}


def build_integrations(kinds: list[str], *, run_name: str | None = None) -> list[dict[str, Any]]:
    """The ``integrations`` list for job creation; raises ``MissingKey`` naming what is unset."""
    built = []
    for kind in kinds:
        config: dict[str, Any] = {}
        for setting in INTEGRATION_SETTINGS[kind]:
            value = resolve_secret(setting.env)[0] or setting.default
            if value is None:
                if setting.required:
                    raise MissingKey(
                        f"the {INTEGRATION_LABELS[kind]} integration needs {setting.env}: set it in the "
                        "environment or in .streamlit/secrets.toml (it is sent to the service only, never stored)")
                continue
            config[setting.field] = value
        if kind == "mlflow":
            config["run_name"] = run_name
            config.setdefault("tags", {})
        if kind == "wandb" and run_name:
            config["name"] = run_name
        built.append({"type": kind, kind: config})
    return built
