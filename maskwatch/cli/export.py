"""``maskwatch export``: export a model to ONNX."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX",
        description="Export to ONNX with box decoding and softmax in the graph and the class names and "
        "input size in its metadata; run it with `maskwatch detect --model FILE.onnx`.",
    )
    p.add_argument("--model", help="built-in name or .pt checkpoint (default: maskface-mnet)")
    p.add_argument("--format", default="onnx", choices=("onnx",), help="export format (default onnx)")
    p.add_argument(
        "--imgsz", type=int, help="input long side (default: the model's; a multiple of 32 with --static)"
    )
    p.add_argument(
        "--static",
        action="store_true",
        help="fix the input to imgsz x imgsz (default: dynamic height and width, faster on 16:9 video)",
    )
    p.add_argument(
        "--box-style",
        metavar="NAME",
        help="for a model trained on several label sets: export the box regressor of that set's style "
        "(the default model: kaggle, the default, or ilc, tight eyebrows-to-chin boxes)",
    )
    p.add_argument(
        "--no-classifier",
        dest="classifier",
        action="store_false",
        help="leave out the model's crop classifier (the file then holds the detector alone)",
    )
    p.add_argument("--out", required=True, help="output .onnx file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.models.export import export_onnx
    from maskwatch.models.registry import load_detector

    detector = load_detector(args.model, box_style=args.box_style)
    path = export_onnx(detector, args.out, args.imgsz, static=args.static, classifier=args.classifier)
    imgsz = args.imgsz or detector.imgsz
    size = f"fixed {imgsz}x{imgsz} input" if args.static else "dynamic height/width"
    if logging.getLogger().getEffectiveLevel() <= logging.INFO:
        second = ", with its crop classifier" if args.classifier and detector.classifier is not None else ""
        print(f"{path}: {detector.arch} ({', '.join(detector.class_names)}), imgsz {imgsz}, {size}{second}")
    return 0
