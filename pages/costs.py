"""Costs: the managed service against a GPU of your own, for your usage, with the prices shown."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from legalft import costs
from legalft.errors import AccessDenied, render_error
from legalft.home import bundled_data_dir

REFERENCE_FILE = bundled_data_dir() / "legislation_qa_clean.jsonl"
PRICING_PER_TOKEN = "Per token: the model's input and output prices"
PRICING_BLENDED = "One blended price per 1M tokens"
COLOURS = {"managed": "#1f77b4", "24_7": "#d62728", "business_hours": "#ff7f0e", "custom": "#9467bd"}


def money(amount: float) -> str:
    return f"${costs.round_money(amount):,.2f}"


def number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def apply_reference_preset() -> None:
    """Reset the scenario form to the reference scenario at catalogue prices."""
    prices = costs.effective_prices()
    state = st.session_state
    state["costs_queries"] = float(costs.REFERENCE_SCENARIO["queries_per_day"])
    state["costs_input_tokens"] = float(costs.REFERENCE_SCENARIO["input_tokens_per_query"])
    state["costs_output_tokens"] = float(costs.REFERENCE_SCENARIO["output_tokens_per_query"])
    state["costs_days"] = 30.0
    state["costs_gpu_offer"] = prices.defaults["gpu_hourly"]
    state["costs_gpus"] = 1
    state["costs_business_hours"] = 8.0
    state["costs_working_days"] = 20.0
    state["costs_custom_hours"] = 0.0
    state["costs_tps"] = float(prices.default("gpu_tokens_per_second").value)
    state["costs_load_hours"] = 8.0
    state["costs_pricing"] = PRICING_PER_TOKEN
    state["costs_model"] = prices.defaults["managed_model"]
    state["costs_blended"] = 0.05


def save_override() -> None:
    key = st.session_state["costs_override_key"]
    value = st.session_state[f"costs_override_value_{key}"]
    try:
        costs.set_price_override(key, value)
        st.session_state["costs_override_message"] = ("success", f"Saved your figure for {key}: {value:g}.")
    except (KeyError, ValueError) as exc:
        st.session_state["costs_override_message"] = ("error", str(exc).strip("'\""))
    except AccessDenied as exc:  # a viewer or trainer: prices are an admin's
        st.session_state["costs_override_message"] = ("error", render_error(exc))


def clear_override() -> None:
    key = st.session_state["costs_override_key"]
    try:
        cleared = costs.clear_price_override(key)
    except AccessDenied as exc:
        st.session_state["costs_override_message"] = ("error", render_error(exc))
        return
    text = f"{key} is back to the catalogue value." if cleared else f"{key} had no override."
    st.session_state["costs_override_message"] = ("info", text)


@st.cache_data(show_spinner="Counting tokens…")
def dataset_tokens(path: str, modified: float) -> tuple[int, bool]:
    """Token count of a dataset (cached per file version)."""
    from legalft.data.stats import compute_stats

    stats = compute_stats(path)
    return stats.total_tokens, stats.tokens_are_approximate


def dataset_choices() -> dict[str, tuple[str, str]]:
    """Datasets to cost: registered ones (newest first), then the bundled reference set."""
    choices: dict[str, tuple[str, str]] = {}
    try:
        from legalft.data.registry import list_datasets

        for dataset in list_datasets():
            choices[f"id:{dataset.id}"] = (f"{dataset.name} ({dataset.kept_records:,} records)", dataset.path)
    except ImportError:
        pass  # the dataset registry is optional for this page
    choices["reference"] = ("Bundled reference Q&A set", str(REFERENCE_FILE))
    return choices


if "costs_queries" not in st.session_state:
    apply_reference_preset()
prices = costs.effective_prices()
gpu_offers = {p.key: p for p in prices.of_kind("gpu_hourly")}
managed_models = prices.managed_models()

st.title("Costs")
st.caption(
    "For your usage: is the managed service (Nebius Token Factory, per token) or a GPU of your own "
    "(per hour, idle time included) cheaper, and when does that flip? Every figure below comes from "
    "an input on this page or a price in the table at the bottom."
)

# --- Scenario ---------------------------------------------------------------------------------

st.button(costs.REFERENCE_SCENARIO_LABEL, on_click=apply_reference_preset, key="costs_preset", icon=":material/balance:")
with st.form("costs_scenario"):
    st.markdown("**Usage**")
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Queries per day", min_value=0.0, step=50.0, format="%.0f", key="costs_queries")
    c2.number_input("Input tokens per query", min_value=0.0, step=50.0, format="%.0f", key="costs_input_tokens")
    c3.number_input("Output tokens per query", min_value=0.0, step=50.0, format="%.0f", key="costs_output_tokens")
    c4.number_input("Days per month", min_value=1.0, max_value=31.0, step=1.0, format="%.0f", key="costs_days")
    st.markdown("**Your own GPU**")
    g1, g2, g3, g4 = st.columns(4)
    g1.selectbox(
        "GPU offer",
        list(gpu_offers),
        format_func=lambda key: f"{gpu_offers[key].label}: ${gpu_offers[key].value:g}/h",
        key="costs_gpu_offer",
        help="Rates come from the price table below; override one there to use your own.",
    )
    g2.number_input("GPUs rented (at least)", min_value=1, step=1, key="costs_gpus")
    g3.number_input("Business hours per day", min_value=0.5, max_value=24.0, step=0.5, key="costs_business_hours")
    g4.number_input("Working days per month", min_value=1.0, max_value=31.0, step=1.0, format="%.0f", key="costs_working_days")
    h1, h2, h3 = st.columns(3)
    h1.number_input(
        "Custom hours per month (0 = leave out)", min_value=0.0, max_value=744.0, step=10.0, key="costs_custom_hours"
    )
    tps_price = prices.default("gpu_tokens_per_second")
    h2.number_input(
        "Generation throughput per GPU (tokens/s)",
        min_value=1.0,
        step=100.0,
        format="%.0f",
        key="costs_tps",
        help=f"Default {tps_price.value:,.0f}: {tps_price.source} ({tps_price.source_date}). {tps_price.note}",
    )
    h3.number_input(
        "Queries arrive over (hours a day)",
        min_value=0.5,
        max_value=24.0,
        step=0.5,
        key="costs_load_hours",
        help="One GPU's daily capacity is its throughput over these hours.",
    )
    st.markdown("**Managed service**")
    m1, m2, m3 = st.columns(3)
    m1.radio("Pricing", [PRICING_PER_TOKEN, PRICING_BLENDED], key="costs_pricing")
    m2.selectbox(
        "Model prices",
        list(managed_models),
        format_func=lambda model: (
            f"{model}: ${managed_models[model][0].value:g} in / ${managed_models[model][1].value:g} out per 1M"
        ),
        key="costs_model",
    )
    m3.number_input("Blended price (USD per 1M tokens)", min_value=0.0, step=0.01, format="%.4f", key="costs_blended")
    st.form_submit_button("Update", type="primary", key="costs_submit")

state = st.session_state
gpu_price = gpu_offers.get(state["costs_gpu_offer"], prices.default("gpu_hourly"))
input_price, output_price = managed_models.get(state["costs_model"], prices.managed_prices())
blended = state["costs_pricing"] == PRICING_BLENDED
try:
    scenario = costs.CostScenario(
        queries_per_day=state["costs_queries"],
        input_tokens_per_query=state["costs_input_tokens"],
        output_tokens_per_query=state["costs_output_tokens"],
        days_per_month=state["costs_days"],
        gpu_hourly=gpu_price.value,
        gpus=int(state["costs_gpus"]),
        business_hours_per_day=state["costs_business_hours"],
        working_days_per_month=state["costs_working_days"],
        custom_hours_per_month=state["costs_custom_hours"] or None,
        input_price_per_million=None if blended else input_price.value,
        output_price_per_million=None if blended else output_price.value,
        blended_price_per_million=state["costs_blended"] if blended else None,
        gpu_tokens_per_second=state["costs_tps"],
        load_hours_per_day=state["costs_load_hours"],
    )
except ValueError as exc:
    st.error(f"This scenario does not add up: {exc}.")
    st.stop()

estimate = costs.estimate_monthly_cost(scenario)
recommendation = costs.recommend(estimate)

# --- Monthly result ---------------------------------------------------------------------------

st.subheader("Per month")
columns = st.columns(1 + len(estimate.gpu_modes))
columns[0].metric(
    "Managed service",
    money(estimate.managed_monthly),
    help=(
        f"queries a day × days a month × cost per query = {number(scenario.queries_per_day)} × "
        f"{number(scenario.days_per_month)} × ${estimate.managed_cost_per_query:.6f}"
    ),
    border=True,
)
for column, cost in zip(columns[1:], estimate.gpu_modes.values()):
    difference = cost.monthly - estimate.managed_monthly
    column.metric(
        f"GPU, {cost.label}",
        money(cost.monthly),
        delta=f"{'+' if difference >= 0 else '−'}{money(abs(difference))} vs managed",
        delta_color="inverse",
        help=(
            f"billed hours × hourly rate × GPUs = {number(cost.billed_hours_per_month)} h × "
            f"${scenario.gpu_hourly:g} × {cost.gpus}"
        ),
        border=True,
    )
(st.success if recommendation.path == "managed" else st.warning)(recommendation.text, icon=":material/lightbulb:")

capacity = estimate.queries_per_gpu_per_day
capacity_text = number(math.floor(capacity)) if math.isfinite(capacity) else "unlimited"
st.markdown(
    f"**Capacity:** one GPU at {number(scenario.gpu_tokens_per_second)} tokens/s over "
    f"{number(scenario.effective_load_hours)} h serves {capacity_text} queries a day; "
    f"{number(scenario.queries_per_day)} a day need **{estimate.gpus_needed} GPU{'s' if estimate.gpus_needed > 1 else ''}**"
    + (
        f", so {costs.gpus_billed(scenario)} are billed."
        if costs.gpus_billed(scenario) > 1
        else "."
    )
)

with st.expander("How these figures are worked out", expanded=False):
    if blended:
        per_query = (
            f"({number(scenario.input_tokens_per_query)} + {number(scenario.output_tokens_per_query)}) × "
            f"${scenario.blended_price_per_million:g} / 1M"
        )
    else:
        per_query = (
            f"({number(scenario.input_tokens_per_query)} × ${scenario.input_price_per_million:g} + "
            f"{number(scenario.output_tokens_per_query)} × ${scenario.output_price_per_million:g}) / 1M"
        )
    lines = [
        f"Daily tokens = {number(scenario.queries_per_day)} × ({number(scenario.input_tokens_per_query)} + "
        f"{number(scenario.output_tokens_per_query)}) = **{number(estimate.daily_tokens)}**",
        f"Monthly tokens = {number(estimate.daily_tokens)} × {number(scenario.days_per_month)} days = "
        f"**{number(estimate.monthly_tokens)}**",
        f"Managed cost per query = {per_query} = **${estimate.managed_cost_per_query:.6f}**",
        f"Managed per month = {number(scenario.queries_per_day)} × {number(scenario.days_per_month)} × "
        f"${estimate.managed_cost_per_query:.6f} = **{money(estimate.managed_monthly)}**",
        f"One GPU's capacity = {number(scenario.gpu_tokens_per_second)} tokens/s × "
        f"{number(scenario.effective_load_hours)} h × 3600 / {number(scenario.output_tokens_per_query)} tokens = "
        f"**{capacity_text} queries a day**",
        f"GPUs billed = max({scenario.gpus} rented, ⌈{number(scenario.queries_per_day)} / "
        f"{capacity_text}⌉) = **{costs.gpus_billed(scenario)}**",
    ]
    for cost in estimate.gpu_modes.values():
        lines.append(
            f"GPU {cost.label} = {number(cost.billed_hours_per_month)} h × ${scenario.gpu_hourly:g} × {cost.gpus} = "
            f"**{money(cost.monthly)}**"
        )
        per_gpu = cost.billed_hours_per_month * scenario.gpu_hourly
        per_query_month = scenario.days_per_month * estimate.managed_cost_per_query
        if cost.break_even_queries_per_day is None:
            lines.append(
                f"Break-even, {cost.label}: **never**: a GPU costs {money(per_gpu)} for at most "
                f"{capacity_text} queries a day, the managed service "
                f"{money(per_query_month * capacity)} for as many"
            )
        else:
            lines.append(
                f"Break-even, {cost.label}: {scenario.gpus} × {money(per_gpu)} / "
                f"(${per_query_month:.6f} per query a day a month) → from "
                f"**{cost.break_even_queries_per_day:,} queries a day**"
            )
    st.markdown("\n".join(f"- {line}" for line in lines))

# --- Chart --------------------------------------------------------------------------------------

st.subheader("Monthly cost against queries per day")
log_axes = st.checkbox("Logarithmic axes", value=True, key="costs_log_axes")
anchors = [max(scenario.queries_per_day, 1.0)] + [
    c.break_even_queries_per_day for c in estimate.gpu_modes.values() if c.break_even_queries_per_day
]
high = max(anchors) * 4
low = max(1.0, min(anchors) / 10)
xs = costs.curve_points(low, high, 240) if log_axes else [high * i / 239 for i in range(240)]
# Add both sides of each GPU step so the steps are drawn vertical.
step = 1
while capacity * step < high and step < 50:
    xs += [capacity * step, capacity * step * (1 + 1e-9)]
    step += 1
xs = sorted(x for x in set(xs) if x > 0 or not log_axes)
curves = costs.cost_curve(scenario, xs)
figure = go.Figure()
figure.add_trace(go.Scatter(x=xs, y=curves["managed"], name="Managed service", line={"color": COLOURS["managed"]}))
for mode, cost in estimate.gpu_modes.items():
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=curves[mode],
            name=f"GPU, {cost.label}" + (" (never breaks even)" if cost.break_even_queries_per_day is None else ""),
            line={"color": COLOURS[mode]},
        )
    )
    if cost.break_even_queries_per_day:
        q = cost.break_even_queries_per_day
        figure.add_trace(
            go.Scatter(
                x=[q],
                y=[costs.gpu_monthly_cost(scenario, mode, q)],
                mode="markers+text",
                marker={"symbol": "x", "size": 12, "color": COLOURS[mode]},
                text=[f"break-even {q:,}/day"],
                textposition="top left",
                name=f"Break-even, {cost.label}",
            )
        )
now = [estimate.managed_monthly] + [c.monthly for c in estimate.gpu_modes.values()]
figure.add_trace(
    go.Scatter(
        x=[scenario.queries_per_day] * len(now),
        y=now,
        mode="markers",
        marker={"size": 10, "color": "black", "symbol": "circle-open"},
        name="Your scenario",
    )
)
figure.add_vline(
    x=max(scenario.queries_per_day, low) if log_axes else scenario.queries_per_day,
    line_dash="dot",
    annotation_text=f"you: {number(scenario.queries_per_day)}/day",
)
figure.update_layout(
    xaxis_title="Queries per day",
    yaxis_title="USD per month",
    legend={"orientation": "h", "y": -0.2},
    margin={"t": 20},
    height=480,
)
if log_axes:
    figure.update_xaxes(type="log")
    figure.update_yaxes(type="log")
st.plotly_chart(figure, key="costs_chart")

# --- One-time fine-tuning -------------------------------------------------------------------------

st.subheader("One-time fine-tuning")
choices = dataset_choices()
active = st.session_state.get("active_dataset_id")
if "costs_dataset" not in st.session_state or st.session_state["costs_dataset"] not in choices:
    st.session_state["costs_dataset"] = f"id:{active}" if f"id:{active}" in choices else next(iter(choices))
f1, f2, f3 = st.columns([2, 1, 2])
f1.selectbox(
    "Dataset",
    list(choices),
    format_func=lambda key: choices[key][0],
    key="costs_dataset",
    help="Defaults to the dataset chosen on the Dataset page.",
)
epochs = f2.number_input("Epochs", min_value=1, max_value=50, value=3, step=1, key="costs_epochs")
base_model = f3.selectbox("Base model (sets the price tier)", list(managed_models), key="costs_base_model")
dataset_path = choices[st.session_state["costs_dataset"]][1]
training_price = costs.training_price_per_million(base_model, prices)
if training_price is None:
    st.warning(f"The price table has no fine-tuning price for {base_model}; enter one to cost it.")
    training_price = st.number_input(
        "Price per 1M training tokens (USD)", min_value=0.0, value=1.0, step=0.1, key="costs_training_price"
    )

tokens = None
try:
    tokens, approximate = dataset_tokens(dataset_path, Path(dataset_path).stat().st_mtime)
except ImportError:
    st.warning("Token counting is not available yet (legalft.data.stats is missing).")
except (OSError, ValueError, RuntimeError) as exc:
    st.error(f"Cannot count the tokens of {dataset_path}: {exc}")

st.markdown("**Billed GPU minutes on your own GPU** (reference run: 25 + 10 + 8 + 4 = 47)")
t1, t2, t3, t4, t5 = st.columns(5)
setup = t1.number_input("Setup", min_value=0.0, value=25.0, step=1.0, key="costs_setup_minutes")
train_tps = t5.number_input(
    "Measured training tokens/s (0 = use minutes)", min_value=0.0, value=0.0, step=100.0, key="costs_train_tps"
)
if train_tps > 0 and tokens is not None:
    training_minutes = costs.estimate_training_minutes(tokens * epochs, train_tps)
    t2.metric("Training (estimated)", f"{training_minutes:.1f}", help="trained tokens / tokens per second / 60")
else:
    training_minutes = t2.number_input("Training", min_value=0.0, value=10.0, step=1.0, key="costs_training_minutes")
merge = t3.number_input("Merge", min_value=0.0, value=8.0, step=1.0, key="costs_merge_minutes")
serve = t4.number_input("Server start", min_value=0.0, value=4.0, step=1.0, key="costs_serve_minutes")
gpu_one_time = costs.estimate_gpu_one_time_cost(
    scenario.gpu_hourly, costs.GpuMinutes(setup=setup, training=training_minutes, merge=merge, serve_start=serve)
)

o1, o2 = st.columns(2)
if tokens is not None:
    managed_training = costs.estimate_managed_training_cost(tokens, epochs, training_price)
    label = "approximate: no tokenizer" if approximate else "counted with a tokenizer"
    o1.metric("Managed fine-tuning", money(managed_training), border=True)
    o1.caption(
        f"{tokens:,} dataset tokens ({label}) × {epochs} epochs = {tokens * epochs:,} trained tokens × "
        f"${training_price:g} per 1M"
    )
else:
    managed_training = None
o2.metric("Own GPU, to first answer", money(gpu_one_time.cost), border=True)
o2.caption(
    f"{number(setup)} + {training_minutes:.1f} + {number(merge)} + {number(serve)} = "
    f"{gpu_one_time.minutes.total:.1f} min × ${scenario.gpu_hourly:g}/h ({gpu_price.label})"
)

if managed_training is not None:
    totals = costs.first_month_totals(estimate, managed_training, gpu_one_time.cost)
    rows = [{"Path": "Managed service", "One-time": money(managed_training),
             "First month of use": money(estimate.managed_monthly), "First-month total": money(totals.managed)}]
    for mode, cost in estimate.gpu_modes.items():
        rows.append({"Path": f"GPU, {cost.label}", "One-time": money(gpu_one_time.cost),
                     "First month of use": money(cost.monthly), "First-month total": money(totals.gpu[mode])})
    st.markdown("**First-month total**")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="costs_first_month")

# --- Prices -------------------------------------------------------------------------------------

st.subheader("Prices used")
used = {gpu_price.key, tps_price.key}
if not blended:
    used |= {input_price.key, output_price.key}
if managed_training is not None:
    used |= {p.key for p in prices.of_kind("training") if p.value == training_price}
today = date.today()
table = pd.DataFrame(
    [
        {
            "Used": "✓" if price.key in used else "",
            "Price": price.label,
            "Value": price.value,
            "Age": costs.price_age(price, today),
            "Source date": price.source_date or "undated",
            "Source": price.source,
            "Your override": "yes" if price.overridden else "",
            "Catalogue value": price.catalogue_value,
            "Unit": price.unit,
            "Read on": price.read_on.isoformat(),
            "Key": price.key,
        }
        for price in prices.prices.values()
    ]
)
st.dataframe(
    table,
    hide_index=True,
    height=35 * (len(table) + 1) + 3,
    column_config={
        "Used": st.column_config.TextColumn(width="small", help="✓: used in the figures on this page"),
        "Value": st.column_config.NumberColumn(help="In the unit of the Unit column"),
        "Age": st.column_config.TextColumn(help="Time since the date the source gives"),
    },
    key="costs_prices_table",
)
notes = [f"**{p.label}**: {p.note}" for p in prices.prices.values() if p.note]
with st.expander("Notes on these prices"):
    st.markdown("\n".join(f"- {note}" for note in notes))

with st.expander("Override a price", expanded=False):
    st.caption("Your figures are saved in your legalft home folder and marked in the table above.")
    o_key = st.selectbox(
        "Price", list(prices.prices), format_func=lambda key: prices[key].label, key="costs_override_key"
    )
    st.number_input(
        f"Your figure ({prices[o_key].unit})", min_value=0.0, value=float(prices[o_key].value),
        step=0.01, format="%.4f", key=f"costs_override_value_{o_key}",
    )
    b1, b2 = st.columns(2)
    b1.button("Save override", on_click=save_override, key="costs_override_save")
    b2.button("Back to catalogue value", on_click=clear_override, key="costs_override_clear")
    message = st.session_state.pop("costs_override_message", None)
    if message:
        getattr(st, message[0])(message[1])
