"""``maskwatch eval``: score a model or a predictions file the COCO way."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from maskwatch.data.classmap import parse_merge
from maskwatch.data.formats import FORMATS, load_dataset
from maskwatch.data.split import read_split_file
from maskwatch.engine.evaluate import (
    OPERATING_CONF,
    check_classes,
    check_options,
    evaluate_dataset,
    predict_dataset,
)
from maskwatch.engine.predictions import image_index, read_predictions
from maskwatch.errors import MaskwatchError
from maskwatch.io import write_json
from maskwatch.models.names import DEFAULT_MODEL

log = logging.getLogger("maskwatch")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="score a model or a predictions file the COCO way",
        description=(
            "Score a model (default: the built-in maskface-mnet) or a COCO results file with pycocotools. "
            "Results-file image_id is the dataset's COCO image id when --data is a COCO JSON file, otherwise "
            "the 1-based position of the image in the dataset as loaded (before --split); file_name works "
            "for any dataset. category_id follows the COCO file's categories, otherwise 1-based positions in "
            "the dataset's classes after --merge; label (a class name) works for any dataset."
        ),
    )
    p.add_argument("--data", required=True, help="learning base (folder or annotation file)")
    p.add_argument("--format", choices=["auto", *FORMATS], default="auto")
    p.add_argument("--merge", action="append", help="class merge 'SRC[,SRC...]=DST' (repeatable)")
    p.add_argument("--split", help="stems file to evaluate, e.g. splits/face-mask-kaggle/test.txt")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--model", help="checkpoint path or built-in model name (default maskface-mnet)")
    src.add_argument("--predictions", help="COCO results JSON, e.g. Detectron2's coco_instances_results.json")
    p.add_argument(
        "--min-size",
        type=float,
        default=0.0,
        metavar="PX",
        help="range of interest: faces with a shorter side below PX are ignored, smaller detections dropped",
    )
    p.add_argument(
        "--conf",
        type=float,
        default=OPERATING_CONF,
        help=f"operating point of the confusion matrix, P/R/F1 and gallery (default {OPERATING_CONF})",
    )
    p.add_argument("--json", help="write the summary metrics (percent) to this file")
    p.add_argument(
        "--out", help="folder for COCO files, metrics.json, PR curves, confusion matrix and gallery"
    )
    p.add_argument(
        "--gallery", type=int, default=20, metavar="N", help="images in the error gallery (default 20)"
    )
    p.add_argument("--batch", type=int, default=8, help="images per model call (default 8)")
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch and matplotlib load only when a command needs them, so the CLI starts fast
    from maskwatch.engine.report import check_out_dir, format_report, write_outputs
    from maskwatch.predict import load_for_eval

    t0 = time.perf_counter()
    check_options(args.min_size, args.conf)
    if args.gallery < 0 or args.batch < 1:
        raise MaskwatchError("--gallery must be >= 0 and --batch >= 1")
    if args.out:
        check_out_dir(Path(args.out))
    merge = parse_merge(args.merge)
    full = load_dataset(args.data, args.format, args.merge)
    ds = full.subset(read_split_file(Path(args.split))) if args.split else full
    if not len(ds):
        raise MaskwatchError(f"{args.data}: no images to evaluate")
    index = image_index(args.data, full, args.format)
    extra: dict[str, object] = {"data": str(args.data), "split": args.split}
    if args.predictions:
        class_names = tuple(ds.classes)
        predictions = read_predictions(args.predictions, ds, class_names, index, merge)
        extra["predictions"] = str(args.predictions)
    else:
        detector = load_for_eval(args.model or DEFAULT_MODEL, device=args.device)
        class_names = tuple(detector.class_names)
        check_classes(ds, class_names)  # before minutes of inference, not after
        predictions = predict_dataset(detector, ds, batch=args.batch, progress=not args.quiet)
        extra["model"] = str(args.model or DEFAULT_MODEL)
    report = evaluate_dataset(
        ds, predictions, class_names, index.ids_for(ds), min_size=args.min_size, conf=args.conf
    )
    report.extra = extra
    print(format_report(report), end="")
    if args.out:
        report.seconds = time.perf_counter() - t0
        write_outputs(report, ds, predictions, args.out, gallery=args.gallery)
        print(f"outputs written to {args.out}")
    report.seconds = time.perf_counter() - t0
    if args.json:
        write_json(args.json, report.summary_json())
    log.info("evaluated %d images in %.1f s", report.images, report.seconds)
    return 0
