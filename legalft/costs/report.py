"""Where the answer flips, and a one-page report a decision maker can forward.

:func:`sensitivity` re-costs a scenario with one input scaled at a time (queries a day, tokens
per query, the GPU price) and says which path wins at each; :func:`scenario_report` writes the
scenario, its assumptions with their sources and dates, the result and that table as markdown.
The page's download button and ``legalft cost scenario --report FILE.md`` write the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from legalft.costs import CostEstimate, CostScenario, GpuOneTimeCost, ManagedTrainingCost, PriceCatalogue
    from legalft.costs.serving import ServingPlan

FACTORS = {
    # Volume moves by orders of magnitude before a GPU pays; prices and lengths by less.
    "queries_per_day": (0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0),
    "tokens_per_query": (0.25, 0.5, 1.0, 2.0, 4.0),
    "gpu_hourly": (0.25, 0.5, 1.0, 2.0, 4.0),
}
VARIABLES = {
    "queries_per_day": "Queries a day",
    "tokens_per_query": "Tokens per query (in and out)",
    "gpu_hourly": "GPU price per hour",
}


@dataclass(frozen=True)
class SensitivityRow:
    variable: str
    """A key of :data:`VARIABLES`."""
    factor: float
    value: str
    """The varied input, as shown."""
    managed_monthly: float
    gpu_monthly: float
    """The cheapest GPU billing mode that covers the demand."""
    gpu_mode: str
    recommended: str
    """"managed" or a GPU billing mode."""


def _varied(scenario: "CostScenario", variable: str, factor: float) -> tuple["CostScenario", str]:
    if variable == "queries_per_day":
        varied = replace(scenario, queries_per_day=scenario.queries_per_day * factor)
        return varied, f"{varied.queries_per_day:,.0f}"
    if variable == "tokens_per_query":
        varied = replace(scenario, input_tokens_per_query=scenario.input_tokens_per_query * factor,
                         output_tokens_per_query=scenario.output_tokens_per_query * factor)
        return varied, f"{varied.input_tokens_per_query:,.0f} in / {varied.output_tokens_per_query:,.0f} out"
    if variable == "gpu_hourly":
        varied = replace(scenario, gpu_hourly=scenario.gpu_hourly * factor)
        return varied, f"${varied.gpu_hourly:,.2f}"
    raise ValueError(f"unknown variable {variable!r}; expected one of {', '.join(VARIABLES)}")


def sensitivity(scenario: "CostScenario", factors: dict[str, tuple[float, ...]] | None = None) -> list[SensitivityRow]:
    """The recommendation with each of queries a day, tokens per query and GPU price scaled in turn.

    Throughput per replica is held fixed (longer answers do not make a GPU faster), so more tokens
    per query means fewer queries a replica serves.
    """
    from legalft.costs import estimate_monthly_cost, recommend

    factors = factors or FACTORS
    rows = []
    for variable in VARIABLES:
        for factor in factors.get(variable, ()):
            varied, shown = _varied(scenario, variable, factor)
            estimate = estimate_monthly_cost(varied)
            best = estimate.cheapest_gpu()
            rows.append(SensitivityRow(variable=variable, factor=factor, value=shown,
                                       managed_monthly=estimate.managed_monthly, gpu_monthly=best.monthly,
                                       gpu_mode=best.mode, recommended=recommend(estimate).path))
    return rows


def flips(rows: list[SensitivityRow]) -> list[str]:
    """One sentence per input whose scaling changes the recommendation."""
    from legalft.costs import MODE_LABELS

    def name(path: str) -> str:
        return "the managed service" if path == "managed" else f"a GPU billed {MODE_LABELS[path]}"

    out = []
    for variable, label in VARIABLES.items():
        mine = [row for row in rows if row.variable == variable]
        for before, after in zip(mine, mine[1:]):
            if before.recommended != after.recommended:
                out.append(f"{label}: from {name(before.recommended)} at {before.value} to "
                           f"{name(after.recommended)} at {after.value}")
    return out


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |"


def scenario_report(
    estimate: "CostEstimate",
    prices: "PriceCatalogue",
    *,
    serving: "ServingPlan | None" = None,
    model: str | None = None,
    managed_training: "ManagedTrainingCost | None" = None,
    gpu_one_time: "GpuOneTimeCost | None" = None,
    used_prices: list[str] | None = None,
    today: date | None = None,
) -> str:
    """The scenario, its assumptions (source, date, age), the result and the sensitivity, as markdown."""
    from legalft.costs import MODE_LABELS, format_money, gpus_billed, price_age, recommend

    today = today or date.today()
    s = estimate.scenario
    recommendation = recommend(estimate)
    lines = [
        "# Fine-tuned legal model: managed service or your own GPU",
        "",
        f"Prepared {today.isoformat()} with legalft's cost planner. Money in US dollars.",
        "",
        "## Recommendation",
        "",
        recommendation.text,
        "",
        "## Scenario",
        "",
        _row(["input", "value"]),
        _row(["---", "---"]),
        _row(["model, served on both sides", model or "(not named)"]),
        _row(["queries a day", f"{s.queries_per_day:,.0f}"]),
        _row(["tokens per query", f"{s.input_tokens_per_query:,.0f} in, {s.output_tokens_per_query:,.0f} out"]),
        _row(["when queries arrive", f"over {s.effective_load_hours:g} h a day on {s.demand_days:g} days a month"]),
        _row(["GPU rate", f"${s.gpu_hourly:g} per GPU-hour, at least {s.gpus} GPU(s) rented"]),
        _row(["GPU business hours", f"{s.business_hours_per_day:g} h × {s.working_days_per_month:g} working days"]),
    ]
    if s.custom_hours_per_month is not None:
        lines.append(_row(["GPU custom hours", f"{s.custom_hours_per_month:g} h a month"]))
    lines += ["", "## Per month", "", _row(["path", "monthly", "serves the demand", "break-even"]),
              _row(["---", "---:", "---", "---:"]),
              _row(["Managed service", format_money(estimate.managed_monthly), "yes", "—"])]
    for cost in estimate.gpu_modes.values():
        lines.append(_row([
            f"GPU, {cost.label} ({cost.gpus} GPUs × {cost.billed_hours_per_month:g} h)", format_money(cost.monthly),
            "yes" if cost.covers_demand else f"no: {cost.coverage:.0%} of it",
            "never" if cost.break_even_queries_per_day is None else f"{cost.break_even_queries_per_day:,} a day",
        ]))
    capacity = estimate.queries_per_gpu_per_day
    lines += ["", f"Capacity: a replica ({s.gpus_per_replica} GPU(s)) at {s.gpu_tokens_per_second or 0:,.0f} "
                  f"output tokens/s serves {capacity or 0:,.0f} queries a day; the load needs "
                  f"{estimate.gpus_needed} GPU(s), {gpus_billed(s)} billed."]
    if serving is not None and serving.fits:
        lines += ["", f"Serving plan: {serving.describe()}."]
        lines += [f"- {note[:1].upper()}{note[1:]}." for note in serving.notes]
    for cost in estimate.gpu_modes.values():
        if not cost.covers_demand:
            lines.append(f"- GPU, {cost.label} {cost.coverage_note}: not a like-for-like option.")
    if managed_training is not None or gpu_one_time is not None:
        lines += ["", "## One-time fine-tuning", ""]
        if managed_training is not None:
            lines.append(f"- Managed: {format_money(managed_training.cost)} ({managed_training.basis}).")
        if gpu_one_time is not None:
            lines.append(f"- Your own GPU: {format_money(gpu_one_time.cost)} ({gpu_one_time.basis}).")
    rows = sensitivity(s)
    lines += ["", "## Where the answer flips", "",
              "Each input scaled in turn (queries 0.1× to 10,000×, tokens and GPU price 0.25× to 4×), the others "
              "as above; throughput per replica held fixed.", "",
              _row(["input", "value", "managed", "cheapest GPU that serves it", "cheaper"]),
              _row(["---", "---:", "---:", "---:", "---"])]
    for row in rows:
        lines.append(_row([VARIABLES[row.variable], row.value, format_money(row.managed_monthly),
                           f"{format_money(row.gpu_monthly)} ({MODE_LABELS[row.gpu_mode]})",
                           "managed" if row.recommended == "managed" else f"GPU, {MODE_LABELS[row.recommended]}"]))
    changes = flips(rows)
    lines += ["", *(f"- {c}." for c in changes)] if changes else ["", "- The answer does not flip within these ranges."]
    keys = used_prices or list(prices.prices)
    lines += ["", "## Assumptions: prices and figures used", "",
              _row(["figure", "value", "source", "source date", "age"]), _row(["---", "---:", "---", "---", "---"])]
    for key in keys:
        price = prices[key]
        source = f"your figure (catalogue: {price.catalogue_value:g}, {price.source})" if price.overridden else price.source
        when = (price.overridden_at or "")[:10] if price.overridden else (price.source_date or "undated")
        lines.append(_row([price.label, f"{price.value:g} {price.unit}", source, when, price_age(price, today)]))
    lines += ["", "Figures marked as assumptions in the sources are estimates; replace them with your own "
                  "measurements in the app (Costs page, Override a price) before signing off.", ""]
    return "\n".join(lines)
