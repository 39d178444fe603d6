"""``maskwatch detect``: detect masked and unmasked faces in images, videos and streams."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect masked and unmasked faces in images, videos and streams")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("maskwatch detect: not implemented yet", file=sys.stderr)
    return 2
