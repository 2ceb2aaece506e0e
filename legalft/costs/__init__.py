"""The cost planner: the managed service against a GPU of your own, side by side.

Prices come from a dated catalogue shipped as data (``data/prices.toml``), with the user's
overrides (kept in the ``price_overrides`` table under ``LEGALFT_HOME``) laid over it. Everything
else is pure arithmetic on a :class:`CostScenario`, so each number a page or the CLI shows can be
traced to an input or a price.

Model of the two paths:

- managed: per-token prices, so the monthly cost grows linearly with queries per day;
- own GPU: billed hours × hourly rate × GPUs, idle time included, whatever the load. The GPU
  count is the larger of what the user asks for and what the load needs, given one GPU's
  generation throughput over the hours a day in which the queries arrive.

Break-even is the smallest whole number of queries per day at which the GPU is strictly cheaper.
When a fully loaded GPU still costs more per query than the managed service, it never breaks
even: adding load only adds GPUs.
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from legalft.audit import action
from legalft.home import bundled_data_dir

log = logging.getLogger(__name__)

TOKENS_PER_MILLION = 1_000_000
HOURS_PER_DAY = 24

MODE_24_7 = "24_7"
MODE_BUSINESS_HOURS = "business_hours"
MODE_CUSTOM = "custom"
MODE_LABELS = {
    MODE_24_7: "24/7",
    MODE_BUSINESS_HOURS: "business hours",
    MODE_CUSTOM: "custom hours",
}

DEMAND_24_7 = "24_7"
DEMAND_BUSINESS_HOURS = "business_hours"
DEMAND_CUSTOM = "custom"


def demand_profile(
    kind: str,
    *,
    custom_hours_per_day: float = 8,
    custom_days_per_month: float = 30,
    business_hours_per_day: float = 8,
    working_days_per_month: float = 20,
    days_in_month: float = 30,
) -> tuple[float, float]:
    """(hours a day, days a month) in which queries arrive, for a demand profile.

    ``24_7``: around the clock every day; ``business_hours``: the business hours on working days;
    ``custom``: the given hours and days. Both paths then serve the same queries.
    """
    if kind == DEMAND_24_7:
        return float(HOURS_PER_DAY), float(days_in_month)
    if kind == DEMAND_BUSINESS_HOURS:
        return float(business_hours_per_day), float(working_days_per_month)
    if kind == DEMAND_CUSTOM:
        return float(custom_hours_per_day), float(custom_days_per_month)
    raise ValueError(f"unknown demand profile {kind!r}; expected 24_7, business_hours or custom")


# The reference decision scenario: a firm of 30 lawyers.
REFERENCE_SCENARIO = {
    "queries_per_day": 500,
    "input_tokens_per_query": 800,
    "output_tokens_per_query": 400,
}
REFERENCE_SCENARIO_LABEL = "Reference: 30 lawyers, 500 queries a day, 800 tokens in, 400 out"


def round_money(amount: float) -> float:
    """Dollars rounded half-up to cents (``round`` would round 0.125 down to 0.12)."""
    return float(Decimal(repr(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


# --- The price catalogue and overrides -----------------------------------------------------------


@dataclass(frozen=True)
class Price:
    """One catalogue price, possibly overridden by the user."""

    key: str
    """Stable identifier, used for overrides."""
    label: str
    kind: str
    """gpu_hourly, inference_input, inference_output, training, discount or throughput."""
    value: float
    """The value in use: the override when there is one, else the catalogue's."""
    unit: str
    source: str
    source_date: str
    """The date the source gives: "2026", "2026-05" or "2026-05-14"; empty when undated."""
    read_on: date
    """The day the figure was read into the catalogue."""
    note: str = ""
    model: str | None = None
    """For inference prices: the model the price is for."""
    max_params_billion: float | None = None
    """For training prices: the tier holds models strictly below this size."""
    gpu: str | None = None
    """For GPU prices: the GPU type (a key of ``data/serving.toml``'s [gpus]); None when not stated."""
    catalogue_value: float | None = None
    """The catalogue's own value (differs from ``value`` when overridden)."""
    overridden_at: str | None = None
    """When the user's override was saved (UTC ISO time); None when not overridden."""

    @property
    def overridden(self) -> bool:
        return self.overridden_at is not None


@dataclass(frozen=True)
class PriceCatalogue:
    """All prices by key, and which keys the planner uses by default."""

    prices: dict[str, Price]
    defaults: dict[str, str]
    currency: str = "USD"

    def __getitem__(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise KeyError(f"no price {key!r} in the catalogue; known: {', '.join(sorted(self.prices))}") from None

    def value(self, key: str) -> float:
        return self[key].value

    def default(self, role: str) -> Price:
        """The price the planner uses for ``role`` (gpu_hourly, training, gpu_tokens_per_second)."""
        return self[self.defaults[role]]

    def of_kind(self, kind: str) -> list[Price]:
        return [price for price in self.prices.values() if price.kind == kind]

    def managed_models(self) -> dict[str, tuple[Price, Price]]:
        """Models with both an input and an output price: model → (input price, output price)."""
        inputs = {p.model: p for p in self.of_kind("inference_input")}
        outputs = {p.model: p for p in self.of_kind("inference_output")}
        return {model: (inputs[model], outputs[model]) for model in inputs if model in outputs}

    def managed_prices(self, model: str | None = None) -> tuple[Price, Price]:
        """(input, output) price for ``model``, by default the catalogue's default managed model."""
        model = model or self.defaults["managed_model"]
        models = self.managed_models()
        if model not in models:
            raise KeyError(f"no managed inference prices for {model!r}; known: {', '.join(models)}")
        return models[model]


def catalogue_path() -> Path:
    return bundled_data_dir() / "prices.toml"


def load_catalogue(path: str | Path | None = None) -> PriceCatalogue:
    """The shipped catalogue, without overrides."""
    path = Path(path) if path else catalogue_path()
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    prices = {}
    for key, entry in data.get("prices", {}).items():
        value = float(entry["value"])
        prices[key] = Price(
            key=key,
            label=entry["label"],
            kind=entry["kind"],
            value=value,
            unit=entry["unit"],
            source=entry["source"],
            source_date=str(entry.get("source_date", "")),
            read_on=entry["read_on"],
            note=entry.get("note", ""),
            model=entry.get("model"),
            max_params_billion=entry.get("max_params_billion"),
            gpu=entry.get("gpu"),
            catalogue_value=value,
        )
    catalogue = PriceCatalogue(prices=prices, defaults=dict(data.get("defaults", {})), currency=data.get("currency", "USD"))
    for role, key in catalogue.defaults.items():
        if role != "managed_model" and key not in prices:
            raise ValueError(f"{path}: default {role} names {key!r}, which is not in [prices]")
    return catalogue


def list_price_overrides() -> dict[str, tuple[float, str]]:
    """Saved overrides: key → (value, updated_at)."""
    from legalft.db import connect

    with connect() as conn:
        rows = conn.execute("SELECT key, value, updated_at FROM price_overrides").fetchall()
    return {row["key"]: (float(row["value"]), row["updated_at"]) for row in rows}


@action("prices.override")
def set_price_override(key: str, value: float) -> None:
    """Save the user's own figure for a catalogue price (replacing any earlier override)."""
    catalogue = load_catalogue()
    catalogue[key]  # raises with the known keys when unknown
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"price {key!r} must be a number ≥ 0, got {value}")
    if catalogue[key].kind == "throughput" and value <= 0:
        raise ValueError(f"{key!r} is a throughput and must be > 0")
    if catalogue[key].kind == "discount" and value > 1:
        raise ValueError(f"{key!r} is a fraction between 0 and 1, got {value}")
    from legalft.db import connect

    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with connect() as conn:
        conn.execute(
            "INSERT INTO price_overrides(key, value, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            (key, float(value), now),
        )
    log.info("price override saved: %s = %s", key, value)


@action("prices.override")
def clear_price_override(key: str) -> bool:
    """Go back to the catalogue's figure; returns whether there was an override."""
    from legalft.db import connect

    with connect() as conn:
        cursor = conn.execute("DELETE FROM price_overrides WHERE key = ?", (key,))
    return cursor.rowcount > 0


def effective_prices(catalogue: PriceCatalogue | None = None) -> PriceCatalogue:
    """The catalogue with the user's saved overrides applied (and marked as such)."""
    catalogue = catalogue or load_catalogue()
    prices = dict(catalogue.prices)
    for key, (value, updated_at) in list_price_overrides().items():
        if key not in prices:
            log.warning("ignoring override for %r: no longer in the catalogue", key)
            continue
        prices[key] = replace(prices[key], value=value, overridden_at=updated_at)
    return replace(catalogue, prices=prices)


def _period_start(source_date: str) -> tuple[date, str] | None:
    """The first day a source date can mean, and its precision (year, month or day)."""
    text = source_date.strip()
    for pattern, precision in (("%Y-%m-%d", "day"), ("%Y-%m", "month"), ("%Y", "year")):
        try:
            return datetime.strptime(text, pattern).date(), precision
        except ValueError:
            continue
    return None


def _months_between(start: date, end: date) -> int:
    return max(0, (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day))


def price_age(price: Price, today: date | None = None) -> str:
    """How old a price is, as precisely as its source allows ("13 months", "up to 10 months")."""
    today = today or date.today()
    if price.overridden:
        saved = datetime.fromisoformat(price.overridden_at).date()
        return f"your figure, {(today - saved).days} days old"
    parsed = _period_start(price.source_date)
    if parsed is None:
        return f"source undated; read {(today - price.read_on).days} days ago"
    start, precision = parsed
    if precision == "day":
        return f"{(today - start).days} days"
    months = _months_between(start, today)
    if precision == "month":
        return f"{months} months"
    return f"up to {months} months"


def training_price_per_million(base_model: str, catalogue: PriceCatalogue | None = None) -> float | None:
    """USD per 1M training tokens on Token Factory for ``base_model``; None where no price is known.

    The catalogue prices fine-tuning by model size tier; the size is read from the model name
    ("Llama-3.1-8B" → 8B). A mixture-of-experts name gives its total size first
    ("Qwen3-30B-A3B" → 30B), which is the one the tier counts.
    """
    catalogue = catalogue or effective_prices()
    size = model_size_billion(base_model)
    if size is None:
        return None
    tiers = sorted(
        (p for p in catalogue.of_kind("training") if p.max_params_billion is not None),
        key=lambda p: p.max_params_billion,
    )
    for tier in tiers:
        if size < tier.max_params_billion:
            return tier.value
    return None


_SIZE = re.compile(r"(?<![A-Za-z0-9.])[A-Za-z]?(\d+(?:\.\d+)?)[Bb](?![A-Za-z0-9])")


def model_size_billion(model: str) -> float | None:
    """Parameters in billions as the model name states them ("8B", "E4B", "0.5B"); None if absent."""
    name = model.rsplit("/", 1)[-1]
    match = _SIZE.search(name.replace("_", "-"))
    return float(match.group(1)) if match else None


# --- The scenario and its monthly costs ---------------------------------------------------------


@dataclass(frozen=True)
class CostScenario:
    """A usage scenario and the prices it is costed at (all money in USD)."""

    queries_per_day: float
    """Queries the users send per day."""
    input_tokens_per_query: float
    """Prompt tokens per query (system prompt, question and any context)."""
    output_tokens_per_query: float
    """Answer tokens per query."""
    gpu_hourly: float
    """What one GPU costs per billed hour."""
    input_price_per_million: float | None = None
    """Managed service: USD per 1M input tokens (unused when a blended price is given)."""
    output_price_per_million: float | None = None
    """Managed service: USD per 1M output tokens (unused when a blended price is given)."""
    blended_price_per_million: float | None = None
    """Managed service: one USD price per 1M tokens, input and output alike."""
    days_per_month: float = 30
    """Days in the month: the days a 24/7 GPU is billed, and by default the days queries arrive."""
    gpus: int = 1
    """GPUs rented at least (more are added when the load needs them)."""
    gpus_per_replica: int = 1
    """GPUs one copy of the model needs (tensor parallel; see ``legalft.costs.serving.plan_serving``)."""
    business_hours_per_day: float = 8
    """Business-hours billing: hours a day the GPU runs."""
    working_days_per_month: float = 20
    """Business-hours billing: days a month the GPU runs."""
    custom_hours_per_month: float | None = None
    """Custom billing: GPU hours a month; None leaves this mode out."""
    gpu_tokens_per_second: float | None = None
    """Generation throughput of one replica (output tokens/s); None assumes one replica is always enough."""
    load_hours_per_day: float | None = None
    """Hours a day in which the day's queries arrive, for capacity; None means business hours."""
    demand_days_per_month: float | None = None
    """Days a month on which queries arrive (the managed side bills these); None means days_per_month."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("queries_per_day", "input_tokens_per_query", "output_tokens_per_query", "gpu_hourly"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be ≥ 0")
        if self.blended_price_per_million is None:
            if self.input_price_per_million is None or self.output_price_per_million is None:
                problems.append("give the managed service's input and output prices per 1M tokens, or one blended price")
        for name in ("input_price_per_million", "output_price_per_million", "blended_price_per_million"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name} must be ≥ 0")
        if not 0 < self.days_per_month <= 31:
            problems.append("days_per_month must be between 1 and 31")
        if self.gpus < 1 or int(self.gpus) != self.gpus:
            problems.append("gpus must be a whole number ≥ 1")
        if self.gpus_per_replica < 1 or int(self.gpus_per_replica) != self.gpus_per_replica:
            problems.append("gpus_per_replica must be a whole number ≥ 1")
        if not 0 < self.business_hours_per_day <= HOURS_PER_DAY:
            problems.append("business_hours_per_day must be between 0 and 24")
        if not 0 < self.working_days_per_month <= self.days_per_month:
            problems.append(
                f"working_days_per_month must be between 1 and days_per_month ({self.days_per_month:g})"
            )
        if self.custom_hours_per_month is not None and not (
            0 <= self.custom_hours_per_month <= self.days_per_month * HOURS_PER_DAY
        ):
            problems.append(
                f"custom_hours_per_month must be between 0 and days_per_month × 24 "
                f"({self.days_per_month * HOURS_PER_DAY:g})"
            )
        if self.gpu_tokens_per_second is not None and self.gpu_tokens_per_second <= 0:
            problems.append("gpu_tokens_per_second must be > 0 (leave it unset to ignore capacity)")
        if self.load_hours_per_day is not None and not 0 < self.load_hours_per_day <= HOURS_PER_DAY:
            problems.append("load_hours_per_day must be between 0 and 24")
        if self.demand_days_per_month is not None and not 0 < self.demand_days_per_month <= self.days_per_month:
            problems.append(f"demand_days_per_month must be between 1 and days_per_month ({self.days_per_month:g})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def uses_blended_price(self) -> bool:
        return self.blended_price_per_million is not None

    @property
    def demand_days(self) -> float:
        """Days a month on which queries arrive."""
        return self.demand_days_per_month if self.demand_days_per_month is not None else self.days_per_month

    @property
    def effective_load_hours(self) -> float:
        return self.load_hours_per_day if self.load_hours_per_day is not None else self.business_hours_per_day

    def modes(self) -> list[str]:
        """The GPU billing modes this scenario costs."""
        modes = [MODE_24_7, MODE_BUSINESS_HOURS]
        if self.custom_hours_per_month is not None:
            modes.append(MODE_CUSTOM)
        return modes


class ModelDoesNotFit(ValueError):
    """The model cannot be served on the chosen GPU type at all (one node is not enough)."""

    def __init__(self, plan: "ServingPlan"):
        super().__init__(plan.notes[0])
        self.plan = plan


def serving_plan(
    prices: PriceCatalogue | None = None,
    *,
    model: str | None = None,
    gpu_offer: str | None = None,
    precision: str = "bf16",
    context_tokens: float = 1200,
) -> "ServingPlan":
    """The serving plan for ``model`` on the GPU of the price ``gpu_offer`` (catalogue defaults).

    The base throughput is the catalogue's ``gpu_tokens_per_second`` with the user's override, so
    a measured figure of one's own replaces the cited one.
    """
    prices = prices or effective_prices()
    offer = prices[gpu_offer] if gpu_offer else prices.default("gpu_hourly")
    base = prices.default("gpu_tokens_per_second")
    label = "your own figure" if base.overridden else base.label
    plan = plan_serving(
        model or prices.defaults["managed_model"], offer.gpu or "h100", precision, int(round(context_tokens)),
        base_tokens_per_second=base.value, base_label=label,
        base_source_date=(base.overridden_at or "")[:10] if base.overridden else base.source_date,
        base_measured=base.overridden,
    )
    if offer.gpu is None:
        plan.notes.append(f"{offer.label} does not say which GPU it is: an H100 is assumed")
    return plan


def build_scenario(
    prices: PriceCatalogue | None = None,
    *,
    managed_model: str | None = None,
    gpu_offer: str | None = None,
    precision: str = "bf16",
    **fields: Any,
) -> CostScenario:
    """A scenario whose unset prices come from the catalogue (with the user's overrides).

    Unset means absent or None. Input and output prices are filled only when no blended
    price is given. Unless ``gpu_tokens_per_second`` is given, the GPU side is planned for the
    served model (``managed_model``: the same model on both sides) on the GPU of ``gpu_offer``:
    GPUs per replica and a replica's throughput (:func:`serving_plan`); a model that does not fit
    raises :class:`ModelDoesNotFit`.
    """
    prices = prices or effective_prices()
    values = {name: value for name, value in fields.items() if value is not None}
    if "gpu_hourly" not in values:
        values["gpu_hourly"] = (prices[gpu_offer] if gpu_offer else prices.default("gpu_hourly")).value
    needs_prices = "input_price_per_million" not in values or "output_price_per_million" not in values
    if "blended_price_per_million" not in values and needs_prices:
        input_price, output_price = prices.managed_prices(managed_model)
        values.setdefault("input_price_per_million", input_price.value)
        values.setdefault("output_price_per_million", output_price.value)
    if "gpu_tokens_per_second" not in values:
        context = values.get("input_tokens_per_query", 800) + values.get("output_tokens_per_query", 400)
        plan = serving_plan(prices, model=managed_model, gpu_offer=gpu_offer, precision=precision,
                            context_tokens=context)
        if not plan.fits:
            raise ModelDoesNotFit(plan)
        values["gpu_tokens_per_second"] = plan.tokens_per_second
        values.setdefault("gpus_per_replica", plan.tensor_parallel)
    return CostScenario(**values)


def managed_cost_per_query(scenario: CostScenario) -> float:
    """USD the managed service charges for one query."""
    if scenario.uses_blended_price:
        tokens = scenario.input_tokens_per_query + scenario.output_tokens_per_query
        return tokens * scenario.blended_price_per_million / TOKENS_PER_MILLION
    return (
        scenario.input_tokens_per_query * scenario.input_price_per_million
        + scenario.output_tokens_per_query * scenario.output_price_per_million
    ) / TOKENS_PER_MILLION


def managed_monthly_cost(scenario: CostScenario, queries_per_day: float | None = None) -> float:
    """Managed service per month: queries a day × days a month × cost per query."""
    queries = scenario.queries_per_day if queries_per_day is None else queries_per_day
    return queries * scenario.demand_days * managed_cost_per_query(scenario)


def billed_hours_per_month(scenario: CostScenario, mode: str) -> float:
    """GPU hours billed per month, per GPU, in a billing mode (idle time included)."""
    if mode == MODE_24_7:
        return scenario.days_per_month * HOURS_PER_DAY
    if mode == MODE_BUSINESS_HOURS:
        return scenario.business_hours_per_day * scenario.working_days_per_month
    if mode == MODE_CUSTOM:
        if scenario.custom_hours_per_month is None:
            raise ValueError("this scenario has no custom hours per month")
        return scenario.custom_hours_per_month
    raise ValueError(f"unknown billing mode {mode!r}; expected one of {', '.join(MODE_LABELS)}")


def queries_per_gpu_per_day(scenario: CostScenario) -> float | None:
    """Queries one replica (one GPU, or ``gpus_per_replica`` with tensor parallel) answers in a day.

    None when no throughput is given (no limit). Generation is the bottleneck, so capacity =
    tokens/s × the hours a day the queries arrive × 3600 / output tokens.
    """
    if scenario.gpu_tokens_per_second is None:
        return None
    if scenario.output_tokens_per_query <= 0:
        return math.inf
    seconds = scenario.effective_load_hours * 3600
    return scenario.gpu_tokens_per_second * seconds / scenario.output_tokens_per_query


def replicas_needed(scenario: CostScenario, queries_per_day: float | None = None) -> int:
    """Copies of the model the load needs (at least one)."""
    queries = scenario.queries_per_day if queries_per_day is None else queries_per_day
    capacity = queries_per_gpu_per_day(scenario)
    if capacity is None or queries <= 0:
        return 1
    # Round before ceil so 2.0000000001 replicas from float error stays 2.
    return max(1, math.ceil(round(queries / capacity, 9)))


def gpus_needed(scenario: CostScenario, queries_per_day: float | None = None) -> int:
    """GPUs the load needs: replicas × GPUs per replica."""
    return replicas_needed(scenario, queries_per_day) * scenario.gpus_per_replica


def _min_replicas(scenario: CostScenario) -> int:
    return math.ceil(scenario.gpus / scenario.gpus_per_replica)


def gpus_billed(scenario: CostScenario, queries_per_day: float | None = None) -> int:
    """GPUs paid for: what the user rents (in whole replicas), raised to what the load needs."""
    replicas = max(_min_replicas(scenario), replicas_needed(scenario, queries_per_day))
    return replicas * scenario.gpus_per_replica


def gpu_monthly_cost(scenario: CostScenario, mode: str, queries_per_day: float | None = None) -> float:
    """Own GPU per month in a billing mode: billed hours × hourly rate × GPUs billed."""
    return billed_hours_per_month(scenario, mode) * scenario.gpu_hourly * gpus_billed(scenario, queries_per_day)


def break_even_queries_per_day(scenario: CostScenario, mode: str) -> int | None:
    """The fewest whole queries a day at which the GPU is strictly cheaper; None if never.

    With n replicas the GPU costs n × G a month (G: one replica's GPUs) while the managed service
    costs q × m, so the GPU wins once q > n × G / m. The load fits n replicas only up to
    n × capacity, so a crossing exists exactly when G / m is below one replica's capacity: when a
    fully loaded replica is cheaper per query.
    """
    per_query_month = scenario.demand_days * managed_cost_per_query(scenario)  # m
    per_gpu_month = billed_hours_per_month(scenario, mode) * scenario.gpu_hourly * scenario.gpus_per_replica  # G
    if per_query_month <= 0:
        return None  # a free managed service is never beaten
    # Rounded so that prices which tie exactly (2124 / 0.0012) are not split by float error.
    per_gpu_queries = round(per_gpu_month / per_query_month, 6)  # G / m
    capacity = queries_per_gpu_per_day(scenario)
    floor = _min_replicas(scenario)
    if capacity is None:
        return math.floor(round(floor * per_gpu_queries, 6)) + 1
    if per_gpu_queries >= capacity:
        return None
    # Scan the replica counts from the minimum rented: the crossing is in the first band, unless
    # whole-query rounding pushes it into the next.
    for n in range(floor, floor + 3):
        lower = 0 if n == floor else (n - 1) * capacity
        first = max(math.floor(round(n * per_gpu_queries, 6)), math.floor(lower)) + 1
        if first <= n * capacity:
            return first
    return None


def demand_coverage(scenario: CostScenario, mode: str) -> tuple[float, str]:
    """Share of the demand's hours a billing mode runs for (1.0 = covers it), and why not.

    Queries arrive over ``effective_load_hours`` a day on ``demand_days`` days, and the managed
    service answers all of them; a GPU that is off for some of those hours cannot, so it is not
    a like-for-like alternative and must not be shown as the cheaper one.
    """
    load, days = scenario.effective_load_hours, scenario.demand_days
    demand_hours = load * days
    if mode == MODE_24_7 or demand_hours <= 0:
        return 1.0, ""
    if mode == MODE_BUSINESS_HOURS:
        hours, run_days = scenario.business_hours_per_day, scenario.working_days_per_month
        share = min(hours, load) * min(run_days, days) / demand_hours
        gaps = []
        if hours < load:
            gaps.append(f"queries arrive over {load:g} h a day, it runs {hours:g} h")
        if run_days < days:
            gaps.append(f"queries arrive on {days:g} days a month, it runs on {run_days:g}")
    else:
        hours = billed_hours_per_month(scenario, mode)
        share = min(1.0, hours / demand_hours)
        gaps = [f"queries arrive over {demand_hours:g} h a month ({load:g} h × {days:g} days), it runs {hours:g} h"]
    if share >= 1 - 1e-9:
        return 1.0, ""
    return share, f"does not cover the demand: {'; '.join(gaps)} (it could answer at most {share:.0%} of the queries)"


@dataclass(frozen=True)
class GpuModeCost:
    """The own-GPU path in one billing mode."""

    mode: str
    label: str
    billed_hours_per_month: float
    """Per GPU."""
    gpus: int
    """GPUs billed."""
    monthly: float
    """USD a month, unrounded."""
    break_even_queries_per_day: int | None
    """Fewest queries a day at which this mode is cheaper than managed; None if never."""
    coverage: float = 1.0
    """Share of the demand's hours this mode runs for; below 1 it cannot serve every query."""
    coverage_note: str = ""
    """Why it does not cover the demand ("" when it does)."""

    @property
    def covers_demand(self) -> bool:
        return self.coverage >= 1


@dataclass(frozen=True)
class CostEstimate:
    """A scenario's monthly costs on both paths, with every intermediate figure."""

    scenario: CostScenario
    daily_input_tokens: float
    daily_output_tokens: float
    managed_cost_per_query: float
    managed_monthly: float
    queries_per_gpu_per_day: float | None
    gpus_needed: int
    gpu_modes: dict[str, GpuModeCost] = field(default_factory=dict)

    @property
    def daily_tokens(self) -> float:
        return self.daily_input_tokens + self.daily_output_tokens

    @property
    def monthly_tokens(self) -> float:
        return self.daily_tokens * self.scenario.demand_days

    @property
    def monthly_input_tokens(self) -> float:
        return self.daily_input_tokens * self.scenario.demand_days

    @property
    def monthly_output_tokens(self) -> float:
        return self.daily_output_tokens * self.scenario.demand_days

    def cheapest_gpu(self) -> GpuModeCost:
        """The cheapest billing mode that serves the whole demand (24/7 always does)."""
        covering = [cost for cost in self.gpu_modes.values() if cost.covers_demand]
        return min(covering or self.gpu_modes.values(), key=lambda cost: cost.monthly)


def estimate_monthly_cost(scenario: CostScenario) -> CostEstimate:
    """Monthly tokens and costs on both paths, GPU count and break-even for each billing mode."""
    gpu_modes = {}
    for mode in scenario.modes():
        coverage, note = demand_coverage(scenario, mode)
        gpu_modes[mode] = GpuModeCost(
            mode=mode,
            label=MODE_LABELS[mode],
            billed_hours_per_month=billed_hours_per_month(scenario, mode),
            gpus=gpus_billed(scenario),
            monthly=gpu_monthly_cost(scenario, mode),
            break_even_queries_per_day=break_even_queries_per_day(scenario, mode) if coverage >= 1 else None,
            coverage=coverage,
            coverage_note=note,
        )
    return CostEstimate(
        scenario=scenario,
        daily_input_tokens=scenario.queries_per_day * scenario.input_tokens_per_query,
        daily_output_tokens=scenario.queries_per_day * scenario.output_tokens_per_query,
        managed_cost_per_query=managed_cost_per_query(scenario),
        managed_monthly=managed_monthly_cost(scenario),
        queries_per_gpu_per_day=queries_per_gpu_per_day(scenario),
        gpus_needed=gpus_needed(scenario),
        gpu_modes=gpu_modes,
    )


@dataclass(frozen=True)
class Recommendation:
    """Which path is cheaper for the scenario, and why, in one line."""

    path: str
    """"managed" or a GPU billing mode."""
    text: str


def format_money(amount: float | None) -> str:
    """Dollars for display: "$1,234.57", "< $0.01" for a positive amount under a cent, "−$3.00"."""
    if amount is None:
        return "no price"
    if 0 < abs(amount) < 0.01:
        return "< $0.01" if amount > 0 else "> −$0.01"
    sign = "−" if amount < 0 else ""
    return f"{sign}${round_money(abs(amount)):,.2f}"


def _money(amount: float) -> str:
    return format_money(amount)


def recommend(estimate: CostEstimate) -> Recommendation:
    """The cheaper path per month for this scenario, with the figures that decide it."""
    best_gpu = estimate.cheapest_gpu()
    managed = estimate.managed_monthly
    queries = estimate.scenario.queries_per_day
    left_out = [cost for cost in estimate.gpu_modes.values() if not cost.covers_demand]
    aside = "".join(f" GPU, {cost.label} is left out: it {cost.coverage_note}." for cost in left_out)
    if managed <= best_gpu.monthly:
        if best_gpu.break_even_queries_per_day is None:
            why = "a GPU never breaks even at these prices: even fully loaded it costs more per query"
        elif queries >= best_gpu.break_even_queries_per_day:
            # Past the first crossing, yet the load just spilled onto one more GPU.
            why = (
                f"past the break-even of {best_gpu.break_even_queries_per_day:,} queries a day, but this load "
                f"needs {best_gpu.gpus} GPUs"
            )
        else:
            why = (
                f"a GPU billed {best_gpu.label} only breaks even from "
                f"{best_gpu.break_even_queries_per_day:,} queries a day (you have {queries:,.0f})"
            )
        return Recommendation(
            "managed",
            f"Use the managed service: {_money(managed)} a month against {_money(best_gpu.monthly)} "
            f"for the cheapest GPU option that serves the same queries ({best_gpu.label}); {why}.{aside}",
        )
    gpus = f"{best_gpu.gpus} GPUs" if best_gpu.gpus > 1 else "one GPU"
    return Recommendation(
        best_gpu.mode,
        f"Run your own GPU ({gpus}, billed {best_gpu.label}): {_money(best_gpu.monthly)} a month against "
        f"{_money(managed)} for the managed service; at {queries:,.0f} queries a day you are past the "
        f"break-even of {best_gpu.break_even_queries_per_day:,}.{aside}",
    )


def cost_curve(scenario: CostScenario, queries: list[float]) -> dict[str, list[float]]:
    """Monthly cost at each queries-per-day value: "managed" and one series per GPU mode."""
    series = {"managed": [managed_monthly_cost(scenario, q) for q in queries]}
    for mode in scenario.modes():
        series[mode] = [gpu_monthly_cost(scenario, mode, q) for q in queries]
    return series


def curve_points(low: float, high: float, count: int = 200) -> list[float]:
    """Queries-per-day values spread evenly on a log scale from ``low`` to ``high``."""
    low, high = max(low, 1.0), max(high, low * 10)
    step = (math.log10(high) - math.log10(low)) / (count - 1)
    return [10 ** (math.log10(low) + i * step) for i in range(count)]


def scenario_summary(estimate: CostEstimate) -> dict[str, Any]:
    """The estimate as a flat dict for JSON: tokens, money rounded to cents, break-evens."""
    scenario = estimate.scenario
    out: dict[str, Any] = {
        "queries_per_day": scenario.queries_per_day,
        "input_tokens_per_query": scenario.input_tokens_per_query,
        "output_tokens_per_query": scenario.output_tokens_per_query,
        "days_per_month": scenario.days_per_month,
        "demand_days_per_month": scenario.demand_days,
        "daily_input_tokens": estimate.daily_input_tokens,
        "daily_output_tokens": estimate.daily_output_tokens,
        "daily_tokens": estimate.daily_tokens,
        "monthly_tokens": estimate.monthly_tokens,
        "managed_input_price_per_million": None if scenario.uses_blended_price else scenario.input_price_per_million,
        "managed_output_price_per_million": None if scenario.uses_blended_price else scenario.output_price_per_million,
        "managed_blended_price_per_million": scenario.blended_price_per_million,
        "managed_cost_per_query": estimate.managed_cost_per_query,
        "managed_monthly": round_money(estimate.managed_monthly),
        "gpu_hourly": scenario.gpu_hourly,
        "gpu_tokens_per_second": scenario.gpu_tokens_per_second,
        "load_hours_per_day": scenario.effective_load_hours,
        "queries_per_gpu_per_day": (
            None if estimate.queries_per_gpu_per_day is None else math.floor(estimate.queries_per_gpu_per_day)
        ),
        "gpus_per_replica": scenario.gpus_per_replica,
        "replicas_needed": replicas_needed(scenario),
        "gpus_needed": estimate.gpus_needed,
        "gpus_billed": gpus_billed(scenario),
    }
    for mode, cost in estimate.gpu_modes.items():
        out[f"billed_hours_per_month_{mode}"] = cost.billed_hours_per_month
        out[f"cloud_monthly_{mode}"] = round_money(cost.monthly)
        out[f"break_even_queries_per_day_{mode}"] = cost.break_even_queries_per_day
        out[f"covers_demand_{mode}"] = cost.covers_demand
        out[f"coverage_{mode}"] = round(cost.coverage, 4)
        out[f"coverage_note_{mode}"] = cost.coverage_note
    recommendation = recommend(estimate)
    out["recommended_path"] = recommendation.path
    out["recommendation"] = recommendation.text
    return out


# --- One-time fine-tuning costs -----------------------------------------------------------------


def estimate_managed_training_cost(dataset_tokens: int, epochs: int, price_per_million: float) -> float:
    """Token Factory fine-tuning in USD (unrounded): dataset tokens × epochs × price per 1M."""
    if dataset_tokens < 0 or epochs < 0 or price_per_million < 0:
        raise ValueError("dataset tokens, epochs and price must be ≥ 0")
    return dataset_tokens * epochs * price_per_million / TOKENS_PER_MILLION


def estimate_training_minutes(trained_tokens: float, tokens_per_second: float) -> float:
    """Minutes of training at a measured throughput (training tokens per second)."""
    if tokens_per_second <= 0:
        raise ValueError("training throughput must be > 0 tokens per second")
    return trained_tokens / tokens_per_second / 60


@dataclass(frozen=True)
class GpuMinutes:
    """Billed GPU minutes to a first answer on your own GPU (reference run: 47 minutes)."""

    setup: float = 25
    """Create the VM, install drivers and packages, download the base model."""
    training: float = 10
    """LoRA training."""
    merge: float = 8
    """Merge the adapter into full weights (0 when vLLM serves the adapter directly)."""
    serve_start: float = 4
    """Start the model server."""

    def __post_init__(self) -> None:
        negative = [name for name in ("setup", "training", "merge", "serve_start") if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"minutes must be ≥ 0: {', '.join(negative)}")

    @property
    def total(self) -> float:
        return self.setup + self.training + self.merge + self.serve_start


@dataclass(frozen=True)
class GpuOneTimeCost:
    """The GPU path's one-time cost: billed minutes × hourly rate × GPUs."""

    minutes: GpuMinutes
    hourly_rate: float
    gpus: int
    cost: float
    """USD, unrounded."""
    basis: str = ""
    """Where the minutes and the rate come from, in one line."""


def estimate_gpu_one_time_cost(hourly_rate: float, minutes: GpuMinutes | None = None, gpus: int = 1) -> GpuOneTimeCost:
    """Setup + training + merge + server start, billed per minute at ``hourly_rate`` per GPU."""
    minutes = minutes or GpuMinutes()
    if hourly_rate < 0 or gpus < 1:
        raise ValueError("hourly rate must be ≥ 0 and GPUs ≥ 1")
    return GpuOneTimeCost(minutes=minutes, hourly_rate=hourly_rate, gpus=gpus, cost=minutes.total / 60 * hourly_rate * gpus)


def one_time_gpu_cost(
    prices: PriceCatalogue | None = None,
    *,
    hourly_rate: float | None = None,
    minutes: GpuMinutes | None = None,
    sequence_tokens: float | None = None,
    train_tokens_per_second: float | None = None,
    gpus: int = 1,
) -> GpuOneTimeCost:
    """THE one-time GPU cost the Train page, the Costs page and the CLI show.

    Minutes default to the reference run's 25 + 10 + 8 + 4 = 47. With a measured training
    throughput (tokens/s, as a trainer counts them) and the dataset's ``sequence_tokens`` (template
    + text over all epochs, :attr:`TrainedTokens.sequence_total`), the training minutes are
    estimated from them instead. The rate defaults to the catalogue's GPU price (with overrides).
    """
    minutes = minutes or GpuMinutes()
    how = "reference run's minutes"
    if train_tokens_per_second is not None and sequence_tokens is not None:
        minutes = replace(minutes, training=estimate_training_minutes(sequence_tokens, train_tokens_per_second))
        how = f"training from {sequence_tokens:,.0f} tokens at {train_tokens_per_second:,.0f} tokens/s"
    if hourly_rate is None:
        price = (prices or effective_prices()).default("gpu_hourly")
        hourly_rate, rate_label = price.value, price.label
    else:
        rate_label = "your rate"
    cost = estimate_gpu_one_time_cost(hourly_rate, minutes, gpus)
    basis = (
        f"{minutes.setup:g} setup + {minutes.training:.1f} training + {minutes.merge:g} merge + "
        f"{minutes.serve_start:g} server start = {minutes.total:.1f} min ({how}) × ${hourly_rate:g}/GPU-hour "
        f"({rate_label})" + (f" × {gpus} GPUs" if gpus > 1 else "")
    )
    return replace(cost, basis=basis)


def launch_gpu_cost(target: Any = None, prices: PriceCatalogue | None = None) -> GpuOneTimeCost:
    """The one-time GPU cost of a Cloud-path launch on ``target`` (a ``legalft.targets.Target``, None:
    this machine): the target's rate when it has one (a SkyPilot cluster's per GPU-hour, a VM's that
    the user gave), else the catalogue's GPU price; × ``target.billed_gpus``. What the Train page
    shows, the CLI prints and the GPU budget counts for the launch."""
    rate = getattr(target, "hourly_rate", None)  # only the remote targets have one
    gpus = target.billed_gpus if target is not None else 1
    return one_time_gpu_cost(prices or effective_prices(), hourly_rate=rate, gpus=gpus)


@dataclass(frozen=True)
class ManagedTrainingCost:
    """The managed path's one-time cost: trained tokens as the service counts them × price."""

    model: str
    trained_tokens: int
    price_per_million: float | None
    """None where the catalogue has no fine-tuning price for the model's size."""
    cost: float | None
    """USD, unrounded; None without a price."""
    basis: str


def estimate_managed_training(
    tokens: "TrainedTokens", prices: PriceCatalogue | None = None, price_per_million: float | None = None
) -> ManagedTrainingCost:
    """THE managed fine-tuning cost: :func:`estimate_trained_tokens`'s total × price per 1M."""
    price = price_per_million if price_per_million is not None else training_price_per_million(tokens.model, prices)
    cost = None if price is None else estimate_managed_training_cost(tokens.total, 1, price)
    basis = (
        f"{tokens.total:,} trained tokens ({tokens.per_epoch:,} per epoch × {tokens.epochs:g} epochs; "
        f"{tokens.basis})" + ("" if price is None else f" × ${price:g} per 1M")
    )
    return ManagedTrainingCost(model=tokens.model, trained_tokens=tokens.total, price_per_million=price,
                               cost=cost, basis=basis)


@dataclass(frozen=True)
class FirstMonth:
    """One-time fine-tuning plus the first month of serving, per path."""

    managed: float
    gpu: dict[str, float]
    """By billing mode."""


def first_month_totals(estimate: CostEstimate, managed_training: float, gpu_one_time: float) -> FirstMonth:
    """First-month total for each path: its one-time cost plus one month of serving."""
    return FirstMonth(
        managed=managed_training + estimate.managed_monthly,
        gpu={mode: gpu_one_time + cost.monthly for mode, cost in estimate.gpu_modes.items()},
    )


# The package's public names, imported after what they use from this module.
from legalft.costs.actuals import CPU_BASIS, JobCost, MeasuredRun, job_cost, measured_runs  # noqa: F401
from legalft.costs.report import SensitivityRow, flips, scenario_report, sensitivity  # noqa: F401
from legalft.costs.serving import ServingPlan, plan_serving
from legalft.costs.tokens import (  # noqa: F401
    DEFAULT_TRAINING_MODEL,
    TrainedTokens,
    estimate_trained_tokens,
    load_token_rules,
)
