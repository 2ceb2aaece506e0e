"""`legalft tf ...`: fine-tune, monitor, deploy and chat on Nebius Token Factory (the managed path)."""

from __future__ import annotations

import argparse
import sys

from legalft.cli import UsageError
from legalft.cli.access import add_budget_argument
from legalft.errors import ServiceError


def register(subparsers) -> None:
    tf = subparsers.add_parser("tf", help="Nebius Token Factory: launch, status, cancel, deploy, models, chat")
    commands = tf.add_subparsers(dest="tf_command", metavar="COMMAND")
    tf.set_defaults(handler=lambda args: (tf.print_help(), 2)[1])

    launch = commands.add_parser("launch", help="check a dataset, upload it and start a fine-tuning job")
    launch.add_argument("--dataset", required=True, help="training data (JSONL, JSON, CSV or Parquet)")
    launch.add_argument("--validation", help="validation data (a 10-20%% split is advised)")
    launch.add_argument("--model", default="meta-llama/Llama-3.1-8B-Instruct", help="base model (see `tf models`)")
    launch.add_argument("--epochs", type=int, default=3)
    launch.add_argument("--learning-rate", type=float, default=1e-5)
    launch.add_argument("--batch-size", type=int)
    launch.add_argument("--lora", action=argparse.BooleanOptionalAction, default=True,
                        help="train a LoRA adapter (deployable serverlessly); --no-lora: full weights")
    launch.add_argument("--lora-r", type=int, default=16)
    launch.add_argument("--lora-alpha", type=int, default=16)
    launch.add_argument("--lora-dropout", type=float, default=0.05)
    launch.add_argument("--packing", action=argparse.BooleanOptionalAction, default=True)
    launch.add_argument("--context-length", type=int)
    launch.add_argument("--suffix", help="added to the model's name (at most 64 characters)")
    launch.add_argument("--seed", type=int)
    launch.add_argument("--name", help="a name for the job in legalft (default: the suffix)")
    launch.add_argument("--from-checkpoint", metavar="JOB:CKPT|ORG/REPO",
                        help="continue from an earlier job's checkpoint (ids from `tf status`) or a Hugging Face repo")
    launch.add_argument("--integration", dest="integrations", action="append", default=[],
                        choices=("wandb", "mlflow", "hf"),
                        help="report to W&B / MLflow or export to Hugging Face (settings from the environment)")
    launch.add_argument("--tag", dest="tags", action="append", default=[], help="a tag the service keeps (repeatable)")
    launch.add_argument("--wait", action="store_true", help="follow the job until it ends")
    launch.add_argument("--poll", type=float, default=15.0, metavar="SECONDS", help="status poll interval")
    add_budget_argument(launch)
    launch.set_defaults(handler=run_launch)

    status = commands.add_parser("status", help="sync and show a job: status, events, checkpoints, cost")
    status.add_argument("job", help="legalft job id (tf-...)")
    status.set_defaults(handler=run_status)

    cancel = commands.add_parser("cancel", help="cancel a running job")
    cancel.add_argument("job")
    cancel.set_defaults(handler=run_cancel)

    deploy = commands.add_parser("deploy", help="deploy a checkpoint of a job as a model you can chat with")
    deploy.add_argument("job")
    deploy.add_argument("--checkpoint", help="checkpoint id (default: the latest)")
    deploy.add_argument("--name", required=True, help="deployment name, e.g. uk-legal")
    deploy.add_argument("--description")
    deploy.add_argument("--wait", action="store_true", help="wait until the model is active (or fails)")
    deploy.add_argument("--poll", type=float, default=10.0, metavar="SECONDS")
    deploy.add_argument("--timeout", type=float, default=1800.0, metavar="SECONDS")
    deploy.set_defaults(handler=run_deploy)

    imported = commands.add_parser("import", help="download a checkpoint's files into a local model folder")
    imported.add_argument("job")
    imported.add_argument("--checkpoint", help="checkpoint id (default: the latest)")
    imported.set_defaults(handler=run_import)

    adapter = commands.add_parser("deploy-adapter", help="upload a local LoRA adapter and deploy it on the service")
    adapter.add_argument("folder", help="an adapter folder, a run folder or a local job id")
    adapter.add_argument("--name", required=True, help="deployment name, e.g. uk-legal")
    adapter.add_argument("--wait", action="store_true", help="wait until the model is active (or fails)")
    adapter.add_argument("--poll", type=float, default=10.0, metavar="SECONDS")
    adapter.set_defaults(handler=run_deploy_adapter)

    models = commands.add_parser("models", help="fine-tunable base models and your deployed models")
    models.add_argument("--delete", metavar="MODEL", help="delete a deployed model (its full name)")
    models.set_defaults(handler=run_models)

    chat = commands.add_parser("chat", help="ask a deployed (or base) model one question")
    chat.add_argument("model", help="the deployed model's full name")
    chat.add_argument("question")
    chat.add_argument("--max-tokens", type=int, default=512)
    chat.add_argument("--temperature", type=float, default=0.3)
    chat.add_argument("--no-stream", action="store_true", help="print the answer only when complete")
    chat.set_defaults(handler=run_chat)


def _fail(exc: Exception) -> int:
    print(f"legalft: error: {exc}", file=sys.stderr)
    return 1


def _job(job_id: str):
    from legalft.jobs import require_job

    try:
        return require_job(job_id)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def _print_preflight(label: str, report) -> None:
    sanitized = report.sanitize
    if sanitized:
        print(f"{label}: {sanitized['total_records']} records read, {sanitized['kept_records']} kept "
              f"({sanitized['repaired_records']} repaired), {sanitized['dropped_records']} dropped")
    if report.upload_path:
        print(f"  upload file: {report.upload_path} ({report.bytes / 1e6:.2f} MB, ~{report.estimated_tokens:,} tokens)")
    for warning in report.warnings:
        print(f"  warning: {warning}")
    for error in report.problems:
        print(f"  error: {error}")


def _print_job(job) -> None:
    from legalft.jobs import list_checkpoints

    progress = job.progress
    print(f"{job.id}  {job.status}  {job.base_model}  remote {job.remote_id or '-'}")
    if progress.get("total_steps"):
        print(f"  steps {progress.get('trained_steps') or 0}/{progress['total_steps']}"
              f"  trained tokens {progress.get('trained_tokens') or 0:,}")
    if progress.get("estimated_finish") and not job.is_terminal:
        print(f"  estimated finish {progress['estimated_finish']}")
    if job.estimated_cost is not None:
        print(f"  estimated cost ${job.estimated_cost:.4f}")
    if job.actual_cost is not None:
        print(f"  cost ${job.actual_cost:.4f} (trained tokens x training price)")
    if job.error:
        print(f"  error: {job.error}")
    checkpoints = list_checkpoints(job.id)
    if checkpoints:
        print("  checkpoints:")
        for ckpt in checkpoints:
            metrics = ckpt["metrics"]
            losses = "  ".join(f"{k} {metrics[k]:.4f}" for k in ("train_loss", "valid_loss") if k in metrics)
            print(f"    {ckpt['checkpoint_id']}  step {ckpt['step']}  {losses}")


def run_launch(args: argparse.Namespace) -> int:
    from legalft import managed as tf

    try:
        config = tf.LaunchConfig(
            model=args.model, n_epochs=args.epochs, learning_rate=args.learning_rate, batch_size=args.batch_size,
            lora=args.lora, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
            packing=args.packing, context_length=args.context_length, suffix=args.suffix, seed=args.seed,
            from_checkpoint=args.from_checkpoint, integrations=args.integrations, tags=args.tags)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.poll <= 0:
        raise UsageError("--poll must be greater than 0")
    try:
        client = tf.TokenFactoryClient()
    except ServiceError as exc:
        return _fail(exc)
    reports = {}
    for label, path in (("training", args.dataset), ("validation", args.validation)):
        if path:
            reports[label] = tf.preflight_dataset(path)
            _print_preflight(label, reports[label])
    if not all(r.ok for r in reports.values()):
        print("legalft: error: the dataset breaks the service's rules; nothing was uploaded", file=sys.stderr)
        return 1
    from legalft import budget

    cost = reports["training"].estimated_cost(config.model, config.n_epochs)
    if cost is not None:
        print(f"estimated training cost: ${cost:.4f} ({config.n_epochs} epochs)")
    print(budget.headroom_text("managed", cost))
    shown = {"pct": -10}

    def progress(message: str, fraction: float | None) -> None:
        # Uploads report every chunk; print every 10% so a 5 GB file does not flood the terminal.
        pct = int((fraction or 0) * 100)
        if fraction is None or pct >= shown["pct"] + 10 or (pct >= 100 > shown["pct"]):
            shown["pct"] = pct
            print(f"  {message}" + (f" ({fraction:.0%})" if fraction is not None else ""), flush=True)

    try:
        with budget.maybe_override(args.over_budget):
            job = tf.launch_job(reports["training"], config, validation=reports.get("validation"), name=args.name,
                                client=client, progress=progress)
    except ServiceError as exc:
        return _fail(exc)
    print(f"launched {job.id} (remote {job.remote_id}); follow it with `legalft tf status {job.id}`")
    if not args.wait:
        return 0
    seen = {"status": None, "events": 0}

    def on_update(job) -> None:
        from legalft.jobs import list_events

        events = list_events(job.id)
        for event in events[seen["events"]:]:
            print(f"  {event['created_at']}  {event['level']:<5}  {event['message']}")
        seen["events"] = len(events)
        if job.status != seen["status"]:
            fraction = job.progress.get("fraction")
            print(f"status: {job.status}" + (f" ({fraction:.0%})" if fraction is not None else ""), flush=True)
            seen["status"] = job.status

    try:
        job = tf.wait_for_job(job.id, poll_seconds=args.poll, client=client, on_update=on_update)
    except ServiceError as exc:
        return _fail(exc)
    _print_job(job)
    print(f"final status: {job.status}")
    return 0 if job.status == "succeeded" else 1


def run_status(args: argparse.Namespace) -> int:
    from legalft import managed as tf
    from legalft.jobs import list_events

    job = _job(args.job)
    code = 0
    try:
        job = tf.sync_job(job.id)
    except ServiceError as exc:
        print(f"legalft: error: {exc}; showing what was recorded locally", file=sys.stderr)
        code = 1
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    _print_job(job)
    events = list_events(job.id)
    if events:
        print("  events:")
        for event in events[-20:]:
            print(f"    {event['created_at']}  {event['level']:<5}  {event['message']}")
    return code


def run_cancel(args: argparse.Namespace) -> int:
    from legalft import managed as tf

    job = _job(args.job)
    was = job.status
    try:
        job = tf.cancel_job(job.id)
    except ServiceError as exc:
        return _fail(exc)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if was == job.status and job.is_terminal:
        print(f"{job.id} had already ended ({job.status}); nothing to cancel")
    else:
        print(f"{job.id}: {job.status}")
    return 0


def run_deploy(args: argparse.Namespace) -> int:
    from legalft import managed as tf

    job = _job(args.job)
    try:
        endpoint = tf.deploy_checkpoint(job.id, name=args.name, checkpoint_id=args.checkpoint,
                                        description=args.description)
        print(f"deploying {endpoint.details.get('source')} as {endpoint.model}: {endpoint.status}", flush=True)
        if args.wait:
            endpoint = tf.poll_deployment(endpoint.model, wait=True, timeout=args.timeout, poll_seconds=args.poll)
    except ServiceError as exc:
        return _fail(exc)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"{endpoint.model}: {endpoint.status}")
    if endpoint.status == "error":
        print(f"legalft: error: the deployment failed: {endpoint.details.get('status_reason') or 'no reason given'}",
              file=sys.stderr)
        return 1
    if endpoint.status == "active":
        try:
            answer = tf.smoke_test(endpoint.model)
        except ServiceError as exc:
            return _fail(exc)
        print(f"smoke test: {tf.SMOKE_TEST_QUESTION}\n  {answer.text}")
        print(f'chat with it: legalft tf chat "{endpoint.model}" "your question"')
    return 0


def run_import(args: argparse.Namespace) -> int:
    from legalft.models import import_checkpoint

    job = _job(args.job)
    try:
        model = import_checkpoint(job.id, args.checkpoint)
    except ServiceError as exc:
        return _fail(exc)
    said = "already there" if model.already_there else f"downloaded {len(model.files)} files"
    print(f"{model.checkpoint_id} of {job.id}: {said} in {model.path}")
    print(f"serve it: legalft serve start {model.path}")
    return 0


def run_deploy_adapter(args: argparse.Namespace) -> int:
    from pathlib import Path

    from legalft import managed as tf
    from legalft.models import deploy_adapter
    from legalft.train.tracking import resolve_init_adapter

    try:
        folder = resolve_init_adapter(args.folder) if not Path(args.folder, "adapter_config.json").is_file() \
            else Path(args.folder)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        endpoint = deploy_adapter(folder, name=args.name)
        print(f"deploying {folder} as {endpoint.model}: {endpoint.status}", flush=True)
        if args.wait:
            endpoint = tf.poll_deployment(endpoint.model, wait=True, poll_seconds=args.poll)
    except ServiceError as exc:
        return _fail(exc)
    print(f"{endpoint.model}: {endpoint.status}")
    return 1 if endpoint.status == "error" else 0


def run_models(args: argparse.Namespace) -> int:
    from legalft import managed as tf

    client = None
    try:
        client = tf.TokenFactoryClient()
    except ServiceError as exc:
        print(f"({exc}; showing the shipped catalogue only)")
    if args.delete:
        if client is None:
            return 1
        try:
            tf.delete_model(args.delete, client=client)
        except ServiceError as exc:
            return _fail(exc)
        print(f"deleted {args.delete}")
        return 0
    catalogue = tf.refresh_model_catalogue(client) if client else tf.load_model_catalogue()
    refreshed = f", checked against the API {catalogue.refreshed_at}" if catalogue.refreshed_at else ""
    print(f"fine-tunable base models (catalogue of {catalogue.as_of}{refreshed}):")
    for model in catalogue.models:
        kinds = "/".join(k for k, on in (("LoRA", model.lora), ("full", model.full)) if on)
        served = {True: "", False: "  (not listed by the API now)", None: ""}[model.served]
        print(f"  {model.id:<40} {kinds:<10} deploy as {model.deploy_as}{served}")
    if catalogue.refresh_error:
        print(f"  (could not refresh: {catalogue.refresh_error})")
    if client is None:
        return 0
    try:
        deployed = tf.list_models(client)
    except ServiceError as exc:
        return _fail(exc)
    print("deployed models:" if deployed else "no deployed models")
    for item in deployed:
        reason = f"  ({item['status_reason']})" if item.get("status_reason") else ""
        print(f"  {item.get('name')}  {item.get('status')}{reason}")
    return 0


def run_chat(args: argparse.Namespace) -> int:
    from legalft import managed as tf

    def write(token: str) -> None:
        print(token, end="", flush=True)

    try:
        answer = tf.chat(args.model, args.question, max_tokens=args.max_tokens, temperature=args.temperature,
                         on_token=None if args.no_stream else write)
    except ServiceError as exc:
        return _fail(exc)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(answer.text if args.no_stream else "")
    return 0
