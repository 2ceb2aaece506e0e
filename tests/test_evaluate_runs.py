"""End to end against the managed stand-in: a deployed fine-tune against its base, grounded and not,
interrupted (stopped, failed mid-run, killed) and continued; the judge through the stand-in."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from managed import control, deployed  # noqa: F401 - fixtures
from statutes import statute_db, statute_index  # noqa: F401 - fixtures
from token_factory_server import SERVED_BASE_MODELS

from legalft.evaluate.report import comparison_rows, latest_verdict, run_card, to_csv
from legalft.evaluate.runs import EvalConfig, EvalTarget, create_run, list_runs, load_run, run_evaluation
from legalft.evaluate.sets import generate_legislation_set

ROOT = Path(__file__).resolve().parent.parent


def _targets(d):
    return [EvalTarget(d["base"].id, role="base"), EvalTarget(d["base"].id, grounded=True, role="base"),
            EvalTarget(d["tuned"].id, role="fine-tuned"), EvalTarget(d["tuned"].id, grounded=True, role="fine-tuned")]


def test_stopped_half_way_then_continued(deployed):
    evalset = generate_legislation_set(deployed["index"], questions=6, seed=2)
    run_id = create_run(evalset, _targets(deployed), EvalConfig(concurrency=2))
    stop = threading.Event()
    seen = []

    def progress(done, total):
        seen.append((done, total))
        if done >= 5:
            stop.set()

    run = run_evaluation(run_id, progress=progress, stop=stop, index=deployed["index"])
    assert run.status == "cancelled" and 5 <= run.done < 24 and seen[-1][1] == 24
    run = run_evaluation(run_id, index=deployed["index"])
    assert run.status == "succeeded" and run.done == 24 and run.failed == 0
    keys = [(a["label"], a["idx"]) for a in run.answers]
    assert len(keys) == len(set(keys)) == 24 and all(a["attempts"] == 1 for a in run.answers)
    by_target = {t["label"]: t for t in run.targets}
    for answer in run.answers:
        grounded = by_target[answer["label"]]["grounded"]
        assert bool(answer["retrieved"]) == grounded
        assert by_target[answer["label"]]["endpoint"]["model"] in answer["answer"]  # the stand-in names its model
        # The stand-in cites s. 1 of the Interpretation Act 1978, which is not indexed: never verified.
        assert [c["status"] for c in answer["citations"]] == ["unknown_act"]
    rows = {r["target"]: r for r in comparison_rows(run)}
    tuned = deployed["tuned"].name
    assert set(rows) == {"base 8B", "base 8B + grounded", tuned, f"{tuned} + grounded"}
    assert all(r["unverifiable citations"].startswith("100.0%") for r in rows.values())
    assert all(r["answered"] == "6/6" for r in rows.values())
    table = list(csv.DictReader(io.StringIO(to_csv(run))))
    assert len(table) == 24 and {r["citation_verdicts"] for r in table} == {"s. 1 Interpretation Act 1978: unknown_act"}
    assert "| answered | 6 of 6 (0 failed) |" in run_card(run, run.targets[0]["label"])
    assert list_runs()[0]["id"] == run_id


def test_an_endpoint_that_fails_mid_run_is_marked_and_continued(deployed):
    server = deployed["server"]
    evalset = generate_legislation_set(deployed["index"], questions=6, seed=3)
    run_id = create_run(evalset, [EvalTarget(deployed["tuned"].id)], EvalConfig(concurrency=1))

    broken = []

    def progress(done, total):
        if done == 2 and not broken:  # the service fails the next 12 calls: 4 questions, each tried 3 times
            broken.append(control(server, {"faults": [{"status": 500, "count": 12, "path": "/v1/chat/completions"}]}))

    run = run_evaluation(run_id, progress=progress, index=deployed["index"])
    assert run.status == "failed" and run.done == 2 and run.failed == 4
    failed = [a for a in run.answers if a["status"] == "failed"]
    assert all(a["error"].startswith("server:") for a in failed)
    assert "NEBIUS_API_KEY" not in json.dumps(run.answers) and "standin-test-key" not in json.dumps(run.answers)
    run = run_evaluation(run_id, index=deployed["index"])  # the service is back
    assert run.status == "succeeded" and run.done == 6
    assert sorted(a["attempts"] for a in run.answers) == [1, 1, 2, 2, 2, 2]


def test_judge_through_the_stand_in_and_an_off_schema_judge(deployed):
    evalset = generate_legislation_set(deployed["index"], questions=3, seed=4)
    config = EvalConfig(judge_endpoint_id=deployed["base"].id)
    run = run_evaluation(create_run(evalset, [EvalTarget(deployed["tuned"].id)], config), index=deployed["index"])
    assert [a["judge"]["status"] for a in run.answers] == ["scored"] * 3
    label = run.targets[0]["label"]
    assert run.summary[label]["judge_score"]["value"] == 1.0
    assert run.config["judge"]["model"] == SERVED_BASE_MODELS[0] and "UK legislation" in run.config["judge"]["prompt"]

    control(deployed["server"], {"judge_reply": "Looks right to me!"})
    run = run_evaluation(create_run(evalset, [EvalTarget(deployed["tuned"].id)], config), index=deployed["index"])
    assert [a["judge"]["status"] for a in run.answers] == ["off_schema"] * 3
    assert run.answers[0]["judge"]["raw"] == "Looks right to me!"
    assert "judge_score" not in run.summary[label] and run.status == "succeeded"


def test_verdict_before_deploying(deployed):
    evalset = generate_legislation_set(deployed["index"], questions=2, seed=5)
    run = run_evaluation(create_run(evalset, [EvalTarget(deployed["base"].id, role="base"),
                                              EvalTarget(deployed["tuned"].id, role="fine-tuned")]),
                         index=deployed["index"])
    verdict = latest_verdict(job_id=deployed["job"].id)
    assert verdict.run_id == run.id and verdict.base_label == "base 8B"
    assert any(line.startswith("token F1:") for line in verdict.lines)
    # A worse fine-tune is said so.
    from legalft.db import connect

    summary = run.summary
    tuned_label = next(t["label"] for t in run.targets if t["role"] == "fine-tuned")
    summary[tuned_label]["invented_rate"] = {"value": 0.4, "low": 0.2, "high": 0.6, "n": 10}
    summary["base 8B"]["invented_rate"] = {"value": 0.1, "low": 0.02, "high": 0.4, "n": 10}
    summary[tuned_label]["token_f1"]["value"] = summary["base 8B"]["token_f1"]["value"] - 0.1
    with connect() as conn:
        conn.execute("UPDATE eval_runs SET summary_json = ? WHERE id = ?", (json.dumps(summary), run.id))
    warnings = latest_verdict(job_id=deployed["job"].id).warnings
    assert warnings[0] == "the fine-tuned model invents more citations than its base (40.0% vs 10.0%)"
    assert any("scores lower than its base on token F1" in w for w in warnings)
    assert latest_verdict(job_id="ftjob-none") is None


def _cli_env(server) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return env


@pytest.mark.slow
def test_cli_run_killed_then_continued(deployed, tmp_path):
    server = deployed["server"]
    control(server, {"delay": 0.15})
    env = _cli_env(server)
    command = [sys.executable, "-m", "legalft", "eval", "run", "--generate", "12", "--endpoint",
               str(deployed["tuned"].id), "--base", str(deployed["base"].id), "--concurrency", "2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.time() + 60
    run_id = None
    while time.time() < deadline:
        runs = list_runs()
        if runs and load_run(runs[0]["id"]).done >= 4:
            run_id = runs[0]["id"]
            break
        time.sleep(0.1)
    process.kill()
    process.wait(timeout=10)
    assert run_id, process.stderr.read().decode()
    partial = load_run(run_id)
    assert partial.status == "running" and 4 <= partial.done < 24
    control(server, {"delay": 0})
    result = subprocess.run([sys.executable, "-m", "legalft", "eval", "continue", run_id, "--json"], env=env,
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "succeeded" and out["done"] == 24
    run = load_run(run_id)
    assert len({(a["label"], a["idx"]) for a in run.answers}) == 24
    csv_path = tmp_path / "run.csv"
    exported = subprocess.run([sys.executable, "-m", "legalft", "eval", "export", run_id, "--out", str(csv_path)],
                              env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert exported.returncode == 0 and len(list(csv.DictReader(io.StringIO(csv_path.read_text())))) == 24
    card = subprocess.run([sys.executable, "-m", "legalft", "eval", "card", run_id], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert card.returncode == 0 and card.stdout.startswith("# Evaluation card: base 8B")


def test_cli_refuses_bad_arguments(deployed, capsys):
    from legalft.cli import main

    assert main(["eval", "run", "--generate", "2"]) == 2
    assert main(["eval", "run", "--generate", "2", "--endpoint", "no-such-endpoint"]) == 2
    assert "no endpoint 'no-such-endpoint'" in capsys.readouterr().err
    assert main(["eval", "continue", "eval-missing"]) == 2
