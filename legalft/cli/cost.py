"""``legalft cost``: monthly costs of both paths for a usage scenario, and one-time fine-tuning costs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legalft.cli import UsageError

DEFAULT_BASE_MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def register(subparsers: argparse._SubParsersAction) -> None:
    cost = subparsers.add_parser("cost", help="cost planner: managed service against your own GPU")
    commands = cost.add_subparsers(dest="cost_command", metavar="COMMAND")
    cost.set_defaults(handler=lambda args: cost.print_help() or 2)

    scenario = commands.add_parser(
        "scenario",
        help="monthly cost of each path, break-even volume and GPUs needed",
        description="Monthly cost of the managed service and of your own GPU (24/7, business hours and "
        "optionally custom hours), the break-even volume for each, and the GPUs the load needs. "
        "Prices you leave out come from the catalogue, with your saved overrides.",
    )
    scenario.add_argument("--queries-per-day", type=float, required=True, metavar="N")
    scenario.add_argument("--input-tokens", type=float, required=True, metavar="N", help="prompt tokens per query")
    scenario.add_argument("--output-tokens", type=float, required=True, metavar="N", help="answer tokens per query")
    scenario.add_argument("--days-per-month", type=float, default=30, metavar="N", help="default 30")
    scenario.add_argument("--gpu-hourly", type=float, metavar="USD", help="one GPU per hour (default: catalogue)")
    scenario.add_argument("--gpus", type=int, default=1, metavar="N", help="GPUs rented at least (default 1)")
    scenario.add_argument("--business-hours", type=float, default=8, metavar="H", help="hours a day (default 8)")
    scenario.add_argument("--working-days", type=float, default=20, metavar="N", help="days a month (default 20)")
    scenario.add_argument("--custom-hours", type=float, metavar="H", help="also cost a GPU billed H hours a month")
    scenario.add_argument("--input-price", type=float, metavar="USD", help="managed: per 1M input tokens")
    scenario.add_argument("--output-price", type=float, metavar="USD", help="managed: per 1M output tokens")
    scenario.add_argument("--blended-price", type=float, metavar="USD", help="managed: one price per 1M tokens")
    scenario.add_argument(
        "--managed-model", metavar="MODEL", help=f"whose catalogue prices to use (default {DEFAULT_BASE_MODEL})"
    )
    scenario.add_argument(
        "--gpu-tokens-per-second", type=float, metavar="X",
        help="generation throughput of one replica (default: planned for the model, GPU and precision)"
    )
    scenario.add_argument("--gpu-offer", metavar="KEY", help="GPU price to use (a gpu_hourly key of the catalogue)")
    scenario.add_argument("--precision", default="bf16", choices=["bf16", "fp8", "int4"], help="served weights (default bf16)")
    scenario.add_argument(
        "--demand", choices=["24_7", "business_hours", "custom"], default="custom",
        help="when queries arrive: around the clock, in business hours on working days, or --load-hours a day on "
             "--demand-days days (default custom)"
    )
    scenario.add_argument(
        "--load-hours", type=float, metavar="H", help="custom demand: hours a day in which the queries arrive (default: --business-hours)"
    )
    scenario.add_argument("--demand-days", type=float, metavar="N", help="custom demand: days a month (default --days-per-month)")
    scenario.add_argument("--report", metavar="FILE.md",
                          help="also write a one-page markdown report: scenario, assumptions with sources and dates, "
                               "result, where the answer flips")
    scenario.add_argument("--json", action="store_true", help="print one JSON object")
    scenario.set_defaults(handler=run_scenario)

    training = commands.add_parser(
        "training",
        help="one-time fine-tuning cost on each path for a dataset",
        description="Managed fine-tuning = trained tokens as the service counts them (the base model's chat "
        "template, packing, and the service's own count calibrated on a real bill) × price per 1M training "
        "tokens; your own GPU = billed minutes (setup, training, merge, server start) × hourly rate. "
        "The Train and Costs pages show the same figures for the same inputs.",
    )
    training.add_argument("--dataset", required=True, metavar="FILE", help="a JSONL training file")
    training.add_argument("--epochs", type=float, required=True, metavar="N")
    training.add_argument(
        "--price-per-million", type=float, metavar="USD", help="per 1M training tokens (default: catalogue, by base model)"
    )
    training.add_argument("--base-model", default=DEFAULT_BASE_MODEL, metavar="MODEL",
                          help="selects the chat template and the price tier")
    training.add_argument(
        "--tokenizer", metavar="NAME_OR_PATH", help="count tokens with this tokenizer (default: calibrated approximation)"
    )
    training.add_argument("--context-length", "--max-length", type=int, dest="context_length", metavar="N",
                          help="sequence length (default: the service's 8192)")
    training.add_argument("--no-packing", action="store_true", help="records are cut at the context length, not packed")
    training.add_argument("--gpu-hourly", type=float, metavar="USD", help="one GPU per hour (default: catalogue)")
    training.add_argument("--setup-minutes", type=float, default=25, metavar="M", help="default 25")
    training.add_argument("--training-minutes", type=float, metavar="M", help="default 10, or from --train-tokens-per-second")
    training.add_argument(
        "--train-tokens-per-second", type=float, metavar="X", help="measured training throughput: estimates the minutes"
    )
    training.add_argument("--merge-minutes", type=float, default=8, metavar="M", help="default 8")
    training.add_argument("--serve-minutes", type=float, default=4, metavar="M", help="server start, default 4")
    training.add_argument("--json", action="store_true", help="print one JSON object")
    training.set_defaults(handler=run_training)


def run_scenario(args: argparse.Namespace) -> int:
    from legalft import costs

    if args.blended_price is not None and (args.input_price is not None or args.output_price is not None):
        raise UsageError("give --input-price and --output-price, or --blended-price, not both")
    prices = costs.effective_prices()
    try:
        load_hours, demand_days = costs.demand_profile(
            args.demand,
            custom_hours_per_day=args.load_hours if args.load_hours is not None else args.business_hours,
            custom_days_per_month=args.demand_days if args.demand_days is not None else args.days_per_month,
            business_hours_per_day=args.business_hours, working_days_per_month=args.working_days,
            days_in_month=args.days_per_month)
        scenario = costs.build_scenario(
            prices,
            managed_model=args.managed_model,
            gpu_offer=args.gpu_offer,
            precision=args.precision,
            demand_days_per_month=demand_days,
            queries_per_day=args.queries_per_day,
            input_tokens_per_query=args.input_tokens,
            output_tokens_per_query=args.output_tokens,
            days_per_month=args.days_per_month,
            gpu_hourly=args.gpu_hourly,
            gpus=args.gpus,
            business_hours_per_day=args.business_hours,
            working_days_per_month=args.working_days,
            custom_hours_per_month=args.custom_hours,
            input_price_per_million=args.input_price,
            output_price_per_million=args.output_price,
            blended_price_per_million=args.blended_price,
            gpu_tokens_per_second=args.gpu_tokens_per_second,
            load_hours_per_day=load_hours,
        )
    except costs.ModelDoesNotFit as exc:
        print(f"legalft cost: your own GPU cannot serve this model: {exc}", file=sys.stderr)
        return 1
    except (ValueError, KeyError) as exc:
        raise UsageError(str(exc).strip("'\"")) from None
    estimate = costs.estimate_monthly_cost(scenario)
    summary = costs.scenario_summary(estimate)
    plan = None
    if args.gpu_tokens_per_second is None:
        plan = costs.serving_plan(prices, model=args.managed_model, gpu_offer=args.gpu_offer, precision=args.precision,
                                  context_tokens=args.input_tokens + args.output_tokens)
        summary["serving_plan"] = plan.to_dict()
    summary["flips"] = costs.flips(costs.sensitivity(scenario))
    if args.report:
        model = args.managed_model or prices.defaults["managed_model"]
        used = [args.gpu_offer or prices.defaults["gpu_hourly"], prices.defaults["gpu_tokens_per_second"]]
        if args.blended_price is None:
            used += [p.key for p in prices.managed_prices(model)]
        text = costs.scenario_report(estimate, prices, serving=plan, model=model, used_prices=used)
        Path(args.report).write_text(text, encoding="utf-8")
        summary["report"] = str(args.report)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    _print_scenario(summary)
    return 0


def _print_scenario(s: dict) -> None:
    from legalft import costs

    print(f"Tokens: {s['daily_tokens']:,.0f} a day ({s['daily_input_tokens']:,.0f} in, {s['daily_output_tokens']:,.0f} out), "
          f"{s['monthly_tokens']:,.0f} a month over {s['demand_days_per_month']:g} days")
    if s["managed_blended_price_per_million"] is not None:
        price = f"${s['managed_blended_price_per_million']:g} per 1M tokens, blended"
    else:
        price = f"${s['managed_input_price_per_million']:g} in / ${s['managed_output_price_per_million']:g} out per 1M tokens"
    print(f"Managed service ({price}, {s['demand_days_per_month']:g} days of queries): "
          f"{costs.format_money(s['managed_monthly'])} a month")
    if "serving_plan" in s:
        plan = s["serving_plan"]
        print(f"Serving plan: {plan['needed_gb']:,.1f} GB a replica on {plan['gpus_per_replica']} × {plan['gpu']} "
              f"({plan['usable_gb_per_gpu']:,.0f} GB usable each); {plan['tokens_per_second_per_replica']:,.0f} "
              f"tokens/s a replica ({plan['throughput_basis']})")
    if s["queries_per_gpu_per_day"] is not None:
        replica = "one GPU" if s["gpus_per_replica"] == 1 else f"one replica ({s['gpus_per_replica']} GPUs)"
        print(f"Capacity: {replica} at {s['gpu_tokens_per_second']:,.0f} tokens/s over {s['load_hours_per_day']:g} h "
              f"serves {s['queries_per_gpu_per_day']:,} queries a day; the load needs {s['gpus_needed']} GPU(s)")
    for mode, label in (("24_7", "24/7"), ("business_hours", "business hours"), ("custom", "custom hours")):
        if f"cloud_monthly_{mode}" not in s:
            continue
        break_even = s[f"break_even_queries_per_day_{mode}"]
        when = "never breaks even" if break_even is None else f"cheaper from {break_even:,} queries a day"
        if not s[f"covers_demand_{mode}"]:
            when = s[f"coverage_note_{mode}"]
        print(f"GPU {label} ({s[f'billed_hours_per_month_{mode}']:g} h × ${s['gpu_hourly']:g} × {s['gpus_billed']} GPU): "
              f"{costs.format_money(s[f'cloud_monthly_{mode}'])} a month; {when}")
    print(s["recommendation"])
    for change in s.get("flips", []):
        print(f"Flips: {change}")
    if s.get("report"):
        print(f"Report written to {s['report']}")


def run_training(args: argparse.Namespace) -> int:
    from legalft import costs

    path = Path(args.dataset)
    if not path.is_file():
        raise UsageError(f"no such dataset file: {path}")
    if args.epochs <= 0:
        raise UsageError("--epochs must be more than 0")
    if args.training_minutes is not None and args.train_tokens_per_second is not None:
        raise UsageError("give --training-minutes or --train-tokens-per-second, not both")
    prices = costs.effective_prices()
    if args.price_per_million is None and costs.training_price_per_million(args.base_model, prices) is None:
        raise UsageError(f"the catalogue has no fine-tuning price for {args.base_model}; give --price-per-million")
    try:
        tokens = costs.estimate_trained_tokens(
            path, model=args.base_model, epochs=args.epochs, packing=not args.no_packing,
            context_length=args.context_length, tokenizer=args.tokenizer)
    except (ValueError, RuntimeError, OSError) as exc:
        raise UsageError(str(exc)) from None
    managed = costs.estimate_managed_training(tokens, prices, args.price_per_million)
    try:
        minutes = costs.GpuMinutes(
            setup=args.setup_minutes,
            training=args.training_minutes if args.training_minutes is not None else costs.GpuMinutes().training,
            merge=args.merge_minutes, serve_start=args.serve_minutes)
        gpu = costs.one_time_gpu_cost(
            prices, hourly_rate=args.gpu_hourly, minutes=minutes, sequence_tokens=tokens.sequence_total,
            train_tokens_per_second=args.train_tokens_per_second)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    result = {
        "dataset": str(path),
        **tokens.to_dict(),
        "tokens_are_approximate": tokens.approximate,
        "base_model": args.base_model,
        "price_per_million": managed.price_per_million,
        "managed_cost": costs.round_money(managed.cost),
        "managed_basis": managed.basis,
        "gpu_hourly": gpu.hourly_rate,
        "gpu_minutes": {
            "setup": gpu.minutes.setup,
            "training": round(gpu.minutes.training, 2),
            "merge": gpu.minutes.merge,
            "serve_start": gpu.minutes.serve_start,
            "total": round(gpu.minutes.total, 2),
        },
        "gpu_one_time_cost": costs.round_money(gpu.cost),
        "gpu_basis": gpu.basis,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    skipped = f" ({tokens.skipped_records} records unreadable or dropped, not counted)" if tokens.skipped_records else ""
    print(f"Dataset: {path}: {tokens.records:,} records{skipped}")
    print(f"Trained tokens: {tokens.per_epoch:,} per epoch × {tokens.epochs:g} epochs = {tokens.total:,} "
          f"({'approximate' if tokens.approximate else 'counted'}: {tokens.basis})")
    print(f"Managed fine-tuning: {tokens.total:,} trained tokens × ${managed.price_per_million:g} per 1M = "
          f"{costs.format_money(managed.cost)}")
    print(f"Own GPU: {gpu.basis} = {costs.format_money(gpu.cost)}")
    return 0
