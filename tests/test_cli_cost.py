"""``legalft cost``: JSON keys and values, human output, usage errors."""

from __future__ import annotations

import json

import pytest

from legalft import costs
from legalft.cli import main
from tests.conftest import REFERENCE_QA

REFERENCE_ARGS = ["cost", "scenario", "--queries-per-day", "500", "--input-tokens", "800", "--output-tokens", "400"]


def run_json(capsys, argv: list[str]) -> dict:
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_scenario_json_with_catalogue_prices(capsys):
    out = run_json(capsys, REFERENCE_ARGS)
    assert out["daily_tokens"] == 600_000
    assert out["monthly_tokens"] == 18_000_000
    assert out["managed_monthly"] == 0.60  # 12M × $0.02 + 6M × $0.06 per 1M
    assert out["cloud_monthly_24_7"] == 2124.00  # 720 h × $2.95
    assert out["cloud_monthly_business_hours"] == 472.00  # 160 h × $2.95
    assert out["break_even_queries_per_day_24_7"] is None  # needs more than one GPU's capacity
    # Queries arrive on 30 days, a business-hours GPU runs on 20: not like for like.
    assert out["covers_demand_business_hours"] is False and out["coverage_business_hours"] == 0.6667
    assert out["break_even_queries_per_day_business_hours"] is None
    # Planned: Llama-3.1-8B bf16 on one H100 at 2,550 tokens/s over 8 h / 400 tokens = 183,600 a day.
    assert out["serving_plan"]["gpus_per_replica"] == 1 and out["gpu_tokens_per_second"] == 2550
    assert out["queries_per_gpu_per_day"] == 183_600
    assert out["gpus_needed"] == 1
    assert out["recommended_path"] == "managed"
    assert "cloud_monthly_custom" not in out


def test_scenario_json_with_given_prices_and_too_little_throughput(capsys):
    out = run_json(
        capsys,
        ["cost", "scenario", "--queries-per-day", "20000", "--input-tokens", "800", "--output-tokens", "400",
         "--days-per-month", "20", "--gpu-hourly", "2", "--business-hours", "10", "--working-days", "20",
         "--input-price", "0.13", "--output-price", "0.4", "--gpu-tokens-per-second", "100",
         "--custom-hours", "50"],
    )
    # Capacity: 100 × 10 h × 3600 / 400 = 9,000 a GPU → 3 GPUs for 20,000.
    assert out["queries_per_gpu_per_day"] == 9_000
    assert out["gpus_needed"] == 3
    assert out["cloud_monthly_24_7"] == 2880.00  # 20 days × 24 h × $2 × 3
    assert out["cloud_monthly_business_hours"] == 1200.00  # 10 h × 20 days × $2 × 3
    assert out["cloud_monthly_custom"] == 300.00  # 50 h × $2 × 3
    # 20,000 × 20 days × (800 × 0.13 + 400 × 0.40) / 1M = 400,000 × 0.000264.
    assert out["managed_monthly"] == 105.60
    assert out["daily_tokens"] == 24_000_000
    assert out["monthly_tokens"] == 480_000_000
    # A full GPU costs 400 / 9,000 = $0.044 per query-a-day a month, more than 20 × 0.000264 = $0.00528.
    assert out["break_even_queries_per_day_business_hours"] is None
    assert out["break_even_queries_per_day_custom"] is None


def test_scenario_blended_price(capsys):
    out = run_json(capsys, REFERENCE_ARGS + ["--blended-price", "0.05", "--gpu-tokens-per-second", "15220"])
    assert out["managed_monthly"] == 0.90  # 18M × $0.05 per 1M
    assert out["managed_blended_price_per_million"] == 0.05
    assert out["managed_input_price_per_million"] is None
    assert out["break_even_queries_per_day_business_hours"] is None  # runs 20 of 30 days
    weekdays = run_json(capsys, REFERENCE_ARGS + ["--blended-price", "0.05", "--gpu-tokens-per-second", "15220",
                                                  "--demand", "business_hours"])
    assert weekdays["managed_monthly"] == 0.60  # 500 × 20 days × 1,200 × $0.05 / 1M
    assert weekdays["break_even_queries_per_day_business_hours"] == 393_334  # 472 / (20 × 1,200 × 0.05e-6)


def test_scenario_defaults_follow_saved_overrides(capsys):
    costs.set_price_override("gpu_h100_hourly", 3.0)
    out = run_json(capsys, REFERENCE_ARGS)
    assert out["gpu_hourly"] == 3.0
    assert out["cloud_monthly_24_7"] == 2160.00  # 720 h × $3


def test_scenario_human_output(capsys):
    assert main(REFERENCE_ARGS) == 0
    text = capsys.readouterr().out
    assert "600,000 a day" in text
    assert "$472.00 a month; does not cover the demand: queries arrive on 30 days a month, it runs on 20" in text
    assert "never breaks even" in text and "Serving plan: 23.1 GB a replica on 1 × h100" in text
    assert text.strip().splitlines()[-1].startswith("Use the managed service")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--blended-price", "0.1", "--input-price", "0.2"], "not both"),
        (["--working-days", "40"], "working_days_per_month"),
        (["--managed-model", "acme/unknown-1B"], "no managed inference prices"),
    ],
)
def test_scenario_usage_errors(capsys, extra, message):
    assert main(REFERENCE_ARGS + extra) == 2
    assert message in capsys.readouterr().err


def test_training_json(capsys):
    tokens = costs.estimate_trained_tokens(REFERENCE_QA, epochs=4)
    out = run_json(capsys, ["cost", "training", "--dataset", str(REFERENCE_QA), "--epochs", "4"])
    assert out["records"] == 148 and out["skipped_records"] == 0
    assert out["tokens_are_approximate"] is True
    assert out["trained_tokens_per_epoch"] == tokens.per_epoch
    assert out["trained_tokens"] == tokens.total == 239_412  # within 0.3% of the 238,844 billed
    assert out["price_per_million"] == 0.40
    assert out["managed_cost"] == 0.10  # 239,412 × $0.40 / 1M = $0.0958
    assert out["gpu_minutes"]["total"] == 47
    assert out["gpu_one_time_cost"] == 2.31  # 47 min × $2.95 / 60


def test_training_with_given_price_and_measured_throughput(capsys):
    out = run_json(
        capsys,
        ["cost", "training", "--dataset", str(REFERENCE_QA), "--epochs", "2", "--price-per-million", "1000",
         "--gpu-hourly", "6", "--train-tokens-per-second", "10", "--merge-minutes", "0", "--no-packing",
         "--context-length", "100"],
    )
    assert out["packing"] is False and out["context_length"] == 100 and out["truncated_tokens"] > 0
    assert out["managed_cost"] == costs.round_money(out["trained_tokens"] * 1000 / 1e6)
    # Your GPU trains the template + text tokens, not the service's count.
    minutes = out["sequence_tokens"] / 10 / 60
    assert out["gpu_minutes"]["training"] == round(minutes, 2)
    assert out["gpu_one_time_cost"] == costs.round_money((25 + minutes + 0 + 4) / 60 * 6)


def test_training_usage_errors(capsys, tmp_path):
    assert main(["cost", "training", "--dataset", str(tmp_path / "missing.jsonl"), "--epochs", "1"]) == 2
    assert "no such dataset file" in capsys.readouterr().err
    assert main(["cost", "training", "--dataset", str(REFERENCE_QA), "--epochs", "1",
                 "--base-model", "meta-llama/Llama-3.3-70B-Instruct"]) == 2
    assert "--price-per-million" in capsys.readouterr().err
    assert main(["cost", "training", "--dataset", str(REFERENCE_QA), "--epochs", "0"]) == 2
    assert "--epochs" in capsys.readouterr().err


def test_training_human_output(capsys):
    assert main(["cost", "training", "--dataset", str(REFERENCE_QA), "--epochs", "3"]) == 0
    text = capsys.readouterr().out
    assert "approximate" in text and "chat template" in text
    assert "= 47.0 min (reference run's minutes) × $2.95/GPU-hour" in text and text.rstrip().endswith("$2.31")


def test_scenario_70b_plans_tensor_parallel_and_refuses_what_does_not_fit(capsys):
    out = run_json(capsys, ["cost", "scenario", "--queries-per-day", "2000000", "--input-tokens", "800",
                            "--output-tokens", "400", "--managed-model", "meta-llama/Llama-3.3-70B-Instruct"])
    assert out["gpus_per_replica"] == 4 and out["gpus_needed"] == 96
    assert out["cloud_monthly_24_7"] == 203_904.00 and out["managed_monthly"] == 15_840.00
    on_h200 = run_json(capsys, ["cost", "scenario", "--queries-per-day", "500", "--input-tokens", "800",
                                "--output-tokens", "400", "--managed-model", "meta-llama/Llama-3.3-70B-Instruct",
                                "--gpu-offer", "gpu_h200_hourly"])
    assert on_h200["gpus_per_replica"] == 2 and on_h200["cloud_monthly_24_7"] == 5_040.00  # 720 h × $3.50 × 2
    # 32 answers of 100,800 tokens need over 1 TB of KV cache: more than 8 H100s hold.
    assert main(["cost", "scenario", "--queries-per-day", "500", "--input-tokens", "800", "--output-tokens", "100000",
                 "--managed-model", "meta-llama/Llama-3.3-70B-Instruct"]) == 1
    assert "cannot serve this model" in capsys.readouterr().err


def test_scenario_report_file(capsys, tmp_path):
    report = tmp_path / "report.md"
    assert main(REFERENCE_ARGS + ["--report", str(report)]) == 0
    assert f"Report written to {report}" in capsys.readouterr().out
    text = report.read_text(encoding="utf-8")
    assert "## Assumptions: prices and figures used" in text
    assert "Red Hat's MLPerf Inference v5.1" in text and "| 2025-09 |" in text  # the throughput's source
    assert "Token Factory Llama-3.1-8B-Instruct, output" in text
