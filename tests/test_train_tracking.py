"""The local path's experiment tracking (trackio, offline) and continue-from-adapter, on real smoke runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from legalft.cli import main as cli_main
from legalft.jobs import get_job
from legalft.train import build_smoke_model, load_recipe, read_metrics
from legalft.train.config import TrainConfig, TrainConfigError
from legalft.train.tracking import resolve_init_adapter, tracking_links
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def smoke_dir(tmp_path_factory) -> Path:
    return build_smoke_model(tmp_path_factory.mktemp("smoke") / "model")


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    lines = (ROOT / "data" / "legislation_qa_clean.jsonl").read_text(encoding="utf-8").splitlines()[1:17]
    path = tmp_path_factory.mktemp("data") / "records.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_report_to_and_init_adapter_are_validated():
    with pytest.raises(TrainConfigError, match="report_to 'comet' is not a tracker"):
        TrainConfig(base_model="builtin:smoke", report_to=["comet"])
    with pytest.raises(TrainConfigError, match="init_adapter continues a LoRA adapter, but method is full"):
        TrainConfig(base_model="builtin:smoke", method="full", init_adapter="tf-1")
    with pytest.raises(TrainConfigError, match="sft.report_to is decided by the run"):
        TrainConfig(base_model="builtin:smoke", sft={"report_to": "wandb"})
    assert TrainConfig(base_model="builtin:smoke", report_to="trackio").report_to == ["trackio"]
    with pytest.raises(TrainConfigError, match="neither a folder nor a job id"):
        resolve_init_adapter("no-such-job")


def _train(smoke_dir: Path, train_file: Path, *sets: str) -> str:
    code = cli_main(["train", "--recipe", "smoke", "--model", str(smoke_dir), "--dataset", str(train_file),
                     "--set", "sft.num_train_epochs=2", *(a for s in sets for a in ("--set", s)), "--wait"])
    from legalft.jobs import list_jobs

    job = list_jobs()[0]
    assert code == 0, job.error
    return job.id


@pytest.mark.slow
def test_trackio_metrics_where_the_monitor_says_and_a_run_continued_from_its_adapter(smoke_dir, train_file):
    first = _train(smoke_dir, train_file, "report_to=trackio")
    run_dir = Path(get_job(first).run_dir)
    config = TrainConfig.load(run_dir / "config.yaml")
    [link] = tracking_links(run_dir, config)
    assert link.reporter == "trackio" and link.command.startswith(f"TRACKIO_DIR={run_dir / 'trackio'} trackio show")
    databases = list(Path(link.where).glob("*.db"))
    assert [d.stem for d in databases] == ["legalft"]
    with sqlite3.connect(databases[0]) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "metrics" in tables
        rows = conn.execute("SELECT run_name, step, metrics FROM metrics").fetchall()
    assert {r[0] for r in rows} == {first} and len(rows) >= len(read_metrics(run_dir)) // 2
    texts = [r[2].decode("utf-8", "replace") if isinstance(r[2], bytes) else str(r[2]) for r in rows]
    assert any("loss" in t for t in texts)

    second = _train(smoke_dir, train_file, f"init_adapter={first}")
    first_rows = [r for r in read_metrics(run_dir) if r["kind"] == "train"]
    second_rows = [r for r in read_metrics(get_job(second).run_dir) if r["kind"] == "train"]
    # Training went on from the first run's weights: it starts near where the first one ended.
    assert second_rows[0]["loss"] < first_rows[0]["loss"]
    assert abs(second_rows[0]["loss"] - first_rows[-1]["loss"]) < abs(first_rows[0]["loss"] - first_rows[-1]["loss"])
    assert load_recipe("smoke").init_adapter is None
