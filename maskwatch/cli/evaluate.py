"""``maskwatch eval``: score a model or a predictions file the COCO way."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a model or a predictions file the COCO way")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("maskwatch eval: not implemented yet", file=sys.stderr)
    return 2
