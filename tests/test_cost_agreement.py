"""The Train page, the Costs page and the CLI give the same trained tokens and one-time costs."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from legalft import costs
from legalft.cli import main
from legalft.data.registry import register_dataset
from legalft.data.sanitize import sanitize_file
from tests.conftest import REFERENCE_QA, ROOT

EPOCHS = 4


def page(name: str, session: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page(name)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_train_page_costs_page_and_cli_agree(tmp_path, capsys):
    clean = tmp_path / "clean.jsonl"
    sanitize_file(REFERENCE_QA, clean)
    dataset = register_dataset(clean, "reference.jsonl")

    assert main(["cost", "training", "--dataset", str(REFERENCE_QA), "--epochs", str(EPOCHS), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    library = costs.estimate_trained_tokens(REFERENCE_QA, epochs=EPOCHS)
    assert cli["trained_tokens"] == library.total and cli["trained_tokens_per_epoch"] == library.per_epoch

    train = page("views/train.py")
    cloud = metrics(train)
    assert cloud["Trained tokens per epoch"] == f"{library.per_epoch:,}"
    assert cloud["One-time GPU cost (setup, training, merge, server start)"] == f"${cli['gpu_one_time_cost']:,.2f}"
    train.number_input(key="train_holdout").set_value(0.0).run()
    train.radio(key="train_path").set_value("Nebius Token Factory (managed)").run()
    train.number_input(key="train_tf_epochs").set_value(EPOCHS).run()
    assert not train.exception, train.exception
    managed = metrics(train)
    assert managed["Trained tokens per epoch"] == f"{cli['trained_tokens_per_epoch']:,}"
    assert managed["Training cost"] == f"${cli['managed_cost']:,.2f}"

    costs_page = page("views/costs.py", {"active_dataset_id": dataset.id})
    costs_page.number_input(key="costs_epochs").set_value(EPOCHS).run()
    figures = metrics(costs_page)
    assert figures["Managed fine-tuning"] == f"${cli['managed_cost']:,.2f}"
    assert figures["Own GPU, to first answer"] == f"${cli['gpu_one_time_cost']:,.2f}" == "$2.31"
    assert any(f"{cli['trained_tokens']:,} trained tokens" in c.value for c in costs_page.caption)
