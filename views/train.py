"""Train: pick a registered dataset and a path, see memory and cost before launch, then launch."""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from legalft import auth, budget, costs
from legalft import managed as tf
from legalft.data.registry import holdout_split, list_datasets
from legalft.errors import LegalftError, render_error
from legalft.managed.cleanup import WHERE_DATA_GOES
from legalft.train import (
    TrainConfigError,
    detect_hardware,
    estimate_memory,
    list_recipes,
    load_recipe,
    start_training,
)
from legalft.train.form import CLOUD_SETTINGS, Setting, form_values
from legalft.train.preflight import check_hardware

st.title("Train")


def widget_key(setting_key: str) -> str:
    """The session-state key of a Cloud setting's widget: ``train_`` + its config key."""
    return "train_" + setting_key.replace(".", "__")


@st.cache_data(show_spinner=False, max_entries=32)
def _trained_tokens(path: str, sha: str, model: str = costs.DEFAULT_TRAINING_MODEL, epochs: float = 1,
                    packing: bool = True, context_length: int | None = None) -> costs.TrainedTokens:
    """The one trained-token estimate (legalft.costs), cached per file content and setting."""
    return costs.estimate_trained_tokens(path, model=model, epochs=epochs, packing=packing,
                                         context_length=context_length)


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
    st.page_link("views/dataset.py", label="Go to the Dataset page", icon=":material/dataset:")
    st.stop()

by_id = {d.id: d for d in datasets}
active = st.session_state.get("active_dataset_id")
if st.session_state.get("train_dataset") not in by_id:
    st.session_state["train_dataset"] = active if active in by_id else datasets[0].id
st.subheader("1 · Dataset")
dataset_id = st.selectbox("Registered dataset", list(by_id), key="train_dataset",
                          format_func=lambda i: f"#{i} {by_id[i].name} ({by_id[i].kept_records:,} records)")
dataset = by_id[dataset_id]
# Registration computed these once (legalft.data.registry.training_summary); older entries compute them here.
training = dataset.report.get("training") or {}
if training.get("trained_tokens_per_epoch") is None:
    estimate = _trained_tokens(dataset.path, dataset.sha256)
    training = {"trained_tokens_per_epoch": estimate.per_epoch, "trained_tokens_model": estimate.model,
                "trained_tokens_basis": estimate.basis}
d1, d2, d3 = st.columns(3)
d1.metric("Records", f"{dataset.kept_records:,}")
d2.metric("Trained tokens per epoch", f"{training['trained_tokens_per_epoch']:,}",
          help=f"As Token Factory counts them for {training['trained_tokens_model']}: {training['trained_tokens_basis']}")
hold_out = d3.number_input("Validation hold-out (grouped by Act)", 0.0, 0.5, 0.1, 0.05, key="train_holdout",
                           help="A held-out share gives the validation-loss curve; 0 trains on everything.")
st.caption("Training uses this registered dataset and holds out the share above for validation (grouped by Act, "
           "seed 0). The split on the Dataset page (**Split & export**) is only for downloading the two files; "
           "it does not change what trains here.")


@st.cache_data(show_spinner="Holding out a validation split …", max_entries=16)
def _split(path: str, sha: str, fraction: float) -> tuple[str, str | None, str | None]:
    return holdout_split(path, sha, fraction)  # made once per content and fraction, then reused from disk


holdout = training.get("holdout") or {}
if holdout.get("fraction") == float(hold_out) and holdout.get("train") and Path(holdout["train"]).is_file():
    train_path, val_path, no_split = holdout["train"], holdout["validation"], holdout.get("note")
else:
    train_path, val_path, no_split = _split(dataset.path, dataset.sha256, float(hold_out))
if no_split:
    st.caption(f"No validation split: {no_split}.")


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
st.caption(WHERE_DATA_GOES["token_factory" if path.startswith("Nebius") else "local"])
st.caption(f"Cost planner, reference scenario (500 queries a day, 800 tokens in, 400 out): {_recommendation()}")
st.page_link("views/costs.py", label="Plan costs for your own scenario", icon=":material/payments:")


def _override_reason(kind: str, estimate: float | None, key: str) -> str | None:
    """Over budget, an admin may give a reason to go over it (recorded); others see the refusal coming."""
    if budget.over_budget(kind, estimate) and auth.current_user().can("admin"):
        return st.text_input("Over budget: reason to override (admins; recorded in the audit trail)", key=key)
    return None


SKYPILOT_REGIONS = ("nebius/eu-north1", "nebius/eu-west1", "nebius/us-central1")


def _serve_idle_minutes(after: str, key: str) -> float:
    """``Serve there``: how long the server waits for a request before it stops (and the GPU is released)."""
    if after != "serve":
        return 30
    st.caption("The model is served on the GPU, reached from here through an SSH tunnel; the Chat page and the "
               "legal API list it. Nobody else can reach it.")
    return float(st.number_input("Stop serving after idle minutes", 1, 480, 30, key=key))


def _where_to_train():
    """The Cloud path's target: this machine, the user's GPU VM over SSH, or a SkyPilot cluster.
    Returns (target or None for this machine, the last check of it or None)."""
    from legalft.targets import parse_target

    where = st.radio("Where to train", ["This machine", "My GPU VM (SSH)", "Nebius H100 via SkyPilot"],
                     key="train_where", horizontal=True)
    if where == "This machine":
        return None, None
    after = {"Release the GPU": "release", "Merge there first": "merge", "Serve there": "serve"}
    try:
        if where.startswith("My GPU VM"):
            h1, h2, h3 = st.columns([2, 2, 2])
            host = h1.text_input("Host: an ssh_config alias or user@host[:port]", key="train_ssh_host")
            root = h2.text_input("Folder on the host", "~/legalft", key="train_ssh_root")
            python = h3.text_input("Python with the pinned set (optional)", key="train_ssh_python",
                                   help="Leave empty: legalft builds its environment there once, from the lock file.")
            rate = st.number_input("What the VM costs per hour, in USD (optional: for the run's cost)", 0.0, 1000.0,
                                   0.0, key="train_ssh_rate")
            st.caption("legalft uses your own `ssh` and `rsync` (your ssh_config, agent and ProxyJump apply). It never "
                       "stops your VM: it keeps billing after the run until you stop it.")
            ssh_after = {"Bring the adapter back": "release", "Merge there first": "merge", "Serve there": "serve"}
            then = st.selectbox("When training ends", list(ssh_after), key="train_ssh_after")
            serve_idle = _serve_idle_minutes(ssh_after[then], "train_ssh_serve_idle")
            if not host.strip():
                st.info("Name the host to check it and launch there.")
                st.stop()
            target = parse_target(f"ssh:{host.strip()}", remote_root=root.strip() or "~/legalft",
                                  remote_python=python.strip() or None, hourly_rate=rate or None,
                                  after=ssh_after[then], serve_idle_minutes=serve_idle)
        else:
            k1, k2, k3, k4 = st.columns(4)
            infra = k1.selectbox("Region", SKYPILOT_REGIONS, key="train_sky_infra")
            gpu = k2.selectbox("GPU", ["H100", "H200"], key="train_sky_gpu")
            count = k3.selectbox("GPUs", [1, 2, 4, 8], key="train_sky_count")
            idle = k4.number_input("Stop after idle minutes", 1, 240, 10, key="train_sky_idle")
            j1, j2 = st.columns(2)
            spot = j1.checkbox("Spot instance (cheaper, can be preempted)", key="train_sky_spot")
            then = j2.selectbox("When training ends", list(after), key="train_sky_after")
            serve_idle = _serve_idle_minutes(after[then], "train_sky_serve_idle")
            st.caption("SkyPilot provisions the GPU and legalft releases it when the work is done (autostop is the "
                       "safety net). SkyPilot signs in to Nebius with a service-account file (~/.nebius/credentials"
                       ".json), not with NEBIUS_API_KEY, which is Token Factory's key.")
            target = parse_target(f"skypilot:{infra}", accelerators=f"{gpu}:{count}", use_spot=spot,
                                  idle_minutes=int(idle), after=after[then], serve_idle_minutes=serve_idle)
    except LegalftError as exc:
        st.error(render_error(exc))
        st.stop()
    key = json.dumps(target.to_dict(), sort_keys=True)
    checks = st.session_state.setdefault("train_target_checks", {})
    if st.button("Check the target", key="train_check_target"):
        with st.spinner(f"Checking {target.describe()} …"):
            checks[key] = target.check()
    check = checks.get(key)
    if check is None:
        st.caption("Check the target before launching: tools, credentials, the host and its GPUs. Nothing is billed.")
        return target, None
    if check.ok:
        st.success(f"{target.describe()} is ready.")
    for problem in check.problems:
        st.error(problem)
    for warning in check.warnings:
        st.warning(warning)
    if check.facts.get("estimated_hourly") is not None:
        st.caption(f"About ${check.facts['estimated_hourly']:,.2f} an hour while it runs.")
    return target, check


def _request_launch(key: str) -> None:
    """A click on a Launch button: remembered before the rerun, so the button is drawn disabled while it works."""
    st.session_state[key] = True


def _go_to_monitor(job_id: str) -> None:
    st.session_state["monitor_job_id"] = job_id
    st.switch_page("views/monitor.py")


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

    st.subheader("4 · Where to train")
    target, target_check = _where_to_train()
    hardware = (target.hardware(target_check) if target and target_check else None) or _hardware()
    st.subheader("5 · Hardware and memory")
    st.write(hardware.describe() if not target else f"{target.describe()}: " + hardware.describe())
    # What stops the run on this hardware, whatever the memory: said first, with the fix (a click away).
    blockers = check_hardware(config, hardware)
    for blocker in blockers:
        st.error(f"**This cannot train here:** {blocker}.", icon=":material/block:")
    if config.method in ("qlora", "lora-8bit") and any("needs a CUDA GPU" in b for b in blockers):
        st.button("Use LoRA instead (trains on the CPU)", key="train_use_lora",
                  on_click=lambda: st.session_state.update({widget_key("method"): "lora"}))
    estimate = estimate_memory(config, hardware)
    if estimate.fits is None:
        st.info(" ".join(estimate.notes) or "Memory cannot be estimated for this model.")
    else:
        in_memory = estimate.total_gib <= estimate.available_gib
        m1, m2, m3 = st.columns(3)
        m1.metric("Estimated peak", f"{estimate.total_gib:.1f} GiB")
        m2.metric("Available", f"{estimate.available_gib:.1f} GiB", help=f"on {estimate.device}")
        m3.metric("Fits in memory", "yes" if in_memory else "no",
                  help="Memory only: whether the run can start here at all is said above.")
        st.bar_chart(pd.Series(estimate.components(), name="GiB"), horizontal=True, height=200)
        if not in_memory and estimate.suggestion:
            st.warning(f"Does not fit. Suggestion: {estimate.suggestion}")
        for note in estimate.notes:
            if not any(note.split(" (")[0] in blocker for blocker in blockers):
                st.caption(note)

    st.subheader("6 · Cost before launch")
    one_time = costs.launch_gpu_cost(target)  # the figure the GPU budget counts (the CLI prints it too)
    st.metric("One-time GPU cost (setup, training, merge, server start)", costs.format_money(one_time.cost),
              help=f"{one_time.basis}. The Costs page and `legalft cost training` give the same figure at the "
                   "same rate and GPU count.")
    if not hardware.has_gpu:
        st.caption("This machine has no GPU: the run trains on the CPU, which suits the smoke recipe and tiny models.")

    st.caption(budget.headroom_text("gpu", round(one_time.cost, 2)))
    reason = _override_reason("gpu", round(one_time.cost, 2), "train_budget_reason")
    # Taken at once, so a second click (the button is disabled while this run works) cannot launch twice.
    launching = st.session_state.pop("train_launch_requested", False)
    st.button("Launch training", type="primary", key="train_launch", disabled=bool(blockers) or launching,
              on_click=_request_launch, args=("train_launch_requested",),
              help="Fix what is said above first." if blockers else None)
    if launching:
        with st.status("Launching: checking the settings, the dataset and the base model"
                       + (f" and {target.describe()}" if target else "") + " …", expanded=True) as progress:
            st.write("Loading the base model's tokenizer takes a few seconds the first time.")
            try:
                with budget.maybe_override(reason):
                    job = start_training(config, train_path, validation_path=val_path, dataset_id=dataset.id,
                                         name=s.get("train_name") or recipe_name,
                                         estimated_cost=round(one_time.cost, 2), target=target)
            except (LegalftError, ValueError, RuntimeError) as exc:
                progress.update(label="Not launched", state="error", expanded=True)
                st.error(f"Not launched: {render_error(exc)}")
            else:
                progress.update(label=f"Launched {job.id}: opening it on the Monitor page …", state="complete")
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
    trained = _trained_tokens(train_path, f"{dataset.sha256}-{hold_out:.2f}", model, float(n_epochs), packing,
                              int(context) or None)
    training_cost = costs.estimate_managed_training(trained)
    p2.metric("Trained tokens per epoch", f"{trained.per_epoch:,}", help=trained.basis)
    p3.metric("Training cost", costs.format_money(training_cost.cost), help=training_cost.basis)
    if training_cost.cost is None:
        st.caption(tf.price_note(model))
    for error in report.problems:
        st.error(error)
    for warning in report.warnings:
        st.caption(f"⚠️ {warning}")
    if val_path:
        st.caption(f"Validation file: {Path(val_path).name} (held out, grouped by Act).")

    st.caption(budget.headroom_text("managed", training_cost.cost))
    reason = _override_reason("managed", training_cost.cost, "train_tf_budget_reason")
    launching = st.session_state.pop("train_tf_launch_requested", False)
    st.button("Launch on Token Factory", type="primary", key="train_tf_launch",
              disabled=not (report.ok and connection["has_key"]) or launching,
              on_click=_request_launch, args=("train_tf_launch_requested",))
    if launching:
        bar = st.progress(0.0, text="Uploading …")
        try:
            with budget.maybe_override(reason):
                job = tf.launch_job(report, launch_config, validation=val_path,
                                    progress=lambda message, fraction: bar.progress(fraction or 0.0, text=message))
        except LegalftError as exc:
            st.error(f"Not launched: {render_error(exc)}")
        else:
            _go_to_monitor(job.id)
