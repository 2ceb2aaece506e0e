"""The ``legalft`` command line: a second client of the library, beside the Streamlit app.

Each command group lives in its own module with ``register(subparsers)``; a handler returns the
exit code. Nothing heavy is imported here, so ``legalft --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from legalft.errors import LegalftError, UsageError, render_error

# Command-group modules, in help order. Each defines register(subparsers).
COMMAND_MODULES = (
    "legalft.cli.data",
    "legalft.cli.cost",
    "legalft.cli.train",
    "legalft.cli.tf",
    "legalft.cli.serve",
    "legalft.cli.targets",
    "legalft.cli.cite",
    "legalft.cli.eval",
    "legalft.cli.doctor",
    "legalft.cli.access",
)


__all__ = ["COMMAND_MODULES", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="legalft", description=__doc__.splitlines()[0])
    from legalft import __version__

    parser.add_argument("--version", action="version", version=f"legalft {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a group still being written
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except LegalftError as exc:  # one rendering for every library error: a line, no traceback
        print(f"legalft: error: {render_error(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
