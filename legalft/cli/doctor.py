"""``legalft doctor``: check the job index against the run folders and managed records; rebuild it."""

from __future__ import annotations

import json
from dataclasses import asdict


def register(subparsers) -> None:
    doctor = subparsers.add_parser(
        "doctor", help="check the job index against what is on disk; --repair rebuilds it",
        description="The run folders and saved managed records are the truth, the database their index: "
                    "a damaged or missing index is rebuilt from them (the damaged file is kept aside).")
    doctor.add_argument("--repair", action="store_true", help="rebuild the index from the run folders and records")
    doctor.add_argument("--json", action="store_true", help="print the report as JSON")
    doctor.set_defaults(handler=cmd_doctor)


def cmd_doctor(args) -> int:
    from legalft import doctor

    report = doctor.repair() if args.repair else doctor.check()
    if args.json:
        print(json.dumps({**asdict(report), "ok": report.ok}, indent=1))
        return 0 if report.ok else 1
    if report.damaged_copy:
        print(f"moved the damaged index to {report.damaged_copy}")
    if report.restored:
        print(f"re-indexed {len(report.restored)} job(s): {', '.join(report.restored)}")
    print(report.summary())
    return 0 if report.ok else 1
