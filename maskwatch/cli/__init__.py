"""The ``maskwatch`` command: thin argument parsing over the library; each subcommand in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from maskwatch import __version__
from maskwatch.errors import MaskwatchError

# subcommand -> its module. Only the module of the command being run is imported, so `maskwatch detect`
# starts without loading the dataset formats, pycocotools and the evaluation code it does not use.
COMMANDS = {
    "data": "data",
    "train": "train",
    "eval": "evaluate",
    "detect": "detect",
    "export": "export",
    "models": "models",
    "report": "report",
    "monitor": "monitor",
}


class Parser(argparse.ArgumentParser):
    """argparse, but a bad option value is a one-line error with exit code 1 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(1, f"{self.prog}: error: {message}\n")


def add_stage_options(p: argparse.ArgumentParser, use: str) -> None:
    """``--tta`` and ``--no-classifier``, one wording for every command that runs a model."""
    p.add_argument(
        "--tta",
        action="store_true",
        help=f"test-time augmentation: {use} also on the mirrored image and at 1.3x and 1.6x the input "
        "size, boxes fused: more small faces found and better boxes for ~8x the compute",
    )
    p.add_argument(
        "--no-classifier",
        dest="classifier",
        action="store_false",
        help="a model with a crop classifier (the default has one): run its detector alone, each face's "
        "class from the detector (faster on crowded frames)",
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``command``, only that subcommand is registered (all when None or unknown)."""
    parser = Parser(prog="maskwatch", description="Find faces with and without a mask.")
    parser.add_argument("--version", action="version", version=f"maskwatch {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    only = command if command in COMMANDS else None
    for name, module in COMMANDS.items():
        if only in (None, name):
            importlib.import_module(f"maskwatch.cli.{module}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((a for a in args_list if not a.startswith("-")), None))
    try:
        args = parser.parse_args(args_list)
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
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM/SIGHUP where a command turns them into one
        print(f"maskwatch: {e or 'interrupted'}", file=sys.stderr)  # e.g. what training kept
        return 130


if __name__ == "__main__":
    sys.exit(main())
