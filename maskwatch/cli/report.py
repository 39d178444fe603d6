"""``maskwatch report``: the monitor's database as one self-contained HTML page."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="an HTML report of a monitor database",
        description="One self-contained HTML page (no network needed to open it) from the windows and alerts "
        "`maskwatch monitor` wrote: headline, per-camera summary, hour-of-day heat map, timelines, alerts. "
        "Times are UTC.",
    )
    p.add_argument("--db", required=True, metavar="URL_OR_FILE", help="SQLite file or SQLAlchemy URL")
    p.add_argument("--camera", action="append", metavar="NAME", help="only this camera (repeat for several)")
    p.add_argument(
        "--from", dest="start", metavar="T", help="windows starting at or after T (ISO date/time, UTC)"
    )
    p.add_argument(
        "--to", dest="end", metavar="T", help="windows starting before T (a bare date includes that day)"
    )
    p.add_argument("--out", required=True, help="output .html file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.apps.report import build_report

    build_report(args.db, args.out, cameras=args.camera, start=args.start, end=args.end)
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        print(f"{args.out}: report written")
    return 0
