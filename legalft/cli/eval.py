"""`legalft eval ...`: evaluate endpoints on held-out questions (resumable runs stored in SQLite)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legalft.cli import UsageError


def register(subparsers) -> None:
    ev = subparsers.add_parser("eval", help="evaluate endpoints (base against fine-tuned, grounded or not)")
    commands = ev.add_subparsers(dest="eval_command", metavar="COMMAND")
    ev.set_defaults(handler=lambda args: (ev.print_help(), 2)[1])

    run = commands.add_parser("run", help="start an evaluation run and ask every question")
    source = run.add_mutually_exclusive_group(required=True)
    source.add_argument("--file", help="questions with reference answers (any dataset format the Dataset page reads)")
    source.add_argument("--validation", metavar="DATASET", help="the validation split of a dataset, grouped by Act")
    source.add_argument("--generate", type=int, metavar="N", help="N questions generated from the statute index")
    run.add_argument("--endpoint", action="append", default=[], metavar="ID",
                     help="an endpoint to evaluate (id, name or model); repeatable")
    run.add_argument("--base", metavar="ID", help="the base model's endpoint, compared with the others")
    run.add_argument("--grounded", choices=("off", "on", "both"), default="off",
                     help="ask with retrieved provisions as context (both: each endpoint twice)")
    run.add_argument("--k", type=int, default=4, help="provisions retrieved for a grounded answer")
    run.add_argument("--limit", type=int, help="ask at most this many questions")
    run.add_argument("--val-fraction", type=float, default=0.1)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--concurrency", type=int, default=4)
    run.add_argument("--max-tokens", type=int, default=512)
    run.add_argument("--temperature", type=float, default=0.0)
    run.add_argument("--timeout", type=float, default=120.0)
    run.add_argument("--judge", metavar="ID", help="an endpoint that grades each answer (LLM as judge)")
    run.add_argument("--name")
    run.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    run.set_defaults(handler=run_run)

    cont = commands.add_parser("continue", help="ask the questions a run has not answered yet (failed ones again)")
    cont.add_argument("run_id")
    cont.add_argument("--json", action="store_true")
    cont.set_defaults(handler=run_continue)

    ls = commands.add_parser("list", help="evaluation runs, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=run_list)

    show = commands.add_parser("show", help="a run's comparison table")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_show)

    export = commands.add_parser("export", help="a run as CSV (one line per question and target)")
    export.add_argument("run_id")
    export.add_argument("--out", required=True)
    export.set_defaults(handler=run_export)

    card = commands.add_parser("card", help="a one-page markdown run card for one target")
    card.add_argument("run_id")
    card.add_argument("--target", help="the target's label (default: the first)")
    card.add_argument("--out")
    card.set_defaults(handler=run_card)


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total} answered", end="" if done < total else "\n", file=sys.stderr, flush=True)


def _print_summary(run, as_json: bool) -> None:
    from legalft.evaluate.report import comparison_rows

    if as_json:
        print(json.dumps({"id": run.id, "status": run.status, "questions": len(run.items),
                          "done": run.done, "failed": run.failed, "summary": run.summary}))
        return
    print(f"run {run.id}: {run.status}, {run.done} of {run.total} answers ({run.failed} failed)")
    for row in comparison_rows(run):
        print(f"  {row['target']}: F1 {row['token F1']}, ROUGE-L {row['ROUGE-L']}, invented {row['invented citations']},"
              f" unverifiable {row['unverifiable citations']}, p50 {row['latency p50 (s)']} s")
    failures = [a for a in run.answers if a["status"] == "failed"][:5]
    for answer in failures:
        print(f"  failed: {answer['label']} question {answer['idx']}: {answer['error']}")
    if run.failed:
        print(f"continue with: legalft eval continue {run.id}")


def run_run(args: argparse.Namespace) -> int:
    from legalft.chat import resolve_endpoint
    from legalft.errors import ServiceError
    from legalft.evaluate import sets
    from legalft.evaluate.runs import EvalConfig, EvalTarget, create_run, run_evaluation
    from legalft.legal.index import default_index

    if not args.endpoint and not args.base:
        raise UsageError("name at least one --endpoint (or --base)")
    try:
        config = EvalConfig(max_tokens=args.max_tokens, temperature=args.temperature, k=args.k,
                            concurrency=args.concurrency, timeout=args.timeout,
                            judge_endpoint_id=resolve_endpoint(args.judge).id if args.judge else None)
        refs = [(e, "fine-tuned" if args.base else None) for e in args.endpoint]
        if args.base:
            refs.insert(0, (args.base, "base"))
        groundings = {"off": [False], "on": [True], "both": [False, True]}[args.grounded]
        targets = [EvalTarget(resolve_endpoint(ref).id, grounded=g, role=role) for ref, role in refs for g in groundings]
    except (ServiceError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    index = default_index()
    try:
        if args.file:
            evalset = sets.load_file_set(args.file, limit=args.limit)
        elif args.validation:
            evalset = sets.load_validation_set(args.validation, val_fraction=args.val_fraction, seed=args.seed,
                                               limit=args.limit)
        else:
            evalset = sets.generate_legislation_set(index, questions=args.generate, seed=args.seed)
    except OSError as exc:
        print(f"legalft: cannot read the evaluation set: {exc}", file=sys.stderr)
        return 1
    if evalset.description.get("dropped"):
        print(f"{evalset.description['dropped']} of {evalset.description['read']} records dropped while reading "
              "the set (kept with line and reason beside the run)", file=sys.stderr)
    try:
        run_id = create_run(evalset, targets, config, name=args.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"run {run_id}: {len(evalset.items)} questions × {len(targets)} targets", file=sys.stderr)
    run = run_evaluation(run_id, progress=_progress, index=index)
    _print_summary(run, args.json)
    return 0 if run.status == "succeeded" else 1


def run_continue(args: argparse.Namespace) -> int:
    from legalft.evaluate.runs import load_run, run_evaluation

    try:
        load_run(args.run_id)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    run = run_evaluation(args.run_id, progress=_progress)
    _print_summary(run, args.json)
    return 0 if run.status == "succeeded" else 1


def run_list(args: argparse.Namespace) -> int:
    from legalft.evaluate.runs import list_runs

    runs = list_runs()
    if args.json:
        print(json.dumps(runs))
        return 0
    for run in runs:
        print(f"{run['id']}  {run['status']:<10} {run['questions']:>5} questions  {run['created_at']}  {run['targets']}")
    return 0


def _load(run_id: str):
    from legalft.evaluate.runs import load_run

    try:
        return load_run(run_id)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def run_show(args: argparse.Namespace) -> int:
    _print_summary(_load(args.run_id), args.json)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from legalft.evaluate.report import to_csv

    Path(args.out).write_text(to_csv(_load(args.run_id)), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


def run_card(args: argparse.Namespace) -> int:
    from legalft.evaluate.report import run_card as card_of

    run = _load(args.run_id)
    labels = [t["label"] for t in run.targets]
    label = args.target or labels[0]
    if label not in labels:
        raise UsageError(f"no target {label!r} in {run.id}; targets: {', '.join(labels)}")
    text = card_of(run, label)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0
