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
DEMAND_PROFILES = {
    costs.DEMAND_CUSTOM: "Custom: the hours a day and days a month beside",
    costs.DEMAND_24_7: "Around the clock (24 h × 30 days)",
    costs.DEMAND_BUSINESS_HOURS: "Business hours only (the business hours and working days below)",
}
COLOURS = {"managed": "#1f77b4", "24_7": "#d62728", "business_hours": "#ff7f0e", "custom": "#9467bd"}


def money(amount: float) -> str:
    return costs.format_money(amount)


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
    state["costs_tps"] = 0.0
    state["costs_load_hours"] = 8.0
    state["costs_demand"] = costs.DEMAND_CUSTOM
    state["costs_precision"] = "bf16"
    state["costs_pricing"] = PRICING_PER_TOKEN
    state["costs_model"] = prices.defaults["managed_model"]
    state["costs_blended"] = 0.05


def save_override() -> None:
    key = st.session_state["costs_override_key"]
    value = st.session_state[f"costs_override_value_{key}"]
    label = costs.effective_prices()[key].label
    try:
        costs.set_price_override(key, value)
        st.session_state["costs_override_message"] = ("success", f"Saved your figure for {label}: {value:g}.")
    except (KeyError, ValueError) as exc:
        st.session_state["costs_override_message"] = ("error", str(exc).strip("'\""))
    except AccessDenied as exc:  # a viewer or trainer: prices are an admin's
        st.session_state["costs_override_message"] = ("error", render_error(exc))


def clear_override() -> None:
    key = st.session_state["costs_override_key"]
    label = costs.effective_prices()[key].label
    try:
        cleared = costs.clear_price_override(key)
    except AccessDenied as exc:
        st.session_state["costs_override_message"] = ("error", render_error(exc))
        return
    text = f"{label} is back to the catalogue value." if cleared else f"{label} had no override."
    st.session_state["costs_override_message"] = ("info", text)


@st.cache_data(show_spinner="Counting tokens…")
def trained_tokens(path: str, modified: float, model: str, epochs: float, packing: bool) -> costs.TrainedTokens:
    """The one trained-token estimate (legalft.costs), cached per file version and setting."""
    return costs.estimate_trained_tokens(path, model=model, epochs=epochs, packing=packing)


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
    c1, c2, c3 = st.columns(3)
    c1.number_input("Queries per day", min_value=0.0, step=50.0, format="%.0f", key="costs_queries")
    c2.number_input("Input tokens per query", min_value=0.0, step=50.0, format="%.0f", key="costs_input_tokens")
    c3.number_input("Output tokens per query", min_value=0.0, step=50.0, format="%.0f", key="costs_output_tokens")
    st.selectbox(
        "Model, served on both sides",
        list(managed_models),
        format_func=lambda model: (
            f"{model}: managed ${managed_models[model][0].value:g} in / ${managed_models[model][1].value:g} out per 1M"
        ),
        key="costs_model",
        help="The managed side uses its per-token prices; your GPU side plans memory and throughput for it.",
    )
    st.markdown("**When queries arrive** (both sides serve the same queries)")
    w1, w2, w3 = st.columns([2, 1, 1])
    w1.radio("Demand", list(DEMAND_PROFILES), format_func=DEMAND_PROFILES.get, key="costs_demand",
             help="A GPU schedule that is off while queries arrive cannot serve them, and is shown as not covering.")
    w2.number_input("Hours a day (custom)", min_value=0.5, max_value=24.0, step=0.5, key="costs_load_hours")
    w3.number_input("Days a month (custom)", min_value=1.0, max_value=30.0, step=1.0, format="%.0f", key="costs_days")
    st.markdown("**Your own GPU**")
    st.selectbox(
        "GPU offer",
        list(gpu_offers),
        format_func=lambda key: f"{gpu_offers[key].label}: ${gpu_offers[key].value:g}/h",
        key="costs_gpu_offer",
        help="Rates come from the price table below; override one there to use your own.",
    )
    g1, g2, g3, g4 = st.columns(4)
    g1.selectbox("Precision", ["bf16", "fp8", "int4"], key="costs_precision",
                 help="Bytes per weight: decides the memory per replica and scales the throughput.")
    g2.number_input("GPUs rented (at least)", min_value=1, step=1, key="costs_gpus")
    g3.number_input("Business hours per day", min_value=0.5, max_value=24.0, step=0.5, key="costs_business_hours")
    g4.number_input("Working days per month", min_value=1.0, max_value=31.0, step=1.0, format="%.0f", key="costs_working_days")
    h1, h2 = st.columns(2)
    h1.number_input(
        "Custom hours per month (0 = leave out)", min_value=0.0, max_value=744.0, step=10.0, key="costs_custom_hours"
    )
    tps_price = prices.default("gpu_tokens_per_second")
    h2.number_input(
        "Throughput of one replica (tokens/s; 0 = planned for the model)",
        min_value=0.0,
        step=100.0,
        format="%.0f",
        key="costs_tps",
        help=f"Planned from {tps_price.value:,.0f} tokens/s for 8B bf16 on one H100: {tps_price.source} "
             f"({tps_price.source_date}). Enter your own measurement here, or override it in the price table.",
    )
    st.markdown("**Managed service**")
    m1, m2 = st.columns(2)
    m1.radio("Pricing", [PRICING_PER_TOKEN, PRICING_BLENDED], key="costs_pricing")
    m2.number_input("Blended price (USD per 1M tokens)", min_value=0.0, step=0.01, format="%.4f", key="costs_blended")
    st.form_submit_button("Update", type="primary", key="costs_submit")

state = st.session_state
gpu_price = gpu_offers.get(state["costs_gpu_offer"], prices.default("gpu_hourly"))
input_price, output_price = managed_models.get(state["costs_model"], prices.managed_prices())
blended = state["costs_pricing"] == PRICING_BLENDED
load_hours, demand_days = costs.demand_profile(
    state["costs_demand"], custom_hours_per_day=state["costs_load_hours"], custom_days_per_month=state["costs_days"],
    business_hours_per_day=state["costs_business_hours"], working_days_per_month=state["costs_working_days"])
serving = costs.serving_plan(prices, model=state["costs_model"], gpu_offer=gpu_price.key,
                             precision=state["costs_precision"],
                             context_tokens=state["costs_input_tokens"] + state["costs_output_tokens"])
if not serving.fits:
    st.error(f"Your own GPU cannot serve this model: {serving.notes[0]}", icon=":material/block:")
    st.stop()
try:
    scenario = costs.CostScenario(
        queries_per_day=state["costs_queries"],
        input_tokens_per_query=state["costs_input_tokens"],
        output_tokens_per_query=state["costs_output_tokens"],
        demand_days_per_month=demand_days,
        gpu_hourly=gpu_price.value,
        gpus=int(state["costs_gpus"]),
        gpus_per_replica=serving.tensor_parallel,
        business_hours_per_day=state["costs_business_hours"],
        working_days_per_month=state["costs_working_days"],
        custom_hours_per_month=state["costs_custom_hours"] or None,
        input_price_per_million=None if blended else input_price.value,
        output_price_per_million=None if blended else output_price.value,
        blended_price_per_million=state["costs_blended"] if blended else None,
        gpu_tokens_per_second=state["costs_tps"] or serving.tokens_per_second,
        load_hours_per_day=load_hours,
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
        f"{number(scenario.demand_days)} × ${estimate.managed_cost_per_query:.6f}"
    ),
    border=True,
)
for column, cost in zip(columns[1:], estimate.gpu_modes.values()):
    difference = cost.monthly - estimate.managed_monthly
    column.metric(
        f"GPU, {cost.label}",
        money(cost.monthly),
        # An ASCII minus, so that a saving gets a downward, green arrow with the inverse colours.
        delta=(f"{'+' if difference >= 0 else '-'}{money(abs(difference))} vs managed" if cost.covers_demand
               else f"covers {cost.coverage:.0%} of the demand"),
        delta_color="inverse" if cost.covers_demand else "off",
        help=(
            f"billed hours × hourly rate × GPUs = {number(cost.billed_hours_per_month)} h × "
            f"${scenario.gpu_hourly:g} × {cost.gpus}"
            + ("" if cost.covers_demand else f". Not comparable: it {cost.coverage_note}.")
        ),
        border=True,
    )
(st.success if recommendation.path == "managed" else st.warning)(recommendation.text, icon=":material/lightbulb:")

capacity = estimate.queries_per_gpu_per_day
capacity_text = number(math.floor(capacity)) if math.isfinite(capacity) else "unlimited"
replica = "one GPU" if scenario.gpus_per_replica == 1 else f"one replica ({scenario.gpus_per_replica} GPUs)"
st.markdown(
    f"**Capacity:** {replica} at {number(scenario.gpu_tokens_per_second)} tokens/s over "
    f"{number(scenario.effective_load_hours)} h serves {capacity_text} queries a day; "
    f"{number(scenario.queries_per_day)} a day need **{estimate.gpus_needed} GPU{'s' if estimate.gpus_needed > 1 else ''}**"
    + (
        f", so {costs.gpus_billed(scenario)} are billed."
        if costs.gpus_billed(scenario) > estimate.gpus_needed
        else "."
    )
)
throughput_from = ("your figure entered above" if state["costs_tps"]
                   else f"{serving.throughput_basis}; {serving.throughput_age()}")
st.caption(
    f"Serving plan: {state['costs_model']} in {serving.precision} needs {serving.needed_gb:,.1f} GB a replica "
    f"(weights {serving.weights_gb:,.1f} + KV cache {serving.kv_cache_gb:,.1f} for {serving.concurrent_sequences} "
    f"answers of {serving.context_tokens:,} tokens + runtime {serving.overhead_gb:,.1f}) on {serving.gpu.label} "
    f"({serving.usable_gb_per_gpu:,.0f} GB usable each): {scenario.gpus_per_replica} GPU"
    f"{'s' if scenario.gpus_per_replica > 1 else ''} a replica. Throughput: {throughput_from}."
)
for note in serving.notes:
    st.warning(note[:1].upper() + note[1:] + ".", icon=":material/memory:")

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
        f"Monthly tokens = {number(estimate.daily_tokens)} × {number(scenario.demand_days)} days = "
        f"**{number(estimate.monthly_tokens)}**",
        f"Managed cost per query = {per_query} = **${estimate.managed_cost_per_query:.6f}**",
        f"Managed per month = {number(scenario.queries_per_day)} × {number(scenario.demand_days)} × "
        f"${estimate.managed_cost_per_query:.6f} = **{money(estimate.managed_monthly)}**",
        f"One replica's capacity = {number(scenario.gpu_tokens_per_second)} tokens/s × "
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
        per_query_month = scenario.demand_days * estimate.managed_cost_per_query
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
            name=f"GPU, {cost.label}" + (
                " (does not cover the demand)" if not cost.covers_demand
                else " (never breaks even)" if cost.break_even_queries_per_day is None else ""),
            line={"color": COLOURS[mode], "dash": None if cost.covers_demand else "dot"},
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

# --- Sensitivity --------------------------------------------------------------------------------

st.subheader("Where the answer flips")
rows = costs.sensitivity(scenario)
st.dataframe(
    pd.DataFrame([
        {"Input": costs.report.VARIABLES[row.variable], "×": f"{row.factor:g}", "Value": row.value,
         "Managed": money(row.managed_monthly),
         "Cheapest GPU that serves it": f"{money(row.gpu_monthly)} ({costs.MODE_LABELS[row.gpu_mode]})",
         "Cheaper": "managed" if row.recommended == "managed" else f"GPU, {costs.MODE_LABELS[row.recommended]}"}
        for row in rows
    ]),
    hide_index=True,
    key="costs_sensitivity",
)
changes = costs.flips(rows)
st.caption(("The recommendation flips: " + "; ".join(changes) + ".") if changes
           else "The recommendation does not flip within these ranges.")

# --- One-time fine-tuning -------------------------------------------------------------------------

st.subheader("One-time fine-tuning")
choices = dataset_choices()
active = st.session_state.get("active_dataset_id")
if "costs_dataset" not in st.session_state or st.session_state["costs_dataset"] not in choices:
    st.session_state["costs_dataset"] = f"id:{active}" if f"id:{active}" in choices else next(iter(choices))
f1, f2, f3, f4 = st.columns([2, 1, 2, 1])
f1.selectbox(
    "Dataset",
    list(choices),
    format_func=lambda key: choices[key][0],
    key="costs_dataset",
    help="Defaults to the dataset chosen on the Dataset page.",
)
epochs = f2.number_input("Epochs", min_value=1, max_value=50, value=3, step=1, key="costs_epochs")
base_model = f3.selectbox("Base model (chat template and price tier)", list(managed_models), key="costs_base_model")
packing = f4.checkbox("Packing", value=True, key="costs_packing", help="The service's default")
dataset_path = choices[st.session_state["costs_dataset"]][1]
training_price = costs.training_price_per_million(base_model, prices)
if training_price is None:
    st.warning(f"The price table has no fine-tuning price for {base_model}; enter one to cost it.")
    training_price = st.number_input(
        "Price per 1M training tokens (USD)", min_value=0.0, value=1.0, step=0.1, key="costs_training_price"
    )

trained = None
try:
    trained = trained_tokens(dataset_path, Path(dataset_path).stat().st_mtime, base_model, float(epochs), packing)
except (OSError, ValueError, RuntimeError) as exc:
    st.error(f"Cannot count the tokens of {dataset_path}: {exc}")

st.markdown("**Billed GPU minutes on your own GPU** (reference run: 25 + 10 + 8 + 4 = 47)")
past = {run.job_id: run for run in costs.measured_runs()}
measured = st.selectbox(
    "Training speed", ["reference", *past], key="costs_measured_run",
    format_func=lambda key: "The reference run's 10 training minutes, or the figures below" if key == "reference"
    else f"Measured: {past[key].label}",
    help="A finished run of yours measured its training tokens a second; use it in place of the article's minutes.",
)
t1, t2, t3, t4, t5 = st.columns(5)
setup = t1.number_input("Setup", min_value=0.0, value=25.0, step=1.0, key="costs_setup_minutes")
train_tps = t5.number_input(
    "Measured training tokens/s (0 = use minutes)", min_value=0.0, value=0.0, step=100.0, key="costs_train_tps",
    help="Tokens a trainer processes per second (template + text, not the service's count)",
)
if measured in past:
    train_tps = past[measured].tokens_per_second
    if past[measured].device == "cpu":
        st.caption("That run was on a CPU: a GPU trains much faster, so its minutes overstate a GPU's.")
if train_tps > 0 and trained is not None:
    training_minutes = costs.estimate_training_minutes(trained.sequence_total, train_tps)
    t2.metric("Training (estimated)", f"{training_minutes:.1f}", help="trained tokens / tokens per second / 60")
else:
    training_minutes = t2.number_input("Training", min_value=0.0, value=10.0, step=1.0, key="costs_training_minutes")
merge = t3.number_input("Merge", min_value=0.0, value=8.0, step=1.0, key="costs_merge_minutes")
serve = t4.number_input("Server start", min_value=0.0, value=4.0, step=1.0, key="costs_serve_minutes")
gpu_one_time = costs.one_time_gpu_cost(
    prices, hourly_rate=scenario.gpu_hourly,
    minutes=costs.GpuMinutes(setup=setup, training=training_minutes, merge=merge, serve_start=serve),
)

o1, o2 = st.columns(2)
managed_training = None
if trained is not None:
    managed = costs.estimate_managed_training(trained, prices, training_price)
    managed_training = managed.cost
    o1.metric("Managed fine-tuning", costs.format_money(managed.cost), border=True)
    o1.caption(
        f"{trained.per_epoch:,} trained tokens per epoch × {epochs} epochs = {trained.total:,} trained tokens × "
        f"${training_price:g} per 1M ({'approximate' if trained.approximate else 'counted'}: {trained.basis})"
    )
o2.metric("Own GPU, to first answer", costs.format_money(gpu_one_time.cost), border=True)
o2.caption(f"{gpu_one_time.basis[:1].upper()}{gpu_one_time.basis[1:]}")

if managed_training is not None:
    totals = costs.first_month_totals(estimate, managed_training, gpu_one_time.cost)
    rows = [{"Path": "Managed service", "One-time": money(managed_training),
             "First month of use": money(estimate.managed_monthly), "First-month total": money(totals.managed)}]
    for mode, cost in estimate.gpu_modes.items():
        rows.append({"Path": f"GPU, {cost.label}", "One-time": money(gpu_one_time.cost),
                     "First month of use": money(cost.monthly), "First-month total": money(totals.gpu[mode])})
    st.markdown("**First-month total**")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="costs_first_month")

report_text = costs.scenario_report(
    estimate, prices, serving=serving, model=state["costs_model"],
    managed_training=managed if trained is not None else None, gpu_one_time=gpu_one_time,
    used_prices=[gpu_price.key, tps_price.key] + ([] if blended else [input_price.key, output_price.key]),
)
st.download_button("Download the one-page report (markdown)", report_text, file_name="legalft-cost-report.md",
                   mime="text/markdown", key="costs_report", icon=":material/download:")

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
            "Source date": (price.overridden_at or "")[:10] if price.overridden else (price.source_date or "undated"),
            "Source": (f"your figure (the catalogue's: {price.catalogue_value:g}, {price.source}, "
                       f"{price.source_date or 'undated'})" if price.overridden else price.source),
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
