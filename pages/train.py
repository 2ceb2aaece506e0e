"""Train: pick a registered dataset and a path, see memory and cost before launch, then launch."""

from pathlib import Path

import pandas as pd
import streamlit as st

from legalft import costs
from legalft import managed as tf
from legalft.data.registry import list_datasets
from legalft.data.split import split_file
from legalft.data.stats import compute_stats
from legalft.errors import ServiceError
from legalft.home import subdir
from legalft.train import (
    TrainConfigError,
    detect_hardware,
    estimate_memory,
    list_recipes,
    load_recipe,
    start_training,
)
from legalft.train.form import CLOUD_SETTINGS, Setting, form_values

st.title("Train")


def widget_key(setting_key: str) -> str:
    """The session-state key of a Cloud setting's widget: ``train_`` + its config key."""
    return "train_" + setting_key.replace(".", "__")


@st.cache_data(show_spinner=False, max_entries=16)
def _tokens(path: str, sha: str) -> tuple[int, bool]:
    stats = compute_stats(path)
    return stats.total_tokens, stats.tokens_are_approximate


@st.cache_resource(show_spinner="Looking for GPUs …")
def _hardware():
    return detect_hardware()


@st.cache_data(show_spinner=False, ttl=3600)
def _recommendation() -> str:
    scenario = costs.build_scenario(**costs.REFERENCE_SCENARIO)
    return costs.recommend(costs.estimate_monthly_cost(scenario)).text


# ---- 1. Dataset ---------------------------------------------------------------------------------
datasets = list_datasets()
if not datasets:
    st.info("No dataset is registered yet: review one on the Dataset page and press **Use for training**.")
    st.page_link("pages/dataset.py", label="Go to the Dataset page", icon=":material/dataset:")
    st.stop()

by_id = {d.id: d for d in datasets}
active = st.session_state.get("active_dataset_id")
if st.session_state.get("train_dataset") not in by_id:
    st.session_state["train_dataset"] = active if active in by_id else datasets[0].id
st.subheader("1 · Dataset")
dataset_id = st.selectbox("Registered dataset", list(by_id), key="train_dataset",
                          format_func=lambda i: f"#{i} {by_id[i].name} ({by_id[i].kept_records:,} records)")
dataset = by_id[dataset_id]
tokens, approximate = _tokens(dataset.path, dataset.sha256)
d1, d2, d3 = st.columns(3)
d1.metric("Records", f"{dataset.kept_records:,}")
d2.metric("Tokens per epoch", f"{tokens:,}", help="Approximate: characters ÷ 4" if approximate else None)
hold_out = d3.number_input("Validation hold-out (grouped by Act)", 0.0, 0.5, 0.1, 0.05, key="train_holdout",
                           help="A held-out share gives the validation-loss curve; 0 trains on everything.")


@st.cache_data(show_spinner="Holding out a validation split …", max_entries=16)
def _split(path: str, sha: str, fraction: float) -> tuple[str, str | None]:
    if fraction <= 0:
        return path, None
    out = subdir("datasets/splits") / f"{sha[:12]}-{fraction:.2f}"
    train_path, val_path, _ = split_file(path, out, fraction, seed=0, group_by_act=True)
    return str(train_path), str(val_path)


train_path, val_path = _split(dataset.path, dataset.sha256, float(hold_out))


@st.cache_data(show_spinner="Checking the dataset against the service's rules …", max_entries=8)
def _preflight(path: str, content_key: str):
    return tf.preflight_dataset(path)


# ---- 2. Path ------------------------------------------------------------------------------------
st.subheader("2 · Where to train")
path = st.radio("Path", ["Cloud (your own GPU)", "Nebius Token Factory (managed)"], horizontal=True,
                key="train_path")
st.table(pd.DataFrame({
    "Cloud (your own GPU)": ["any open model, any method (LoRA, QLoRA, full)", "you run the VM, drivers, server",
                             "per GPU-hour, idle included", "weights stay on your machine"],
    "Nebius Token Factory": ["the service's catalogue", "none: upload and go", "per training token; per-token serving",
                             "data and model live at the provider"],
}, index=["model choice", "setup", "billing", "control"]))
st.caption(f"Cost planner, reference scenario (500 queries a day, 800 tokens in, 400 out): {_recommendation()}")
st.page_link("pages/costs.py", label="Plan costs for your own scenario", icon=":material/payments:")


def _go_to_monitor(job_id: str) -> None:
    st.session_state["monitor_job_id"] = job_id
    st.switch_page("pages/monitor.py")


# ---- 3a. Cloud path -----------------------------------------------------------------------------
if path.startswith("Cloud"):
    st.subheader("3 · Recipe and settings")
    recipes = {r.name: r for r in list_recipes()}
    recipe_name = st.selectbox("Recipe", list(recipes), key="train_recipe",
                               index=list(recipes).index("smoke") if "smoke" in recipes else 0,
                               format_func=lambda n: f"{n}: {recipes[n].description}")
    base = load_recipe(recipe_name)
    if st.session_state.get("train_loaded_recipe") != recipe_name or widget_key("base_model") not in st.session_state:
        # A new recipe resets the fields to its values (the recipe's, else the project defaults).
        st.session_state.update({widget_key(k): v for k, v in form_values(base).items()})
        st.session_state["train_loaded_recipe"] = recipe_name

    def setting_widget(setting: Setting, where) -> None:
        key = widget_key(setting.key)
        if setting.choices:
            where.selectbox(setting.label, list(setting.choices), key=key, help=setting.help)
        elif setting.kind is bool:
            where.checkbox(setting.label, key=key, help=setting.help)
        elif setting.kind is str:
            where.text_input(setting.label, key=key, help=setting.help)
        else:
            cast = setting.kind
            where.number_input(setting.label, cast(setting.minimum), cast(setting.maximum),
                               step=cast(setting.step) if setting.step else None, format=setting.number_format,
                               key=key, help=setting.help)

    main_settings = [x for x in CLOUD_SETTINGS if not x.advanced]
    for setting, column in zip(main_settings[:2], st.columns([2, 1])):
        setting_widget(setting, column)
    for setting, column in zip(main_settings[2:], st.columns(len(main_settings) - 2)):
        setting_widget(setting, column)
    with st.expander("Advanced"):
        advanced = [x for x in CLOUD_SETTINGS if x.advanced]
        for row in range(0, len(advanced), 4):
            for setting, column in zip(advanced[row:row + 4], st.columns(4)):
                setting_widget(setting, column)
        st.caption("Everything else comes from the recipe; the run folder keeps the full config.")
    s = st.session_state
    overrides = {x.key: s[widget_key(x.key)] for x in CLOUD_SETTINGS}
    overrides["base_model"] = str(overrides["base_model"]).strip()
    if val_path:
        overrides["validation_file"] = val_path
        overrides["sft.eval_strategy"] = "steps"
        overrides["sft.eval_steps"] = int(overrides["sft.save_steps"])
    try:
        config = base.with_overrides(overrides)
    except (TrainConfigError, ValueError) as exc:
        st.error(f"These settings contradict each other:\n\n{exc}")
        st.stop()

    st.subheader("4 · Hardware and memory")
    hardware = _hardware()
    st.write(hardware.describe())
    estimate = estimate_memory(config, hardware)
    if estimate.fits is None:
        st.info(" ".join(estimate.notes) or "Memory cannot be estimated for this model.")
    else:
        m1, m2, m3 = st.columns(3)
        m1.metric("Estimated peak", f"{estimate.total_gib:.1f} GiB")
        m2.metric("Available", f"{estimate.available_gib:.1f} GiB", help=f"on {estimate.device}")
        m3.metric("Fits", "yes" if estimate.fits else "no")
        st.bar_chart(pd.Series(estimate.components(), name="GiB"), horizontal=True, height=200)
        if not estimate.fits and estimate.suggestion:
            st.warning(f"Does not fit. Suggestion: {estimate.suggestion}")
        for note in estimate.notes:
            st.caption(note)

    st.subheader("5 · Cost before launch")
    prices = costs.effective_prices()
    rate = prices.default("gpu_hourly").value
    epochs = float(overrides["sft.num_train_epochs"])
    trained_tokens = tokens * epochs
    tps = prices.default("gpu_tokens_per_second").value
    minutes = costs.GpuMinutes(training=max(1.0, costs.estimate_training_minutes(trained_tokens, tps * 0.5)))
    one_time = costs.estimate_gpu_one_time_cost(rate, minutes)
    st.metric("One-time GPU cost (setup, training, merge, server start)", f"${one_time.cost:,.2f}",
              help=f"{minutes.total:.0f} billed minutes at ${rate:.2f}/GPU-hour ({prices.default('gpu_hourly').label}); "
                   f"training minutes estimated from {trained_tokens:,.0f} trained tokens.")
    if not hardware.has_gpu:
        st.caption("This machine has no GPU: the run trains on the CPU, which suits the smoke recipe and tiny models.")

    if st.button("Launch training", type="primary", key="train_launch"):
        try:
            job = start_training(config, train_path, validation_path=val_path, dataset_id=dataset.id,
                                 name=s.get("train_name") or recipe_name, estimated_cost=round(one_time.cost, 2))
        except (TrainConfigError, ValueError, RuntimeError) as exc:
            st.error(f"Not launched: {exc}")
        else:
            _go_to_monitor(job.id)

# ---- 3b. Managed path ---------------------------------------------------------------------------
else:
    st.subheader("3 · Nebius Token Factory")
    connection = tf.describe_connection()
    if connection["has_key"]:
        st.success(f"API key configured (from {connection['key_source']}). Service: {connection['base_url']}")
    else:
        st.warning("No API key: set NEBIUS_API_KEY in the environment (or in .streamlit/secrets.toml) and restart.")
    if not connection["is_default"]:
        st.caption(f"Using a non-default service URL ({connection['base_url']}), set by LEGALFT_TOKEN_FACTORY_URL.")
    catalogue = tf.load_model_catalogue()
    st.caption(f"Model catalogue as of {catalogue.as_of} ({catalogue.source}).")
    models = [m.id for m in catalogue.models if m.lora or m.full]
    limits = tf.SERVICE_LIMITS  # the service's published ranges: the form cannot go past them
    c1, c2, c3 = st.columns([2, 1, 1])
    model = c1.selectbox("Base model", models, key="train_tf_model")
    n_epochs = c2.number_input("Epochs", *limits["n_epochs"], 3, key="train_tf_epochs")
    learning_rate = c3.number_input("Learning rate", 1e-7, 1e-2, 1e-5, format="%.1e", key="train_tf_lr")
    c4, c5, c6, c7 = st.columns(4)
    use_lora = c4.checkbox("LoRA", True, key="train_tf_lora")
    lora_r = c5.number_input("LoRA rank", *limits["lora_r"], 16, key="train_tf_r", disabled=not use_lora)
    lora_alpha = c6.number_input("LoRA alpha", limits["lora_alpha"][0], 1024, 16, key="train_tf_alpha",
                                 disabled=not use_lora)
    lora_dropout = c7.number_input("LoRA dropout", 0.0, 0.99, 0.05, key="train_tf_dropout", disabled=not use_lora)
    with st.expander("Advanced"):
        e1, e2, e3, e4 = st.columns(4)
        packing = e1.checkbox("Packing", True, key="train_tf_packing")
        batch = e2.number_input("Batch size (0 = service default)", 0, limits["batch_size"][1], 0, key="train_tf_batch")
        context = e3.number_input(f"Context length (0 = default; {limits['context_length'][0]:,}–"
                                  f"{limits['context_length'][1]:,})", 0, limits["context_length"][1], 0,
                                  step=1024, key="train_tf_context")
        seed = e4.number_input("Seed", 0, 2**31 - 1, 42, key="train_tf_seed")
        suffix = st.text_input("Suffix (≤ 64 characters)", "uk-legal", key="train_tf_suffix")
        starts = tf.continuation_choices()
        start = st.selectbox("Continue from", [""] + list(starts), key="train_tf_from",
                             format_func=lambda k: starts.get(k, "a fresh start (the base model)"),
                             help="Go on training from a checkpoint of an earlier managed job")
        hf_start = st.text_input("…or from a Hugging Face repo (org/name[@revision])", key="train_tf_from_hf")
        integrations = st.multiselect(
            "Report to (the service's integrations)", list(tf.INTEGRATION_LABELS), key="train_tf_integrations",
            format_func=tf.INTEGRATION_LABELS.get,
            help="Settings and secrets come from the environment or .streamlit/secrets.toml; never stored")
        for kind in integrations:
            missing = tf.integration_status(kind)["missing"]
            if missing:
                st.warning(f"{tf.INTEGRATION_LABELS[kind]} needs {', '.join(missing)} in the environment "
                           "or .streamlit/secrets.toml.")
    try:
        launch_config = tf.LaunchConfig(
            model=model, n_epochs=int(n_epochs), learning_rate=float(learning_rate), lora=use_lora,
            lora_r=int(lora_r), lora_alpha=int(lora_alpha), lora_dropout=float(lora_dropout), packing=packing,
            batch_size=int(batch) or None, context_length=int(context) or None, seed=int(seed),
            suffix=suffix.strip() or None, from_checkpoint=start or hf_start.strip() or None,
            integrations=list(integrations))
    except ValueError as exc:
        st.error(str(exc))
        st.stop()

    st.subheader("4 · Pre-flight")
    report = _preflight(train_path, f"{dataset.sha256}-{hold_out:.2f}")
    p1, p2, p3 = st.columns(3)
    p1.metric("Records to upload", f"{report.records:,}")
    p2.metric("Tokens per epoch", f"{report.estimated_tokens:,}")
    cost = report.estimated_cost(model, int(n_epochs))
    p3.metric("Training cost", f"${cost:,.2f}" if cost is not None else "no price",
              help="tokens × epochs × the catalogue's price per 1M training tokens")
    if cost is None:
        st.caption(tf.price_note(model))
    for error in report.errors:
        st.error(error)
    for warning in report.warnings:
        st.caption(f"⚠️ {warning}")
    if val_path:
        st.caption(f"Validation file: {Path(val_path).name} (held out, grouped by Act).")

    if st.button("Launch on Token Factory", type="primary", key="train_tf_launch",
                 disabled=not (report.ok and connection["has_key"])):
        bar = st.progress(0.0, text="Uploading …")
        try:
            job = tf.launch_job(report, launch_config, validation=val_path,
                                progress=lambda message, fraction: bar.progress(fraction or 0.0, text=message))
        except (ServiceError, ValueError) as exc:
            st.error(f"Not launched: {exc}")
        else:
            _go_to_monitor(job.id)
