"""``maskwatch eval``: score a model or a predictions file the COCO way."""

from __future__ import annotations

import argparse

from maskwatch.cli import add_stage_options
from maskwatch.data.formats import FORMATS

OPERATING_CONF = (
    0.5  # maskwatch.engine.evaluate.OPERATING_CONF, repeated so --help needs no numpy/pycocotools
)


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
    p.add_argument(
        "--split",
        help="stems file (e.g. splits/face-mask-kaggle/test.txt), or a split folder: its test.txt",
    )
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
    p.add_argument(
        "--iou-thr",
        type=float,
        metavar="IOU",
        help="also report AP at this one IoU threshold (e.g. 0.3: the face was found and given the right "
        "class, whatever the box style of the labels)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="95%% image-bootstrap interval of every headline number from N resamples (e.g. 200)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples (default 0)")
    p.add_argument("--json", help="write the summary metrics (percent) to this file")
    p.add_argument(
        "--out", help="folder for COCO files, metrics.json, PR curves, confusion matrix and gallery"
    )
    p.add_argument(
        "--gallery", type=int, default=20, metavar="N", help="images in the error gallery (default 20)"
    )
    p.add_argument("--batch", type=int, default=8, help="images per model call (default 8)")
    p.add_argument(
        "--imgsz",
        type=int,
        help="network input long side (default: the model's; larger finds smaller faces but, for the "
        "default model, did not raise its AP: MODEL_CARD.md)",
    )
    p.add_argument(
        "--box-style",
        metavar="NAME",
        help="for a model trained on several label sets: score with the box regressor of that set's style "
        "(the default model: kaggle, the default, or ilc, tight eyebrows-to-chin boxes)",
    )
    add_stage_options(p, "score the model")
    p.add_argument(
        "--agnostic",
        action="store_true",
        help="class-agnostic AP: every face one class, one box per face ('was the face found, whatever "
        "its class'); beside the per-class AP it tells finding faces from telling masks apart",
    )
    p.add_argument(
        "--errors",
        action="store_true",
        help="where AP50 goes: false detections by kind (duplicate, wrong class, poor box, background) with "
        "AP50 without each, and the missed faces; with --out, a contact sheet of each in errors/",
    )
    p.add_argument("--device", choices=["cpu", "cuda", "auto"], default="auto")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # torch and matplotlib load only when a command needs them, so the CLI starts fast
    from maskwatch.engine.eval_run import run_eval
    from maskwatch.engine.report import format_report

    report = run_eval(
        args.data,
        format=args.format,
        merge=args.merge,
        split=args.split,
        model=args.model,
        predictions=args.predictions,
        min_size=args.min_size,
        conf=args.conf,
        iou_thr=args.iou_thr,
        bootstrap=args.bootstrap,
        seed=args.seed,
        out=args.out,
        json_path=args.json,
        gallery=args.gallery,
        batch=args.batch,
        device=args.device,
        box_style=args.box_style,
        tta=args.tta,
        classifier=args.classifier,
        agnostic=args.agnostic,
        errors=args.errors,
        imgsz=args.imgsz,
        progress=not args.quiet,
    )
    print(format_report(report), end="")
    if args.out:
        print(f"outputs written to {args.out}")
    return 0
