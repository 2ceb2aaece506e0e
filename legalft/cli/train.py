"""``legalft train``, ``legalft jobs``, ``legalft merge``, ``legalft smoke-model``: local fine-tuning."""

from __future__ import annotations

import argparse
import json
import sys
import time

from legalft.cli import UsageError
from legalft.cli.access import add_budget_argument


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train", help="start a local fine-tuning job (TRL + PEFT) from a recipe or a config file",
        description="Start a detached local training job. It survives closing the terminal; follow it with"
                    " `legalft jobs show ID` or pass --wait.",
    )
    source = train.add_mutually_exclusive_group()
    source.add_argument("--recipe", help="a recipe name (see --list-recipes) or a recipe .yaml file")
    source.add_argument("--config", help="a TrainConfig .yaml file")
    train.add_argument("--dataset", help="training JSONL (messages, prompt/completion or text records)")
    train.add_argument("--validation", help="validation JSONL in the same format")
    train.add_argument("--model", help="base model: Hub id or local folder (overrides the recipe)")
    train.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting, e.g. --set sft.learning_rate=2e-4 --set lora.r=8 --set method=qlora")
    train.add_argument("--name", help="a label for the run")
    train.add_argument("--wait", action="store_true", help="follow the job until it ends; exit 0 if it succeeded")
    train.add_argument("--estimate", action="store_true",
                       help="print the memory estimate for this machine and exit without training")
    train.add_argument("--no-check", action="store_true", help="skip the preflight checks (not recommended)")
    train.add_argument("--list-recipes", action="store_true", help="list the bundled recipes and exit")
    add_target_arguments(train)
    add_budget_argument(train)
    train.set_defaults(handler=cmd_train)

    jobs = subparsers.add_parser("jobs", help="list, show, follow, cancel and resume jobs (both paths)")
    commands = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    listing = commands.add_parser("list", help="jobs, newest first (local runs are refreshed first)")
    listing.add_argument("--path", choices=("local", "token_factory"), help="only this path")
    listing.add_argument("--limit", type=int, default=30)
    listing.set_defaults(handler=cmd_jobs_list)
    show = commands.add_parser("show", help="a job's status, progress, outputs and error")
    show.add_argument("job_id")
    show.add_argument("--json", action="store_true", help="print the job as JSON")
    show.set_defaults(handler=cmd_jobs_show)
    logs = commands.add_parser("logs", help="the end of a local job's log")
    logs.add_argument("job_id")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    logs.set_defaults(handler=cmd_jobs_logs)
    cancel = commands.add_parser("cancel", help="stop a local job (its whole process group)")
    cancel.add_argument("job_id")
    cancel.set_defaults(handler=cmd_jobs_cancel)
    resume = commands.add_parser("resume", help="continue a failed or cancelled local job from its last checkpoint")
    resume.add_argument("job_id")
    resume.add_argument("--wait", action="store_true", help="follow the job until it ends")
    resume.set_defaults(handler=cmd_jobs_resume)
    close = commands.add_parser("close", help="mark a job that cannot be followed any more as failed (a managed job "
                                "the service no longer knows)")
    close.add_argument("job_id")
    close.add_argument("--reason", help="recorded as the job's error")
    close.set_defaults(handler=cmd_jobs_close)
    jobs.set_defaults(handler=lambda args: _help(jobs))

    merge = subparsers.add_parser("merge", help="merge a local job's adapter into full weights, with a parity check")
    merge.add_argument("job_id")
    merge.add_argument("--force", action="store_true", help="merge again even if already merged")
    merge.set_defaults(handler=cmd_merge)

    smoke = subparsers.add_parser("smoke-model", help="build the tiny offline test model and tokenizer")
    smoke.add_argument("out_dir")
    smoke.set_defaults(handler=cmd_smoke_model)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _config_problems(exc: Exception) -> UsageError:
    problems = getattr(exc, "problems", None) or [str(exc)]
    return UsageError("the training config cannot run:\n  - " + "\n  - ".join(problems))


def _require(job_id: str):
    from legalft.jobs import require_job

    try:
        return require_job(job_id)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from exc


def _progress_line(job) -> str:
    p = job.progress or {}
    parts = [job.status]
    if p.get("phase") and job.status == "running":
        parts.append(p["phase"])
    if p.get("step") is not None:
        parts.append(f"step {p['step']}/{p.get('total_steps') or '?'}")
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p.get("eval_loss") is not None:
        parts.append(f"eval {p['eval_loss']:.4f}")
    if p.get("tokens_per_second"):
        parts.append(f"{p['tokens_per_second']:.0f} tok/s")
    return "  ".join(parts)


def _follow(job_id: str) -> int:
    from legalft.train import wait_for_job

    last = [""]

    def show(job) -> None:
        line = _progress_line(job)
        if line != last[0]:
            print(f"{job.id}: {line}", flush=True)
            last[0] = line

    job = wait_for_job(job_id, poll_seconds=1.0, on_update=show)
    if job.status == "succeeded":
        print(f"adapter: {job.output.get('adapter')}")
        return 0
    if job.error:
        print(f"error: {job.error}", file=sys.stderr)
    return 1


def cmd_train(args) -> int:
    from legalft.train import (
        TrainConfig,
        TrainConfigError,
        detect_hardware,
        estimate_memory,
        list_recipes,
        load_recipe,
        parse_override,
        start_training,
    )

    if args.list_recipes:
        for info in list_recipes():
            print(f"{info.name:24} {info.method:9} {info.base_model:40} {info.description}")
        return 0
    if not args.recipe and not args.config:
        raise UsageError("give --recipe NAME or --config FILE (`legalft train --list-recipes` lists recipes)")
    try:
        config = load_recipe(args.recipe) if args.recipe else TrainConfig.load(args.config)
        overrides = dict(parse_override(text) for text in args.overrides)
        if args.model:
            overrides["base_model"] = args.model
        if overrides:
            config = config.with_overrides(overrides)
    except TrainConfigError as exc:
        raise _config_problems(exc) from exc

    if args.estimate:
        hardware = detect_hardware()
        estimate = estimate_memory(config, hardware)
        print(f"machine: {hardware.describe()}")
        if estimate.fits is None:
            print("\n".join(estimate.notes))
            return 1
        print(f"{config.base_model} ({estimate.params_billion:.2f} B parameters), {config.method},"
              f" {estimate.trainable_params_million:.1f} M trainable, on {estimate.device}")
        for name, gib in estimate.components().items():
            print(f"  {name:16} {gib:8.2f} GiB")
        print(f"  {'total':16} {estimate.total_gib:8.2f} GiB of {estimate.available_gib:.1f} GiB:"
              f" {'fits' if estimate.fits else 'does NOT fit'}")
        for note in estimate.notes:
            print(f"note: {note}")
        if estimate.suggestion:
            print(f"suggestion: {estimate.suggestion}")
        return 0 if estimate.fits else 1

    from legalft import budget
    from legalft.costs import launch_gpu_cost

    target = target_from_args(args)
    cost = launch_gpu_cost(target)
    estimate = round(cost.cost, 2)
    print(f"one-time GPU cost: ${estimate:,.2f} ({cost.basis})")
    print(budget.headroom_text("gpu", estimate))
    try:
        with budget.maybe_override(args.over_budget):
            job = start_training(config, args.dataset, validation_path=args.validation, name=args.name,
                                 check=not args.no_check, target=target, estimated_cost=estimate)
    except TrainConfigError as exc:
        raise _config_problems(exc) from exc
    where = f" on {target.describe()}" if target.is_remote else ""
    print(f"started {job.id}  ({config.base_model}, {config.method}){where}")
    print(f"run directory: {job.run_dir}")
    print(f"follow it: legalft jobs show {job.id}   logs: legalft jobs logs {job.id} -f")
    if args.wait:
        return _follow(job.id)
    return 0


def add_target_arguments(parser, with_target: bool = True) -> None:
    """Where to train: shared by `legalft train` and `legalft targets check`."""
    group = parser.add_argument_group("where to train")
    if with_target:
        group.add_argument("--target", default="local",
                           help="local (default), ssh:HOST (an ssh_config alias or user@host[:port]) or "
                                "skypilot:INFRA (e.g. skypilot:nebius/eu-north1)")
    group.add_argument("--remote-root", help="ssh: the folder on the host (default ~/legalft)")
    group.add_argument("--remote-python", help="ssh: a python on the host that already has the pinned set "
                                               "(default: legalft builds REMOTE_ROOT/venv once)")
    group.add_argument("--accelerators", help="skypilot: GPU type and count, e.g. H100:1 or H200:8")
    group.add_argument("--spot", action="store_true", help="skypilot: a spot instance (cheaper, may be preempted)")
    group.add_argument("--idle-minutes", type=int, help="skypilot: autostop after this many idle minutes")
    group.add_argument("--after", choices=("release", "merge", "serve"), default="release",
                       help="once training ends: release the GPU (default), merge on it first, or serve there")
    group.add_argument("--serve-idle-minutes", type=float,
                       help="--after serve: stop the server after this many minutes without a request (default 30)")
    group.add_argument("--hourly-rate", type=float, help="what the GPU costs per hour, for the run's cost")


def target_from_args(args):
    from legalft.targets import parse_target

    options = {"remote_root": args.remote_root, "remote_python": args.remote_python,
               "accelerators": args.accelerators, "idle_minutes": args.idle_minutes, "after": args.after,
               "hourly_rate": args.hourly_rate, "serve_idle_minutes": args.serve_idle_minutes}
    if args.spot:
        options["use_spot"] = True
    kind = (args.target or "local").split(":", 1)[0]
    allowed = {"ssh": ("remote_root", "remote_python", "after", "hourly_rate", "serve_idle_minutes"),
               "skypilot": ("accelerators", "idle_minutes", "after", "use_spot", "hourly_rate", "serve_idle_minutes"),
               "local": ("after",)}.get(kind, ())
    given = {k for k, v in options.items() if v is not None and k != "after"}
    if options["serve_idle_minutes"] is not None and args.after != "serve":
        raise UsageError("--serve-idle-minutes applies to --after serve only")
    stray = sorted(given - set(allowed))
    if stray:
        flags = ", ".join("--" + k.replace("_", "-").replace("use-", "") for k in stray)
        raise UsageError(f"{flags} do(es) not apply to the {kind} target")
    return parse_target(args.target, **{k: v for k, v in options.items() if k in allowed})


def cmd_jobs_list(args) -> int:
    from legalft.jobs import list_jobs
    from legalft.train import reconcile_jobs

    reconcile_jobs()
    jobs = list_jobs(path=args.path, limit=args.limit)
    if not jobs:
        print("no jobs yet: `legalft train --recipe smoke --dataset FILE` starts one")
        return 0
    print(f"{'id':30} {'path':13} {'status':10} {'progress':14} {'base model':36} created")
    for job in jobs:
        p = job.progress or {}
        progress = f"{p.get('step', '')}/{p.get('total_steps', '')}" if p.get("step") is not None else \
            str(p.get("trained_steps", ""))
        print(f"{job.id:30} {job.path:13} {job.status:10} {progress:14} {str(job.base_model or '')[:36]:36}"
              f" {job.created_at}")
    return 0


def cmd_jobs_show(args) -> int:
    from dataclasses import asdict

    from legalft.train import refresh_job

    job = _require(args.job_id)
    if job.path == "local":
        job = refresh_job(job.id)
    if args.json:
        print(json.dumps(asdict(job), indent=2, sort_keys=True, default=str))
        return 0
    print(f"{job.id}  [{job.path}]  {_progress_line(job)}")
    for label, value in (("name", job.name), ("base model", job.base_model), ("dataset", job.dataset_path),
                         ("run dir", job.run_dir), ("remote id", job.remote_id), ("created", job.created_at),
                         ("started", job.started_at), ("finished", job.finished_at)):
        if value:
            print(f"  {label:11} {value}")
    for key, value in sorted((job.output or {}).items()):
        print(f"  {key:11} {value}")
    if job.error:
        print(f"error: {job.error}")
    return 0


def cmd_jobs_logs(args) -> int:
    from legalft.train import read_log_tail, refresh_job

    job = _require(args.job_id)
    if job.path != "local" or not job.run_dir:
        raise UsageError(f"job {job.id} runs on Token Factory: `legalft tf status {job.id}` shows its events")
    text = read_log_tail(job.run_dir, args.lines)
    print(text)
    if not args.follow:
        return 0
    shown = text
    while True:
        job = refresh_job(job.id)
        text = read_log_tail(job.run_dir, args.lines)
        if text != shown:
            # Print only what is new since the last look (lines after the last one shown).
            old = shown.splitlines()
            new = text.splitlines()
            anchor = old[-1] if old else None
            start = len(new) - new[::-1].index(anchor) if anchor in new else 0
            for line in new[start:]:
                print(line)
            shown = text
        if job.is_terminal:
            print(f"-- job {job.status}")
            return 0 if job.status == "succeeded" else 1
        time.sleep(1.0)


def cmd_jobs_cancel(args) -> int:
    from legalft.train import JobStateError, cancel_job

    job = _require(args.job_id)
    was_terminal = job.is_terminal
    try:
        job = cancel_job(job.id)
    except JobStateError as exc:
        print(f"legalft: {exc}", file=sys.stderr)
        return 1
    if was_terminal:
        print(f"{job.id} had already ended: {job.status}")
    else:
        print(f"{job.id}: {job.status}. `legalft jobs resume {job.id}` continues from the last checkpoint.")
    return 0


def cmd_jobs_close(args) -> int:
    from legalft.jobs import close_job

    job = _require(args.job_id)
    if job.is_terminal:
        print(f"{job.id} had already ended: {job.status}")
        return 0
    if job.path == "token_factory":
        from legalft.managed import close_job as close_managed

        job = close_managed(job.id, args.reason)
    else:
        from legalft.train import refresh_job

        if refresh_job(job.id).status == "running":
            raise UsageError(f"{job.id} is running: `legalft jobs cancel {job.id}` stops it")
        job = close_job(job.id, args.reason or "closed by the user")
    print(f"{job.id}: {job.status} ({job.error})")
    return 0


def cmd_jobs_resume(args) -> int:
    from legalft.train import JobStateError, resume_job

    job = _require(args.job_id)
    try:
        job = resume_job(job.id)
    except JobStateError as exc:
        print(f"legalft: {exc}", file=sys.stderr)
        return 1
    from legalft.train import find_checkpoints

    checkpoints = find_checkpoints(job.run_dir)
    step = checkpoints[-1][0] if checkpoints else None
    print(f"resumed {job.id}" + (f" from the checkpoint at step {step}" if step else " from the start"))
    if args.wait:
        return _follow(job.id)
    return 0


def cmd_merge(args) -> int:
    from legalft.train import JobStateError, merge_run

    job = _require(args.job_id)
    try:
        report = merge_run(job.id, force=args.force)
    except JobStateError as exc:
        print(f"legalft: {exc}", file=sys.stderr)
        return 1
    print(report.message)
    for check in report.parity:
        mark = "same" if check["match"] else "DIFFERENT"
        print(f"  [{mark}] {check['prompt'][:70]}")
    return 0 if report.parity_ok is not False else 1


def cmd_smoke_model(args) -> int:
    from legalft.train import build_smoke_model

    path = build_smoke_model(args.out_dir)
    print(f"smoke model written to {path}: train on it with"
          f" `legalft train --recipe smoke --model {path} --dataset FILE`")
    return 0
