"""`legalft data ...`: validate, stats, convert and split datasets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legalft.cli import UsageError


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="validate, inspect, convert and split datasets")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND")
    data.set_defaults(handler=lambda args: (data.print_help(), 2)[1])

    validate = commands.add_parser("validate", help="sanitize a dataset; write the clean file and the rejects")
    validate.add_argument("input", help="JSONL, JSON array, CSV or Parquet file (JSONL, JSON and CSV may be gzipped)")
    validate.add_argument("--out", help="clean JSONL to write (default: beside the input, acts.v1.jsonl → acts.v1.clean.jsonl)")
    validate.add_argument("--rejects", help="JSONL of dropped records with line and reason (default: acts.v1.rejects.jsonl)")
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.set_defaults(handler=run_validate)

    stats = commands.add_parser("stats", help="tokens per role and record, lengths, turns, Acts cited")
    stats.add_argument("input")
    stats.add_argument("--tokenizer", help="a local model folder or hub id (default: approximate count)")
    stats.add_argument("--max-length", type=int, default=1024, help="training max length to compare against")
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=run_stats)

    convert = commands.add_parser("convert", help="turn legislation (per section or per Act) into Q&A")
    convert.add_argument("input")
    convert.add_argument("--out", required=True)
    convert.add_argument("--kinds", nargs="+", help="pair kinds to emit (default: provision heading subsection)")
    convert.add_argument("--include-meta", action="store_true", help="keep provenance in each record's meta")
    convert.add_argument("--embed-context", action="store_true", help="put the provision in the user turn")
    convert.add_argument("--include-amending", action="store_true", help="also convert amending-only sections")
    convert.add_argument("--json", action="store_true")
    convert.set_defaults(handler=run_convert)

    split = commands.add_parser("split", help="deterministic train/validation split")
    split.add_argument("input")
    split.add_argument("--val-fraction", type=float, required=True)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--group-by-act", action="store_true", help="keep each Act on one side of the split")
    split.add_argument("--out-dir", required=True)
    split.add_argument("--json", action="store_true")
    split.set_defaults(handler=run_split)


def default_output(source: Path, suffix: str) -> Path:
    """``acts.v1.jsonl`` → ``acts.v1.clean.jsonl`` beside it: the full stem kept, so it never equals an input
    (``acts.v2.jsonl`` writes ``acts.v2.clean.jsonl``; ``batch1.rejects.jsonl`` writes ``batch1.rejects.rejects.jsonl``)."""
    name = source.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return source.with_name(stem + suffix)


def run_validate(args: argparse.Namespace) -> int:
    from legalft.data.outputs import same_file
    from legalft.data.readers import DatasetReadError
    from legalft.data.sanitize import sanitize_file

    source = Path(args.input)
    out = Path(args.out) if args.out else default_output(source, ".clean.jsonl")
    rejects = Path(args.rejects) if args.rejects else default_output(source, ".rejects.jsonl")
    try:
        report = sanitize_file(source, out, rejects)  # refuses an output that is the input before writing
    except DatasetReadError as exc:
        print(f"legalft: cannot read {source} as a dataset: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = Path(exc.filename) if getattr(exc, "filename", None) else None
        written = where is not None and not same_file(where, source)  # reading touches the input only
        what = f"cannot write {where}" if written else f"cannot read {source}"
        print(f"legalft: {what}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**report.to_dict(), "clean_file": str(out),
                          "rejects_file": str(rejects) if report.dropped_records else None}))
        return 0
    if report.summary:
        print(f"{source.name}: {report.summary}")
    print(f"{report.total_records} records read: {report.kept_records} kept "
          f"({report.repaired_records} repaired, {report.doubtful_records} doubtful, "
          f"{report.converted_records} converted from another format), {report.dropped_records} dropped")
    for kind, n in sorted(report.repair_counts.items()):
        print(f"  repaired  {kind}: {n}")
    for kind, n in sorted(report.conversion_counts.items()):
        print(f"  converted {kind}: {n}")
    for kind, n in sorted(report.drop_counts.items()):
        print(f"  dropped   {kind}: {n}")
    for issue in report.issues[:20]:
        print(f"  {issue.message}")
    if report.issue_count > 20:
        print(f"  … {report.issue_count - 20} more (use --json for the first {len(report.issues)})")
    print(f"clean file: {out}")
    if report.dropped_records:
        print(f"rejects:    {rejects}")
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from legalft.data.readers import DatasetReadError
    from legalft.data.stats import compute_stats

    if args.max_length < 1:
        raise UsageError("--max-length must be a positive number of tokens")
    try:
        stats = compute_stats(args.input, tokenizer=args.tokenizer, max_length=args.max_length)
    except (DatasetReadError, OSError, ValueError) as exc:
        print(f"legalft: {exc}", file=sys.stderr)
        return 1
    data = stats.to_dict()
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"{data['records']} records, {data['total_tokens']} tokens ({data['token_label']})")
    for role, s in data["per_role"].items():
        print(f"  {role:<10} {s['messages']:>7} messages  mean {s['mean_tokens']:>7} tokens  max {s['max_tokens']}")
    rt = data["record_tokens"]
    print(f"  per record: mean {rt['mean']}, median {rt['median']}, p95 {rt['p95']}, max {rt['max']}")
    print(f"  longer than {args.max_length} tokens: {data['over_max_length']} "
          f"({data['share_over_max_length']:.1%}) would be truncated")
    if data["top_acts"]:
        print("  most cited Acts: " + "; ".join(f"{a['act']} ({a['records']})" for a in data["top_acts"][:5]))
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from legalft.data.convert import DEFAULT_KINDS, ConvertOptions, convert_file
    from legalft.data.readers import DatasetReadError

    try:
        options = ConvertOptions(kinds=tuple(args.kinds or DEFAULT_KINDS), include_meta=args.include_meta,
                                 embed_context=args.embed_context, include_amending=args.include_amending)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        report = convert_file(args.input, args.out, options)
    except (DatasetReadError, OSError) as exc:
        print(f"legalft: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        kinds = ", ".join(f"{k} {n}" for k, n in report.pairs_by_kind.items())
        skipped = ", ".join(f"{k} {n}" for k, n in report.skipped.items()) or "none"
        print(f"{report.lines} lines, {report.acts} Acts → {report.pairs} pairs ({kinds}); skipped: {skipped}")
        print(f"written: {args.out}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from legalft.data.split import split_file

    if not 0 < args.val_fraction < 1:
        raise UsageError("--val-fraction must be between 0 and 1, e.g. 0.1")
    try:
        train, val, result = split_file(args.input, args.out_dir, args.val_fraction, seed=args.seed,
                                        group_by_act=args.group_by_act)
    except (OSError, ValueError) as exc:
        print(f"legalft: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**result.to_dict(), "train_file": str(train), "validation_file": str(val)}))
    else:
        print(f"train: {len(result.train)} records → {train}")
        print(f"validation: {len(result.validation)} records → {val}")
        if result.shared_acts:
            print(f"note: {len(result.shared_acts)} Acts appear on both sides; --group-by-act prevents that")
    return 0
