"""The managed path: fine-tune, deploy and chat on Nebius Token Factory through the openai SDK.

Shaped like ``legalft.train`` (the self-managed path): a config (``config.py``), checks before a
start (``preflight.py``), jobs (``jobs.py``), the dated model catalogue (``catalogue.py``),
deployments and chat (``deploy.py``), all over one client (``client.py``). Importing it loads no
SDK. Key lookup (``legalft.secrets``) and errors (``legalft.errors``) are leaf modules both paths
share, so nothing here imports the chat client's internals and nothing imports back.

    report = preflight_dataset("clean.jsonl")              # UploadPreflight (service rules, cost)
    job = launch_job(report, LaunchConfig(n_epochs=3))     # recorded before the upload
    job = sync_job(job.id)                                 # status, events, checkpoints, cost
    endpoint = deploy_checkpoint(job.id, name="uk-legal")  # then poll_deployment(endpoint.model)
"""

from legalft.managed.catalogue import (
    BaseModelInfo,
    ModelCatalogue,
    catalogue_path,
    deployment_base_model,
    load_model_catalogue,
    refresh_model_catalogue,
)
from legalft.managed.client import (
    DEFAULT_BASE_URL,
    KEY_ENV,
    PATH,
    URL_ENV,
    ProgressCallback,
    TokenFactoryClient,
    client_for,
    configured_base_url,
    describe_connection,
    resolve_api_key,
    v0_url,
)
from legalft.managed.config import (
    HYPERPARAMETER_NAMES,
    INTEGRATION_KINDS,
    MAX_SUFFIX_CHARS,
    SERVICE_LIMITS,
    LaunchConfig,
    checkpoint_reference,
)
from legalft.managed.deploy import (
    SMOKE_TEST_QUESTION,
    ChatAnswer,
    chat,
    delete_model,
    deploy_checkpoint,
    list_models,
    poll_deployment,
    smoke_test,
)
from legalft.managed.display import (
    checkpoint_choices,
    checkpoint_label,
    continuation_choices,
    follow_deployments,
    price_note,
)
from legalft.managed.integrations import INTEGRATION_LABELS, build_integrations, integration_status
from legalft.managed.jobs import MANAGED_POLL_SECONDS, cancel_job, close_job, launch_job, sync_job, wait_for_job
from legalft.managed.preflight import MAX_FILE_BYTES, PreflightError, UploadPreflight, preflight_dataset

__all__ = [
    "BaseModelInfo", "ChatAnswer", "DEFAULT_BASE_URL", "HYPERPARAMETER_NAMES", "KEY_ENV", "LaunchConfig",
    "MANAGED_POLL_SECONDS", "MAX_FILE_BYTES", "MAX_SUFFIX_CHARS", "ModelCatalogue", "PATH", "PreflightError", "UploadPreflight",
    "ProgressCallback", "SMOKE_TEST_QUESTION", "TokenFactoryClient", "URL_ENV", "cancel_job", "catalogue_path",
    "chat", "client_for", "close_job", "configured_base_url", "delete_model", "deploy_checkpoint",
    "deployment_base_model", "describe_connection", "launch_job", "list_models", "load_model_catalogue",
    "poll_deployment", "preflight_dataset", "refresh_model_catalogue", "resolve_api_key", "smoke_test",
    "sync_job", "v0_url", "wait_for_job",
    "INTEGRATION_KINDS", "INTEGRATION_LABELS", "SERVICE_LIMITS", "build_integrations", "checkpoint_choices",
    "checkpoint_label", "checkpoint_reference", "continuation_choices", "follow_deployments",
    "integration_status", "price_note",
]
