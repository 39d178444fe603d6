"""The ``maskwatch`` command: thin argument parsing over the library; each subcommand in its own module."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from maskwatch import __version__
from maskwatch.cli import data, detect, evaluate, export, monitor, train
from maskwatch.errors import MaskwatchError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option value is a one-line error with exit code 1 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="maskwatch", description="Find faces with and without a mask.")
    parser.add_argument("--version", action="version", version=f"maskwatch {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in (data, train, evaluate, detect, export, monitor):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (already reported on one line)
        return int(e.code or 0)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MaskwatchError as e:
        print(f"maskwatch: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("maskwatch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
