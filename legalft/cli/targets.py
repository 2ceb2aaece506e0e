"""``legalft targets check TARGET``: can a run go there? Checked before anything is billed."""

from __future__ import annotations

import json

from legalft.cli.train import add_target_arguments, target_from_args


def register(subparsers) -> None:
    targets = subparsers.add_parser("targets", help="where the Cloud path trains: check a target before a launch")
    commands = targets.add_subparsers(dest="targets_command", metavar="ACTION")
    check = commands.add_parser("check", help="tools, credentials, host reachable, remote GPUs; exit 1 with the "
                                              "reason when the target cannot be used")
    check.add_argument("target_spec", metavar="TARGET", help="local, ssh:HOST or skypilot:INFRA")
    add_target_arguments(check, with_target=False)
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_check)
    targets.set_defaults(handler=lambda args: targets.print_help() or 2)


def cmd_check(args) -> int:
    args.target = args.target_spec
    target = target_from_args(args)
    report = target.check()
    if args.json:
        print(json.dumps(report.to_dict(), indent=1, default=str))
        return 0 if report.ok else 1
    print(f"{target.describe()}: {'ready' if report.ok else 'cannot be used'}")
    for name, value in report.facts.items():
        print(f"  {name}: {value}")
    for problem in report.problems:
        print(f"  problem: {problem}")
    for warning in report.warnings:
        print(f"  note: {warning}")
    return 0 if report.ok else 1
