"""``maskwatch data``: build a learning base: stats, convert, split, frames, merge."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build a learning base: stats, convert, split, frames, merge")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("maskwatch data: not implemented yet", file=sys.stderr)
    return 2
