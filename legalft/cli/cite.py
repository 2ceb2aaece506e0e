"""`legalft cite ...`: find the statutory citations in a text and check them against the statute index."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legalft.cli import UsageError


def register(subparsers) -> None:
    cite = subparsers.add_parser("cite", help="check the statutory citations in a text against the statute index")
    commands = cite.add_subparsers(dest="cite_command", metavar="COMMAND")
    cite.set_defaults(handler=lambda args: (cite.print_help(), 2)[1])

    check = commands.add_parser("check", help="list each provision cited with its verdict "
                                              "(verified, not_found, unknown_act)")
    check.add_argument("source", metavar="TEXT_OR_FILE", help="the text itself, a file holding it, or - for stdin")
    check.add_argument("--corpus", action="append", default=[], metavar="FILE",
                       help="a legislation JSONL file (per section or per Act) to index first; repeatable")
    check.add_argument("--json", action="store_true", help="print {\"citations\": [...]} as one JSON object")
    check.set_defaults(handler=run_check)

    index = commands.add_parser("index", help="index legislation files (incremental) and list what is indexed")
    index.add_argument("files", nargs="*", metavar="FILE", help="legislation JSONL files to add")
    index.add_argument("--json", action="store_true")
    index.set_defaults(handler=run_index)


def _read_source(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    if "\n" not in source and len(source) < 4096 and path.is_file():
        return path.read_text(encoding="utf-8-sig", errors="replace")
    return source


def _add_corpora(index, files: list[str]) -> list[dict]:
    reports = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise UsageError(f"--corpus {name}: no such file")
        reports.append(index.add_file(path).to_dict())
    return reports


def run_check(args: argparse.Namespace) -> int:
    from legalft.legal.citations import check_citations, summarise
    from legalft.legal.index import default_index

    text = _read_source(args.source)
    index = default_index()
    reports = _add_corpora(index, args.corpus)
    checked = check_citations(text, index)
    if args.json:
        print(json.dumps({"citations": [c.to_dict() for c in checked]}, ensure_ascii=False))
        return 0
    for report in reports:
        state = "unchanged" if report["skipped_unchanged"] else f"{report['provisions']} provisions indexed"
        print(f"corpus {report['path']}: {state}")
    for item in checked:
        print(f"{item.status:<12} {item.citation.label:<60} {item.reason}".rstrip())
    print(summarise(checked).line)
    return 0


def run_index(args: argparse.Namespace) -> int:
    from legalft.legal.index import default_index

    index = default_index()
    reports = _add_corpora(index, args.files)
    sources = index.sources()
    if args.json:
        print(json.dumps({"added": reports, "sources": sources, "acts": len(index.acts())}))
        return 0
    for report in reports:
        print(f"{report['path']}: " + ("unchanged, skipped" if report["skipped_unchanged"] else
                                       f"{report['lines']} lines, {report['provisions']} provisions of "
                                       f"{report['acts']} Acts; dropped {sum(report['dropped'].values())}"))
        for issue in report["issues"][:20]:
            print(f"  {issue}")
    for source in sources:
        print(f"{source['provisions']:>6} provisions  {source['name']}  ({source['indexed_at']})")
    print(f"{len(index.acts())} Acts indexed")
    return 0
