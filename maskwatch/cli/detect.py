"""``maskwatch detect``: detect masked and unmasked faces in images, videos and streams."""

from __future__ import annotations

import argparse
import logging
import sys

from maskwatch.cli import add_stage_options
from maskwatch.defaults import CONF, IOU


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "detect",
        help="detect masked and unmasked faces in images, videos and streams",
        description="Detect faces with and without a mask. Ctrl-C, SIGTERM, SIGHUP (or a stream that ends) "
        "stop cleanly: "
        "outputs are complete up to the last processed frame. Exit status: 0 done, 1 bad input, "
        "130 a file run interrupted before its end.",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        nargs="?",
        help="image, folder or glob of images, video file, webcam index (0) or URL "
        "(default: the sample images shipped with maskwatch)",
    )
    p.add_argument("--model", help="built-in name, .pt checkpoint or exported .onnx (default: maskface-mnet)")
    p.add_argument(
        "-o",
        "--output",
        help="annotated video (.mp4) for videos/streams, a folder for images (an existing folder is replaced "
        "only if empty or written by maskwatch); never an input, nor inside or around one",
    )
    p.add_argument("--jsonl", help="one JSON line per frame with its detections ('-': stdout, streamed)")
    p.add_argument("--csv", help="one CSV row per detection ('-': stdout)")
    p.add_argument("--summary", help="write the end-of-run report as JSON")
    p.add_argument(
        "--save-txt",
        metavar="DIR",
        help="YOLO labels into DIR: <image stem>.txt, or <video stem>_<frame>.txt, lines 'class cx cy w h' "
        "normalised (frames without detections get no file)",
    )
    p.add_argument("--save-conf", action="store_true", help="with --save-txt: append the score to each line")
    p.add_argument("--classes", nargs="+", metavar="NAME", help="keep only these classes (e.g. no_mask)")
    p.add_argument(
        "--vid-stride", type=int, default=1, metavar="N", help="videos/streams: process every N-th frame"
    )
    p.add_argument("--conf", type=float, default=CONF, help=f"minimum score (default {CONF})")
    p.add_argument("--iou", type=float, default=IOU, help=f"NMS IoU threshold (default {IOU})")
    p.add_argument("--imgsz", type=int, help="network input long side (default: the model's)")
    p.add_argument(
        "--box-style",
        metavar="NAME",
        help="for a model trained on several label sets: draw boxes in that set's style "
        "(the default model: kaggle, the default, or ilc, tight eyebrows-to-chin boxes)",
    )
    add_stage_options(p, "detect")
    p.add_argument(
        "--min-face", type=float, default=0.0, metavar="PX", help="ignore faces whose shorter side < PX"
    )
    p.add_argument(
        "--track",
        action="store_true",
        help="track faces: ids (-1 until seen in 3 frames), labels voted over recent frames, people counts",
    )
    p.add_argument("--blur", action="store_true", help="blur faces in the output (privacy)")
    p.add_argument(
        "--realtime", action="store_true", help="live sources: drop frames rather than fall behind"
    )
    p.add_argument("--show", action="store_true", help="show a live window (needs OpenCV with GUI support)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx"),  # literal: importing the runtime would load torch at start-up
        default="auto",
        help="auto (default: onnxruntime where the model allows, the fastest on CPU), torch or onnx",
    )
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after the first N frames")
    p.add_argument(
        "--reconnect",
        type=float,
        default=30.0,
        metavar="S",
        help="live sources: keep reconnecting a dropped stream for S seconds (0: never; default 30)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.errors import MaskwatchError
    from maskwatch.io import is_stream
    from maskwatch.video.pipeline import detect

    if args.save_conf and args.save_txt is None:
        raise MaskwatchError("--save-conf needs --save-txt")
    quiet = logging.getLogger().getEffectiveLevel() > logging.INFO
    if args.source is None:
        from maskwatch.assets import sample_dir

        args.source = str(sample_dir())
        logging.getLogger(__name__).info("no SOURCE given: running on the bundled samples in %s", args.source)
    summary = detect(
        args.source,
        args.model,
        output=args.output,
        jsonl=args.jsonl,
        csv=args.csv,
        summary=args.summary,
        backend=args.backend,
        device=args.device,
        imgsz=args.imgsz,
        box_style=args.box_style,
        tta=args.tta,
        classifier=args.classifier,
        conf=args.conf,
        iou=args.iou,
        min_face=args.min_face,
        track=args.track,
        blur=args.blur,
        realtime=args.realtime,
        show=args.show,
        max_frames=args.max_frames,
        reconnect=args.reconnect,
        progress=not quiet,
        save_txt=args.save_txt,
        save_conf=args.save_conf,
        classes=args.classes,
        vid_stride=args.vid_stride,
    )
    if not quiet:  # stdout may be carrying --jsonl -: the report then goes to stderr, as logs do
        outputs = (args.jsonl, args.csv, args.summary)
        print(summary.text(), file=sys.stderr if any(o and is_stream(o) for o in outputs) else sys.stdout)
    return 130 if summary.interrupted and not summary.live else 0
