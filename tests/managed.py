"""A fine-tune deployed on the Token Factory stand-in, and the stand-in's control endpoint."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def control(server, payload: dict | None = None, path: str = "/_control"):
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())


@pytest.fixture
def deployed(standin, statute_index, tmp_path):
    """A fine-tune deployed on the stand-in, and the served base model, as endpoints."""
    from token_factory_server import SERVED_BASE_MODELS

    from legalft import managed as tf
    from legalft.endpoints import save_endpoint

    data = tmp_path / "train.jsonl"
    data.write_text((ROOT / "data" / "legislation_qa_clean.jsonl").read_text())
    job = tf.launch_job(data, tf.LaunchConfig(n_epochs=1))
    tf.wait_for_job(job.id, poll_seconds=0.05)
    tuned = tf.poll_deployment(tf.deploy_checkpoint(job.id, name="uk-legal").model, wait=True, poll_seconds=0.05)
    base = save_endpoint(kind="token_factory", name="base 8B", base_url=standin.base_url,
                         model=SERVED_BASE_MODELS[0], status="active")
    return {"job": job, "tuned": tuned, "base": base, "server": standin, "index": statute_index}
