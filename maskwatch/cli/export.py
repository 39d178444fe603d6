"""``maskwatch export``: export a model to ONNX."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print("maskwatch export: not implemented yet", file=sys.stderr)
    return 2
