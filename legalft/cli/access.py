"""``legalft users``, ``legalft budget``, ``legalft audit`` and ``legalft provider-data``: sharing the
studio from the command line. Every command runs as the OS user (``os:NAME``) and is audited."""

from __future__ import annotations

import argparse
import json
import sys


def add_budget_argument(parser: argparse.ArgumentParser) -> None:
    """`--over-budget REASON` for a launch command: an admin's launch over this month's budget."""
    parser.add_argument("--over-budget", metavar="REASON",
                        help="admins: launch even if the estimate is over what is left of this month's budget; "
                             "REASON is recorded in the audit trail")


def register(subparsers: argparse._SubParsersAction) -> None:
    users = subparsers.add_parser("users", help="the allow-list: who may sign in, with which role")
    verbs = users.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="every entry and its role")
    listing.set_defaults(handler=run_users_list)
    add = verbs.add_parser("add", help="add or change an entry (admins)")
    add.add_argument("principal", help="an e-mail, a whole domain (@firm.co.uk) or an OS user (os:alice)")
    add.add_argument("--role", required=True, choices=("viewer", "trainer", "admin"))
    add.set_defaults(handler=run_users_add)
    remove = verbs.add_parser("remove", help="take an entry off the list (admins)")
    remove.add_argument("principal")
    remove.set_defaults(handler=run_users_remove)

    budget = subparsers.add_parser("budget", help="monthly budgets for managed training and GPU time")
    verbs = budget.add_subparsers(dest="verb", required=True)
    show = verbs.add_parser("show", help="this month's limits, spend and what is left")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=run_budget_show)
    set_ = verbs.add_parser("set", help="set a monthly budget in USD (admins); --none removes it")
    set_.add_argument("kind", choices=("managed", "gpu"))
    amount = set_.add_mutually_exclusive_group(required=True)
    amount.add_argument("usd", nargs="?", type=float)
    amount.add_argument("--none", action="store_true", help="no limit")
    set_.set_defaults(handler=run_budget_set)

    audit = subparsers.add_parser("audit", help="the audit trail: who did what, when, at what estimated cost")
    audit.add_argument("--user", help="only this user (e-mail or os:NAME)")
    audit.add_argument("--action", help="only this action or group (train, managed.launch...)")
    audit.add_argument("--outcome", choices=("ok", "denied", "refused", "failed", "override"))
    audit.add_argument("--since", help="ISO date or time, e.g. 2026-12-01")
    audit.add_argument("--limit", type=int, default=200)
    audit.add_argument("--csv", action="store_true", help="print CSV (the Activity page's export)")
    audit.set_defaults(handler=run_audit)

    data = subparsers.add_parser(
        "provider-data", help="what a managed job left at the provider (files, deployments); --delete removes it")
    data.add_argument("job")
    data.add_argument("--delete", action="store_true", help="delete the job's deployments and files there (admins)")
    data.add_argument("--json", action="store_true")
    data.set_defaults(handler=run_provider_data)


def run_users_list(args: argparse.Namespace) -> int:
    from legalft.auth import current_user, list_users

    users = list_users()
    if not users:
        print(f"no allow-list yet: sign-in admits nobody; you ({current_user().id}) are an admin here. "
              "Add people with `legalft users add EMAIL --role viewer|trainer|admin`.")
    for principal, role in users.items():
        print(f"{principal}  {role}")
    return 0


def run_users_add(args: argparse.Namespace) -> int:
    from legalft.auth import set_user

    print(f"{set_user(args.principal, args.role)}: {args.role}")
    return 0


def run_users_remove(args: argparse.Namespace) -> int:
    from legalft.auth import remove_user

    if not remove_user(args.principal):
        print(f"legalft: error: {args.principal} is not on the allow-list", file=sys.stderr)
        return 1
    print(f"removed {args.principal}")
    return 0


def _budget_line(status) -> str:
    from legalft.budget import LABELS

    limit = "no limit" if status.limit is None else f"${status.limit:,.2f} a month, ${status.left:,.2f} left"
    return f"{LABELS[status.kind]} {status.month}: spent ${status.spent:,.2f} on {status.jobs} jobs; {limit}"


def run_budget_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from legalft.budget import all_budgets

    budgets = all_budgets()
    if args.json:
        print(json.dumps([{**asdict(b), "left": b.left} for b in budgets], indent=2))
    else:
        for status in budgets:
            print(_budget_line(status))
    return 0


def run_budget_set(args: argparse.Namespace) -> int:
    from legalft.budget import set_budget

    print(_budget_line(set_budget(args.kind, None if args.none else args.usd)))
    return 0


def run_audit(args: argparse.Namespace) -> int:
    from legalft.audit import audit_csv, list_audit

    entries = list_audit(user_id=args.user, action_prefix=args.action, outcome=args.outcome, since=args.since,
                         limit=args.limit)
    if args.csv:
        sys.stdout.write(audit_csv(entries))
        return 0
    for e in entries:
        cost = "" if e.estimated_cost is None else f"  ${e.estimated_cost:,.2f}"
        print(f"{e.at}  {e.user_id} ({e.role or 'no role'})  {e.action}  {e.target or '-'}  {e.outcome}{cost}")
    return 0


def run_provider_data(args: argparse.Namespace) -> int:
    from legalft.managed.cleanup import delete_provider_data, provider_footprint

    if args.delete:
        report = delete_provider_data(args.job)
        print(f"deleted {len(report.deleted)} item(s) at the provider"
              + (f"; already gone: {', '.join(report.already_gone)}" if report.already_gone else ""))
        return 0
    footprint = provider_footprint(args.job)
    if args.json:
        print(json.dumps({"job": footprint.job_id, "checked": footprint.checked, "items": footprint.to_rows()},
                         indent=2))
        return 0
    for item in footprint.items:
        state = {True: "at the provider", False: "gone", None: "unknown"}[item.present]
        print(f"{item.role}  {item.id}  {state}")
    if footprint.present:
        print(f"`legalft provider-data {args.job} --delete` deletes them (admins)")
    return 0
