"""An evaluation of the smoke model behind a real `transformers serve` server, grounded and not,
interrupted and continued. Slow: the server takes about 10 s to start on two cores."""

from __future__ import annotations

import threading

import pytest
from statutes import statute_db, statute_index  # noqa: F401 - fixtures

from legalft import serve
from legalft.endpoints import save_endpoint
from legalft.evaluate.runs import EvalConfig, EvalTarget, create_run, run_evaluation
from legalft.evaluate.sets import generate_legislation_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_server(tmp_path_factory):
    from legalft.train.smoke import build_smoke_model

    root = tmp_path_factory.mktemp("eval-served")
    model_dir = build_smoke_model(root / "smoke")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGALFT_HOME", str(root / "home"))
        endpoint = serve.start_server(model_dir, wait=True, timeout=240, name="smoke")
    try:
        if endpoint.status != "active":
            pytest.fail(f"the smoke model server did not start: {endpoint.details.get('error')}")
        yield endpoint
    finally:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("LEGALFT_HOME", str(root / "home"))
            serve.stop_server(endpoint)


def test_smoke_model_evaluated_grounded_and_not_interrupted_and_continued(smoke_server, statute_index):
    endpoint = save_endpoint(kind=smoke_server.kind, name=smoke_server.name, base_url=smoke_server.base_url,
                             model=smoke_server.model, status="active", details=smoke_server.details)
    evalset = generate_legislation_set(statute_index, questions=3, seed=7)
    config = EvalConfig(max_tokens=12, k=1, provision_chars=300, concurrency=2)
    run_id = create_run(evalset, [EvalTarget(endpoint.id), EvalTarget(endpoint.id, grounded=True)], config)
    stop = threading.Event()
    run = run_evaluation(run_id, progress=lambda done, total: done >= 2 and stop.set(), stop=stop,
                         index=statute_index)
    assert run.status == "cancelled" and 2 <= run.done < 6
    run = run_evaluation(run_id, index=statute_index)
    assert run.status == "succeeded" and run.done == 6, [a["error"] for a in run.answers]
    for answer in run.answers:
        assert answer["usage"]["completion_tokens"] <= 12 and answer["seconds"] > 0
        assert 0.0 <= answer["metrics"]["token_f1"] <= 1.0
    grounded = [a for a in run.answers if a["label"].endswith("+ grounded")]
    assert len(grounded) == 3 and all(len(a["retrieved"]) == 1 for a in grounded)
    figures = run.summary[f"{endpoint.name} + grounded"]
    assert figures["answered"] == 3 and figures["latency_p95"] >= figures["latency_p50"] > 0
