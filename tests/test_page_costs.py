"""The Costs page, driven through the app router with AppTest."""

from __future__ import annotations

import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from legalft import costs
from tests.conftest import REFERENCE_QA, ROOT


def open_costs(session: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=30)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.run()
    at.switch_page("views/costs.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def prices_table(at: AppTest):
    """The price table (the only dataframe with a Key column)."""
    return next(df.value for df in at.dataframe if "Key" in df.value.columns)


def submit(at: AppTest) -> None:
    at.button(key="costs_submit").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def test_reference_scenario_is_preset():
    at = open_costs()
    values = metrics(at)
    assert values["Managed service"] == "$0.60"
    assert values["GPU, 24/7"] == "$2,124.00"
    assert values["GPU, business hours"] == "$472.00"
    assert values["Own GPU, to first answer"] == "$2.31"
    assert "Use the managed service" in at.success[0].value
    # Queries arrive on 30 days; the business-hours GPU runs on 20: shown as not covering, not cheaper.
    assert "business hours is left out" in at.success[0].value
    business = next(m for m in at.metric if m.label == "GPU, business hours")
    assert business.proto.delta == "covers 67% of the demand"
    # Planned for Llama-3.1-8B bf16 on one H100: 2,550 tokens/s × 8 h × 3600 / 400 = 183,600 a day.
    assert any("183,600 queries a day" in md.value for md in at.markdown)
    assert any("Serving plan" in c.value and "23.1 GB a replica" in c.value for c in at.caption)
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [trace.get("name") for trace in chart["data"]]
    assert "Managed service" in names and "GPU, business hours (does not cover the demand)" in names
    assert "GPU, 24/7 (never breaks even)" in names and "Your scenario" in names


def test_changing_the_volume_flips_the_recommendation():
    at = open_costs()
    at.number_input(key="costs_queries").set_value(700_000)
    at.radio(key="costs_demand").set_value("business_hours")
    at.number_input(key="costs_tps").set_value(15_220)  # your own measured throughput
    submit(at)
    values = metrics(at)
    assert values["Managed service"] == "$560.00"  # 700,000 × 20 working days × $0.00004
    assert values["GPU, business hours"] == "$472.00"
    saving = next(m for m in at.metric if m.label == "GPU, business hours")
    assert saving.proto.delta == "-$88.00 vs managed"  # ASCII minus: a green, downward arrow
    assert "Run your own GPU" in at.warning[0].value
    assert any("your figure entered above" in c.value for c in at.caption)
    # The preset button puts the reference scenario back.
    at.button(key="costs_preset").click()
    at.run()
    assert metrics(at)["Managed service"] == "$0.60"


def test_too_little_throughput_adds_gpus_and_custom_hours_add_a_mode():
    at = open_costs()
    at.number_input(key="costs_queries").set_value(20_000)
    at.number_input(key="costs_tps").set_value(100)
    at.number_input(key="costs_custom_hours").set_value(100)
    submit(at)
    values = metrics(at)
    assert values["GPU, 24/7"] == "$6,372.00"  # 3 GPUs × 720 h × $2.95
    assert values["GPU, custom hours"] == "$885.00"  # 3 × 100 h × $2.95
    assert any("need **3 GPUs**" in md.value for md in at.markdown)


def test_blended_price():
    at = open_costs()
    at.radio(key="costs_pricing").set_value("One blended price per 1M tokens")
    at.number_input(key="costs_blended").set_value(0.05)
    submit(at)
    assert metrics(at)["Managed service"] == "$0.90"  # 18M tokens × $0.05 per 1M


def test_override_a_price_from_the_page():
    at = open_costs()
    at.selectbox(key="costs_override_key").set_value("gpu_h100_hourly")
    at.run()
    at.number_input(key="costs_override_value_gpu_h100_hourly").set_value(3.0)
    at.button(key="costs_override_save").click()
    at.run()
    assert not at.exception
    assert costs.effective_prices()["gpu_h100_hourly"].value == 3.0
    assert any(s.value == "Saved your figure for Nebius H100, on-demand (price page): 3." for s in at.success)
    assert metrics(at)["GPU, 24/7"] == "$2,160.00"  # 720 h × $3
    table = prices_table(at)
    row = table[table["Key"] == "gpu_h100_hourly"].iloc[0]
    assert row["Your override"] == "yes" and row["Catalogue value"] == 2.95 and row["Value"] == 3.0
    assert row["Used"] == "✓"
    at.button(key="costs_override_clear").click()
    at.run()
    assert metrics(at)["GPU, 24/7"] == "$2,124.00"


def test_prices_table_shows_source_date_and_age():
    table = prices_table(open_costs())
    assert set(table["Key"]) == set(costs.load_catalogue().prices)
    assert table["Source"].str.len().min() > 0
    h200 = table[table["Key"] == "gpu_h200_hourly"].iloc[0]
    assert h200["Source date"] == "2025-10" and h200["Age"].endswith("months")


def test_training_cost_uses_the_dataset_chosen_on_the_dataset_page(tmp_path):
    from legalft.data.registry import register_dataset

    small = tmp_path / "small.jsonl"
    shutil.copyfile(REFERENCE_QA, small)
    lines = small.read_text().splitlines()[:10]
    small.write_text("\n".join(lines) + "\n")
    dataset = register_dataset(small, "ten records")

    at = open_costs({"active_dataset_id": dataset.id})
    assert at.selectbox(key="costs_dataset").value == f"id:{dataset.id}"
    at.number_input(key="costs_epochs").set_value(40)
    at.run()
    tokens = costs.estimate_trained_tokens(dataset.path, epochs=40)
    assert any(f"{tokens.per_epoch:,} trained tokens per epoch" in c.value for c in at.caption)
    assert any(f"{tokens.total:,} trained tokens" in c.value for c in at.caption)
    assert metrics(at)["Managed fine-tuning"] == costs.format_money(tokens.total * 0.40 / 1e6)


def test_training_minutes_from_measured_throughput():
    at = open_costs()
    at.number_input(key="costs_merge_minutes").set_value(0)
    at.run()
    assert metrics(at)["Own GPU, to first answer"] == "$1.92"  # 39 min × $2.95 / 60 = 1.9175
    trained = costs.estimate_trained_tokens(REFERENCE_QA, epochs=3).sequence_total  # 3 epochs by default
    at.number_input(key="costs_train_tps").set_value(10)
    at.run()
    minutes = trained / 10 / 60
    assert metrics(at)["Training (estimated)"] == f"{minutes:.1f}"
    assert metrics(at)["Own GPU, to first answer"] == f"${costs.round_money((25 + minutes + 4) / 60 * 2.95):,.2f}"


@pytest.mark.parametrize("queries, shown", [(0, "$0.00"), (1, "< $0.01")])
def test_tiny_volumes_render(queries, shown):
    at = open_costs()
    at.number_input(key="costs_queries").set_value(queries)
    submit(at)
    assert metrics(at)["Managed service"] == shown  # 1 × 30 × $0.00004 = $0.0012, not "$0.00"


def test_the_70b_is_planned_on_four_gpus_and_an_impossible_context_is_refused():
    at = open_costs()
    at.selectbox(key="costs_model").set_value("meta-llama/Llama-3.3-70B-Instruct")
    at.number_input(key="costs_queries").set_value(2_000_000)
    submit(at)
    values = metrics(at)
    assert values["Managed service"] == "$15,840.00"  # 2M × 30 × $0.000264
    assert values["GPU, 24/7"] == "$203,904.00"  # 24 replicas × 4 H100s × 720 h × $2.95
    assert any("one replica (4 GPUs)" in md.value and "need **96 GPUs**" in md.value for md in at.markdown)
    assert any("spans 4 GPUs" in w.value for w in at.warning)
    assert "Use the managed service" in at.success[0].value
    at.number_input(key="costs_output_tokens").set_value(100_000)
    submit(at)
    assert "cannot serve this model" in at.error[0].value and "does not fit" in at.error[0].value


def test_sensitivity_table_and_report_download():
    at = open_costs()
    table = next(df.value for df in at.dataframe if "Cheaper" in df.value.columns)
    assert list(table[table["Input"] == "Queries a day"]["Value"]) == ["50", "500", "5,000", "50,000", "500,000",
                                                                     "5,000,000"]
    button = at.get("download_button")[0]
    assert "one-page report" in button.proto.label


def test_an_overridden_price_shows_your_figure_not_the_catalogue_source():
    costs.set_price_override("gpu_h100_hourly", 3.0)
    table = prices_table(open_costs())
    row = table[table["Key"] == "gpu_h100_hourly"].iloc[0]
    assert row["Source"].startswith("your figure (the catalogue's: 2.95, Nebius price page")
    assert row["Source date"] == costs.effective_prices()["gpu_h100_hourly"].overridden_at[:10]
