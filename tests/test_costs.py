"""The cost planner against figures worked out by hand."""

from __future__ import annotations

import math
from datetime import date

import pytest

from legalft import costs
from legalft.costs import CostScenario, GpuMinutes


def reference(**changes) -> CostScenario:
    """The reference scenario at explicit prices: H100 $2.95/h, Llama-3.1-8B $0.02 in / $0.06 out."""
    fields = dict(
        queries_per_day=500,
        input_tokens_per_query=800,
        output_tokens_per_query=400,
        gpu_hourly=2.95,
        input_price_per_million=0.02,
        output_price_per_million=0.06,
        gpu_tokens_per_second=15220,
    )
    fields.update(changes)
    return CostScenario(**fields)


def test_reference_scenario_by_hand():
    estimate = costs.estimate_monthly_cost(reference())
    # 500 × (800 + 400) = 600,000 tokens a day; × 30 days = 18,000,000 a month.
    assert estimate.daily_tokens == 600_000
    assert estimate.monthly_tokens == 18_000_000
    # 12M in × $0.02 + 6M out × $0.06 = $0.24 + $0.36.
    assert costs.round_money(estimate.managed_monthly) == 0.60
    # 30 × 24 = 720 h and 8 × 20 = 160 h at $2.95.
    assert estimate.gpu_modes["24_7"].billed_hours_per_month == 720
    assert costs.round_money(estimate.gpu_modes["24_7"].monthly) == 2124.00
    assert costs.round_money(estimate.gpu_modes["business_hours"].monthly) == 472.00
    # One GPU: 15,220 tok/s × 8 h × 3600 s / 400 tokens = 1,095,840 queries a day.
    assert estimate.queries_per_gpu_per_day == pytest.approx(1_095_840)
    assert estimate.gpus_needed == 1
    # m = 30 days × $0.00004 a query = $0.0012 a month per query a day.
    # Business hours: 472 / 0.0012 = 393,333.3 → its bill is lower from 393,334 (within one GPU's
    # capacity), but it runs 20 of the 30 days on which queries arrive: not like for like.
    assert costs.break_even_queries_per_day(reference(), "business_hours") == 393_334
    business = estimate.gpu_modes["business_hours"]
    assert not business.covers_demand and business.coverage == pytest.approx(20 / 30)
    assert business.break_even_queries_per_day is None
    assert "30 days a month, it runs on 20" in business.coverage_note
    # 24/7: 2124 / 0.0012 = 1,770,000 > 1,095,840 a GPU can serve: adding load only adds GPUs.
    assert estimate.gpu_modes["24_7"].break_even_queries_per_day is None
    recommendation = costs.recommend(estimate)
    assert recommendation.path == "managed" and "left out" in recommendation.text


def test_one_gpu_not_enough_raises_the_gpu_cost():
    # 100 tok/s × 8 h × 3600 / 400 = 7,200 queries a day per GPU; 20,000 need ceil(2.78) = 3 GPUs.
    scenario = reference(queries_per_day=20_000, gpu_tokens_per_second=100)
    estimate = costs.estimate_monthly_cost(scenario)
    assert estimate.queries_per_gpu_per_day == pytest.approx(7_200)
    assert estimate.gpus_needed == 3
    assert estimate.gpu_modes["24_7"].gpus == 3
    assert costs.round_money(estimate.gpu_modes["24_7"].monthly) == 6372.00  # 720 h × 2.95 × 3
    assert costs.round_money(estimate.gpu_modes["business_hours"].monthly) == 1416.00  # 160 h × 2.95 × 3
    # Exactly at capacity one GPU still suffices; one query more needs a second.
    assert costs.gpus_needed(scenario, 7_200) == 1
    assert costs.gpus_needed(scenario, 7_201) == 2


def test_rented_gpus_are_a_floor_not_a_cap():
    scenario = reference(gpus=2)
    assert costs.gpus_billed(scenario) == 2
    assert costs.round_money(costs.gpu_monthly_cost(scenario, "business_hours")) == 944.00  # 160 × 2.95 × 2
    # Twice the GPU cost, twice the break-even: 944 / 0.0012 = 786,666.7.
    assert costs.break_even_queries_per_day(scenario, "business_hours") == 786_667


def test_blended_price():
    scenario = reference(input_price_per_million=None, output_price_per_million=None, blended_price_per_million=0.05)
    estimate = costs.estimate_monthly_cost(scenario)
    # 18M tokens × $0.05 per 1M.
    assert costs.round_money(estimate.managed_monthly) == 0.90
    # A query is 1,200 tokens × $0.05 / 1M = $0.00006; m = 30 × 0.00006 = 0.0018;
    # 472 / 0.0018 = 262,222.2 → 262,223.
    assert estimate.managed_cost_per_query == pytest.approx(0.00006)
    assert costs.break_even_queries_per_day(scenario, "business_hours") == 262_223


def test_blended_price_wins_over_input_and_output_prices():
    scenario = reference(blended_price_per_million=1.0)
    assert costs.managed_cost_per_query(scenario) == pytest.approx(1200 / 1e6)


def test_never_breaks_even_when_a_full_gpu_costs_more_per_query():
    # 70B prices: $0.000264 a query, m = 0.00792. A GPU serving 7,200 queries a day costs
    # 472 / 7,200 = $0.0656 per query-a-day, more than m: the GPU is never cheaper.
    scenario = reference(
        input_price_per_million=0.13, output_price_per_million=0.40, gpu_tokens_per_second=100
    )
    assert costs.break_even_queries_per_day(scenario, "business_hours") is None
    assert costs.break_even_queries_per_day(scenario, "24_7") is None
    # Checked by brute force over many volumes, including several GPUs' worth.
    for queries in range(0, 60_000, 97):
        assert costs.gpu_monthly_cost(scenario, "business_hours", queries) >= costs.managed_monthly_cost(scenario, queries)


def test_never_breaks_even_against_a_free_managed_service():
    scenario = reference(input_price_per_million=0, output_price_per_million=0)
    assert costs.break_even_queries_per_day(scenario, "business_hours") is None


def test_break_even_when_the_gpu_wins():
    # 70B prices with the catalogue throughput: 24/7 2124 / 0.00792 = 268,181.8 → 268,182.
    scenario = reference(input_price_per_million=0.13, output_price_per_million=0.40)
    break_even = costs.break_even_queries_per_day(scenario, "24_7")
    assert break_even == 268_182
    assert costs.gpu_monthly_cost(scenario, "24_7", break_even) < costs.managed_monthly_cost(scenario, break_even)
    assert costs.gpu_monthly_cost(scenario, "24_7", break_even - 1) >= costs.managed_monthly_cost(scenario, break_even - 1)
    at_volume = costs.estimate_monthly_cost(reference(input_price_per_million=0.13, output_price_per_million=0.40,
                                                      queries_per_day=300_000))
    recommendation = costs.recommend(at_volume)
    # Business hours bills $472 but runs 20 of the 30 days: the cheapest like-for-like GPU is 24/7,
    # $2,124 < 300,000 × 0.00792 = $2,376.
    assert recommendation.path == "24_7"
    assert "$2,124.00" in recommendation.text and "$2,376.00" in recommendation.text
    # With queries only in business hours on working days, the business-hours GPU serves them all.
    weekdays = costs.estimate_monthly_cost(reference(input_price_per_million=0.13, output_price_per_million=0.40,
                                                     queries_per_day=300_000, demand_days_per_month=20))
    assert weekdays.gpu_modes["business_hours"].covers_demand
    assert costs.recommend(weekdays).path == "business_hours"  # $472 against 300,000 × 20 × 0.000264 = $1,584


def test_break_even_without_a_throughput_ignores_capacity():
    scenario = reference(gpu_tokens_per_second=None)
    assert costs.queries_per_gpu_per_day(scenario) is None
    assert costs.gpus_needed(scenario, 10**9) == 1
    assert costs.break_even_queries_per_day(scenario, "24_7") == 1_770_001  # 2124 / 0.0012 = 1,770,000 exactly


def test_break_even_matches_a_brute_force_search():
    # Capacity 7,200 a GPU; 24/7 per GPU 2124; m = 0.0012 × 300 (price × 300) = 0.36 → 5,900 < 7,200.
    scenario = reference(input_price_per_million=6, output_price_per_million=18, gpu_tokens_per_second=100)
    expected = next(
        q for q in range(1, 100_000)
        if costs.gpu_monthly_cost(scenario, "24_7", q) < costs.managed_monthly_cost(scenario, q)
    )
    assert costs.break_even_queries_per_day(scenario, "24_7") == expected == 5_901


def test_custom_hours_mode():
    estimate = costs.estimate_monthly_cost(reference(custom_hours_per_month=100))
    assert set(estimate.gpu_modes) == {"24_7", "business_hours", "custom"}
    assert costs.round_money(estimate.gpu_modes["custom"].monthly) == 295.00
    # 100 h cannot cover queries arriving over 8 h × 30 days = 240 h: never shown as the cheaper one.
    assert estimate.gpu_modes["custom"].coverage == pytest.approx(100 / 240)
    assert estimate.cheapest_gpu().mode == "24_7"
    enough = costs.estimate_monthly_cost(reference(custom_hours_per_month=240))
    assert enough.gpu_modes["custom"].covers_demand and enough.cheapest_gpu().mode == "custom"
    assert "custom" not in costs.estimate_monthly_cost(reference()).gpu_modes


def test_load_hours_set_capacity_independently_of_billing():
    # Queries spread over 24 h: 15,220 × 86,400 / 400 = 3,287,520 a GPU.
    assert costs.queries_per_gpu_per_day(reference(load_hours_per_day=24)) == pytest.approx(3_287_520)


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(queries_per_day=-1), "queries_per_day"),
        (dict(input_price_per_million=None), "blended price"),
        (dict(gpus=0), "gpus"),
        (dict(working_days_per_month=31), "working_days_per_month"),
        (dict(business_hours_per_day=25), "business_hours_per_day"),
        (dict(custom_hours_per_month=800), "custom_hours_per_month"),
        (dict(gpu_tokens_per_second=0), "gpu_tokens_per_second"),
    ],
)
def test_contradictory_scenarios_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        reference(**changes)


def test_cost_curve_and_points():
    scenario = reference()
    points = costs.curve_points(10, 1_000_000, count=6)
    assert points[0] == pytest.approx(10) and points[-1] == pytest.approx(1_000_000)
    assert points[2] == pytest.approx(1_000)
    curve = costs.cost_curve(scenario, [500, 2_000_000])
    assert curve["managed"] == pytest.approx([0.6, 2400])
    # 2,000,000 queries a day need 2 GPUs at 1,095,840 each.
    assert curve["24_7"] == pytest.approx([2124, 4248])


def test_round_money_rounds_half_up():
    assert costs.round_money(0.125) == 0.13
    assert costs.round_money(2.3108333) == 2.31
    assert costs.round_money(0.0955376) == 0.10


# --- one-time costs ---


def test_managed_training_cost_matches_the_reference_run():
    # The reference run trained 238,844 tokens (59,711 × 4 epochs) at $0.40 per 1M.
    assert costs.estimate_managed_training_cost(59_711, 4, 0.40) == pytest.approx(0.0955376)
    with pytest.raises(ValueError):
        costs.estimate_managed_training_cost(-1, 4, 0.40)


def test_gpu_one_time_cost_defaults_to_the_reference_47_minutes():
    one_time = costs.estimate_gpu_one_time_cost(2.95)
    assert one_time.minutes.total == 47
    assert costs.round_money(one_time.cost) == 2.31  # 47 / 60 × 2.95 = 2.3108
    no_merge = costs.estimate_gpu_one_time_cost(3.0, GpuMinutes(merge=0), gpus=2)
    assert no_merge.cost == pytest.approx(39 / 60 * 3.0 * 2)
    with pytest.raises(ValueError, match="setup"):
        GpuMinutes(setup=-1)


def test_training_minutes_from_a_measured_throughput():
    assert costs.estimate_training_minutes(240_000, 2_000) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        costs.estimate_training_minutes(1, 0)


def test_first_month_totals():
    estimate = costs.estimate_monthly_cost(reference())
    totals = costs.first_month_totals(estimate, managed_training=0.10, gpu_one_time=2.31)
    assert totals.managed == pytest.approx(0.70)
    assert totals.gpu["business_hours"] == pytest.approx(474.31)
    assert totals.gpu["24_7"] == pytest.approx(2126.31)


# --- catalogue and overrides ---


def test_catalogue_entries_all_have_a_source_and_a_date():
    catalogue = costs.load_catalogue()
    assert len(catalogue.prices) >= 10
    for price in catalogue.prices.values():
        assert price.source and price.unit and price.label
        assert isinstance(price.read_on, date)
        assert price.value >= 0
    assert catalogue.default("gpu_hourly").value == 2.95
    assert catalogue.default("gpu_tokens_per_second").kind == "throughput"
    inputs, outputs = catalogue.managed_prices()
    assert (inputs.value, outputs.value) == (0.02, 0.06)
    assert set(catalogue.managed_models()) == {"meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.3-70B-Instruct"}


def test_training_price_per_million_by_model_size():
    catalogue = costs.load_catalogue()
    assert costs.training_price_per_million("meta-llama/Llama-3.1-8B-Instruct", catalogue) == 0.40
    assert costs.training_price_per_million("Qwen/Qwen2.5-0.5B-Instruct", catalogue) == 0.40
    assert costs.training_price_per_million("meta-llama/Llama-3.3-70B-Instruct", catalogue) is None
    assert costs.training_price_per_million("Qwen/Qwen3-30B-A3B", catalogue) is None  # total size counts
    assert costs.training_price_per_million("some-org/unsized-model", catalogue) is None
    assert costs.model_size_billion("google/gemma-4-E4B") == 4


def test_overrides_are_saved_applied_and_cleared():
    assert costs.training_price_per_million("meta-llama/Llama-3.1-8B-Instruct") == 0.40
    costs.set_price_override("tf_training_small", 0.55)
    costs.set_price_override("gpu_h100_hourly", 3.10)
    prices = costs.effective_prices()
    assert prices["gpu_h100_hourly"].value == 3.10
    assert prices["gpu_h100_hourly"].catalogue_value == 2.95
    assert prices["gpu_h100_hourly"].overridden
    assert not prices["gpu_h200_hourly"].overridden
    assert costs.training_price_per_million("meta-llama/Llama-3.1-8B-Instruct") == 0.55
    scenario = costs.build_scenario(queries_per_day=500, input_tokens_per_query=800, output_tokens_per_query=400)
    assert scenario.gpu_hourly == 3.10
    costs.set_price_override("gpu_h100_hourly", 3.20)  # replaces
    assert costs.list_price_overrides()["gpu_h100_hourly"][0] == 3.20
    assert costs.clear_price_override("gpu_h100_hourly") is True
    assert costs.clear_price_override("gpu_h100_hourly") is False
    assert costs.effective_prices()["gpu_h100_hourly"].value == 2.95


def test_bad_overrides_are_refused():
    with pytest.raises(KeyError, match="known"):
        costs.set_price_override("no_such_price", 1.0)
    with pytest.raises(ValueError, match="≥ 0"):
        costs.set_price_override("gpu_h100_hourly", -1)
    with pytest.raises(ValueError, match="> 0"):
        costs.set_price_override("gpu_tokens_per_second", 0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        costs.set_price_override("tf_batch_discount", 1.5)


def test_build_scenario_fills_unset_prices_from_the_catalogue():
    scenario = costs.build_scenario(
        queries_per_day=500, input_tokens_per_query=800, output_tokens_per_query=400,
        managed_model="meta-llama/Llama-3.3-70B-Instruct", gpu_hourly=None,
    )
    assert (scenario.input_price_per_million, scenario.output_price_per_million) == (0.13, 0.40)
    assert scenario.gpu_hourly == 2.95
    # Planned for the 70B on H100s: 4 GPUs a replica, 2,550 × (8.03 × 2) / (70.6 × 2) × 4 tokens/s.
    assert scenario.gpus_per_replica == 4
    assert scenario.gpu_tokens_per_second == pytest.approx(2550 * 8.03 / 70.6 * 4)
    blended = costs.build_scenario(
        queries_per_day=1, input_tokens_per_query=1, output_tokens_per_query=1, blended_price_per_million=0.1
    )
    assert blended.input_price_per_million is None and blended.uses_blended_price


def test_price_age_follows_the_precision_of_the_source():
    catalogue = costs.load_catalogue()
    today = date(2026, 11, 28)
    assert costs.price_age(catalogue["gpu_h200_hourly"], today) == "13 months"  # Oct 2025
    assert costs.price_age(catalogue["gpu_h100_hourly"], today) == "6 months"  # May 2026
    assert costs.price_age(catalogue["tf_training_small"], today) == "up to 10 months"  # "2026"
    assert costs.price_age(catalogue["tf_batch_discount"], today).startswith("source undated")


def test_scenario_summary_rounds_money_to_cents():
    summary = costs.scenario_summary(costs.estimate_monthly_cost(reference(gpu_hourly=2.951)))
    assert summary["cloud_monthly_24_7"] == 2124.72  # 720 × 2.951 = 2124.72
    assert summary["managed_monthly"] == 0.6
    assert math.isclose(summary["managed_cost_per_query"], 0.00004)


# --- demand profiles and the model-aware GPU side ---


def test_demand_profiles():
    assert costs.demand_profile("24_7") == (24, 30)
    assert costs.demand_profile("business_hours", business_hours_per_day=9, working_days_per_month=21) == (9, 21)
    assert costs.demand_profile("custom", custom_hours_per_day=12, custom_days_per_month=26) == (12, 26)
    with pytest.raises(ValueError, match="demand profile"):
        costs.demand_profile("weekends")


def test_a_business_hours_gpu_cannot_cover_round_the_clock_demand():
    # Queries around the clock: 24 h × 30 days = 720 h; business hours run 8 h × 20 days = 160 h.
    scenario = reference(load_hours_per_day=24)
    estimate = costs.estimate_monthly_cost(scenario)
    business = estimate.gpu_modes["business_hours"]
    assert business.coverage == pytest.approx(160 / 720)
    assert "queries arrive over 24 h a day, it runs 8 h" in business.coverage_note
    assert business.break_even_queries_per_day is None
    assert estimate.cheapest_gpu().mode == "24_7"
    # Even where its bill is below the managed one, it is not recommended.
    big = costs.estimate_monthly_cost(reference(load_hours_per_day=24, queries_per_day=600_000))
    assert big.gpu_modes["business_hours"].monthly < big.managed_monthly  # $472 < $720
    assert costs.recommend(big).path == "managed"  # the 24/7 GPU costs $2,124 > $720


def test_queries_on_fewer_days_bill_the_managed_side_for_those_days():
    scenario = reference(demand_days_per_month=20)
    estimate = costs.estimate_monthly_cost(scenario)
    assert costs.round_money(estimate.managed_monthly) == 0.40  # 500 × 20 × $0.00004
    assert estimate.gpu_modes["24_7"].billed_hours_per_month == 720  # a 24/7 GPU bills every day
    assert estimate.gpu_modes["business_hours"].covers_demand
    with pytest.raises(ValueError, match="demand_days_per_month"):
        reference(demand_days_per_month=31)


def test_serving_plan_for_8b_and_70b_by_hand():
    small = costs.plan_serving("meta-llama/Llama-3.1-8B-Instruct", "h100", "bf16", 1200, base_tokens_per_second=2550)
    # Weights 8.03 × 2 = 16.06 GB; KV 2 × 32 layers × 8 heads × 128 × 2 B = 131,072 B a token
    # × 1,200 tokens × 32 answers = 5.03 GB; + 2 GB runtime = 23.1 GB < 72 GB usable: one GPU.
    assert small.weights_gb == pytest.approx(16.06)
    assert small.kv_cache_gb == pytest.approx(131_072 * 1200 * 32 / 1e9)
    assert small.tensor_parallel == 1 and small.tokens_per_second == 2550
    big = costs.plan_serving("meta-llama/Llama-3.3-70B-Instruct", "h100", "bf16", 1200, base_tokens_per_second=2550)
    # 141.2 GB of weights + 12.58 GB KV (80 layers) + 2 GB a GPU: 2 × 72 = 144 GB is short, 4 × 72 holds it.
    assert big.weights_gb == pytest.approx(141.2)
    assert big.kv_cache_gb == pytest.approx(327_680 * 1200 * 32 / 1e9)
    assert big.tensor_parallel == 4
    assert big.tokens_per_second == pytest.approx(2550 * 8.03 / 70.6 * 4)  # 1,160 tokens/s a replica
    assert "scaled from 2,550" in big.throughput_basis and "assumption" in big.throughput_basis
    on_h200 = costs.plan_serving("meta-llama/Llama-3.3-70B-Instruct", "h200", "bf16", 1200, base_tokens_per_second=2550)
    assert on_h200.tensor_parallel == 2  # 2 × 126.9 GB usable
    fp8 = costs.plan_serving("meta-llama/Llama-3.1-8B-Instruct", "h100", "fp8", 1200, base_tokens_per_second=2550)
    assert fp8.tokens_per_second == 5103 and fp8.throughput_measured  # the cited vLLM row
    assert fp8.throughput_source_date == "2025-09"


def test_a_model_that_does_not_fit_is_refused():
    plan = costs.plan_serving("meta-llama/Llama-3.1-405B-Instruct", "h100", "bf16", 1200, base_tokens_per_second=2550)
    assert not plan.fits and plan.tokens_per_second is None
    assert "does not fit" in plan.notes[0] and "8 × NVIDIA H100" in plan.notes[0]
    with pytest.raises(costs.ModelDoesNotFit, match="does not fit"):
        costs.build_scenario(queries_per_day=500, input_tokens_per_query=800, output_tokens_per_query=400,
                             managed_model="meta-llama/Llama-3.1-405B-Instruct",
                             input_price_per_million=1, output_price_per_million=1)


def test_70b_at_two_million_queries_a_day():
    # The case: the old planner said 2 GPUs, $944 a month, as if it were the 8B on one H100.
    scenario = costs.build_scenario(
        queries_per_day=2_000_000, input_tokens_per_query=800, output_tokens_per_query=400,
        managed_model="meta-llama/Llama-3.3-70B-Instruct")
    estimate = costs.estimate_monthly_cost(scenario)
    # A replica: 1,160.14 tokens/s × 8 h × 3600 / 400 = 83,530 queries a day → 24 replicas × 4 GPUs.
    assert math.floor(estimate.queries_per_gpu_per_day) == 83_530
    assert costs.replicas_needed(scenario) == 24 and estimate.gpus_needed == 96
    assert costs.round_money(estimate.gpu_modes["24_7"].monthly) == 203_904.00  # 720 h × $2.95 × 96
    assert costs.round_money(estimate.managed_monthly) == 15_840.00  # 2M × 30 × $0.000264
    assert costs.recommend(estimate).path == "managed"


def test_rented_gpus_come_in_whole_replicas():
    scenario = reference(gpus=2, gpus_per_replica=4, gpu_tokens_per_second=1000)
    assert costs.gpus_billed(scenario) == 4  # 2 GPUs rented cannot hold half a replica
    # Break-even per replica: 4 × 472 / 0.0012 = 1,573,333.3; capacity 1000 × 8 × 3600 / 400 = 72,000.
    assert costs.break_even_queries_per_day(scenario, "business_hours") is None


# --- sensitivity and the one-page report ---


def test_sensitivity_shows_where_the_answer_flips():
    # 70B prices, an H100 at 15,220 tokens/s: the 24/7 GPU breaks even at 268,182 queries a day.
    scenario = reference(input_price_per_million=0.13, output_price_per_million=0.40)
    rows = costs.sensitivity(scenario)
    by_queries = [row for row in rows if row.variable == "queries_per_day"]
    assert [row.value for row in by_queries] == ["50", "500", "5,000", "50,000", "500,000", "5,000,000"]
    assert [row.recommended for row in by_queries][:4] == ["managed"] * 4
    assert by_queries[4].recommended == "24_7"  # $2,124 against 500,000 × 30 × $0.000264 = $3,960
    assert by_queries[4].gpu_monthly == pytest.approx(2124)
    cheap_gpu = next(row for row in rows if row.variable == "gpu_hourly" and row.factor == 0.25)
    assert cheap_gpu.value == "$0.74" and cheap_gpu.gpu_monthly == pytest.approx(531)
    assert "Queries a day: from the managed service at 50,000 to a GPU billed 24/7 at 500,000" in costs.flips(rows)


def test_report_names_every_assumption_with_its_source_and_date():
    prices = costs.load_catalogue()
    estimate = costs.estimate_monthly_cost(reference())
    text = costs.scenario_report(estimate, prices, model="meta-llama/Llama-3.1-8B-Instruct",
                                 used_prices=["gpu_h100_hourly", "tf_llama_3_1_8b_input"], today=date(2026, 12, 1))
    assert text.startswith("# Fine-tuned legal model: managed service or your own GPU")
    assert "Prepared 2026-12-01" in text and costs.recommend(estimate).text in text
    assert "| Nebius H100, on-demand (price page) | 2.95 USD per GPU-hour | Nebius price page" in text
    assert "| 2026-05 | 7 months |" in text
    assert "| GPU, business hours (1 GPUs × 160 h) | $472.00 | no: 67% of it | never |" in text
    assert "## Where the answer flips" in text
