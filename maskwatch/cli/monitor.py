"""``maskwatch monitor``: watch cameras or files, store per-window counts in a database, raise alerts."""

from __future__ import annotations

import argparse
import logging

from maskwatch.defaults import CONF


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor",
        help="watch cameras/files: per-window mask counts in a database, debounced alerts",
        description="Detect and track faces on each SOURCE and write, per camera and per --window seconds, "
        "one row (frames, faces, people, unmasked share) to a database; raise an alert when a rule's "
        "threshold is crossed. Files end; cameras and streams run until Ctrl-C. Re-running is safe: a "
        "window already stored is not written twice.",
    )
    p.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="video file, folder of images, webcam index, URL"
    )
    p.add_argument(
        "--camera", action="append", metavar="NAME", help="camera name, one per SOURCE (default: file stem)"
    )
    p.add_argument(
        "--db",
        default="monitor.sqlite",
        help="SQLite file or postgresql+psycopg:// URL (default monitor.sqlite)",
    )
    p.add_argument("--window", type=float, default=60.0, metavar="SECONDS", help="window length (default 60)")
    p.add_argument("--rules", metavar="FILE", help="alert rules (YAML); default: small-group and crowd")
    p.add_argument(
        "--notify", action="append", default=[], metavar="URL", help="apprise URL to notify (repeatable)"
    )
    p.add_argument(
        "--start-time",
        metavar="ISO",
        help="files: wall-clock time of their first frame (default: container creation time, else mtime)",
    )
    p.add_argument(
        "--keep-detections", action="store_true", help="also store every detection (detections table)"
    )
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus metrics on this port")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="processes, each with its own model")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local (default) or ray")
    p.add_argument("--fps", type=float, metavar="F", help="process about F frames per second (default: all)")
    p.add_argument(
        "--min-unmasked",
        type=float,
        default=1.0,
        metavar="S",
        help="a person counts as unmasked after S seconds in a row without a mask (default 1)",
    )
    p.add_argument("--model", help="built-in name, .pt checkpoint or exported .onnx (default: maskface-mnet)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto", help="inference backend")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--conf", type=float, default=CONF, help=f"minimum score (default {CONF})")
    p.add_argument(
        "--min-face",
        type=float,
        default=0.0,
        metavar="PX",
        help="range of interest: faces whose shorter side < PX are not counted nor tracked (e.g. 16: "
        "smaller faces are the ones the default model misses or mislabels most, MODEL_CARD.md)",
    )
    p.add_argument("--imgsz", type=int, metavar="N", help="network input long side (default: the model's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.apps.monitor import monitor
    from maskwatch.errors import MaskwatchError

    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    summary = monitor(
        args.sources,
        args.camera,
        db=args.db,
        window=args.window,
        rules=args.rules,
        notify=args.notify,
        start_time=args.start_time,
        keep_detections=args.keep_detections,
        metrics_port=args.metrics_port,
        workers=args.workers,
        engine=args.engine,
        fps=args.fps,
        model=args.model,
        backend=args.backend,
        device=args.device,
        imgsz=args.imgsz,
        conf=args.conf,
        min_face=args.min_face,
        min_unmasked=args.min_unmasked,
        progress=not quiet,
    )
    if not quiet:
        print(summary.text())
    if summary.failed:
        camera, reason = next(iter(summary.failed.items()))
        raise MaskwatchError(
            f"{len(summary.failed)} of {len(summary.cameras)} sources failed ({camera}: {reason})"
        )
    return 0
