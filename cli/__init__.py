"""Command line: `python -m kinema <command>`. Each command is a module with `add_parser(subparsers)`
that sets `handler`; add a command by adding its module name to COMMANDS."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

COMMANDS = ("demo", "run", "submit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kinema", description="Kinema video generation.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more, and show tracebacks of errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".{name}", __name__).add_parser(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s", stream=sys.stderr)
    from ..core.progress import Cancelled
    from .submit import SubmitError

    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"{parser.prog} {args.command}: interrupted", file=sys.stderr)
        return 130
    # Bad input (files, graphs, settings) and unreachable servers are the user's to fix: their
    # messages say how, and a traceback would only hide them.
    except (ValueError, OSError, SubmitError, Cancelled) as error:
        if args.verbose:
            raise
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return 1
