"""``maskwatch data``: build a learning base: stats, duplicates, convert, split, frames, merge, prelabel,
review.

Thin: each subcommand parses its options, calls :mod:`maskwatch.data` and prints a summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from maskwatch.apps.select import STRATEGIES
from maskwatch.cli import add_stage_options
from maskwatch.data.formats import FORMATS, load_dataset, save_dataset
from maskwatch.data.stats import dataset_stats, format_stats
from maskwatch.defaults import PRELABEL_CONF
from maskwatch.errors import MaskwatchError
from maskwatch.io import write_json


def _input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format", default="auto", choices=["auto", *FORMATS], help="input format (default: detect)"
    )
    p.add_argument(
        "--merge",
        action="append",
        metavar="SPEC",
        help="merge classes into one, 'SRC[,SRC...]=DST' (repeatable), "
        "e.g. 'without_mask,mask_weared_incorrect=no_mask'",
    )


def _copy_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--copy-images",
        action="store_true",
        help="copy image files instead of hard-linking them (for a base you will edit in place)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "data",
        help="build a learning base: stats, duplicates, convert, split, frames, merge, prelabel, review",
        description="Build a learning base. Formats: voc (LabelImg, Kaggle), yolo (LabelImg classes.txt and "
        "Ultralytics data.yaml), coco (Detectron2, pycocotools), createml. Split files are read from "
        "PATH/splits/{train,val,test}.txt, or from --split DIR.",
    )
    p.set_defaults(func=lambda args: _help(p))
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=type(p))

    s = dsub.add_parser("stats", help="images, boxes per class and COCO size buckets (per split too)")
    s.add_argument("path", help="learning base: folder or annotation file")
    _input_options(s)
    s.add_argument(
        "--split",
        metavar="PATH",
        help="folder with train.txt/val.txt/test.txt, or one such file (default PATH/splits)",
    )
    s.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    s.add_argument("--plot", metavar="FILE", help="also draw a bar chart (PNG, SVG or PDF)")
    s.set_defaults(func=run_stats)

    d = dsub.add_parser(
        "duplicates",
        help="near-duplicate images and whether their labels agree (box IoU, class, faces boxed once)",
        description="Finds near-duplicate images (the difference hash 'data split' keeps together) and, for "
        "each pair that is one picture up to scale, compares their labels face by face: how well two "
        "labellings of one face overlap (which bounds the AP at strict IoU any model can score on these "
        "labels), faces given two classes, faces boxed on one copy only. Pairs worth a labeller's look are "
        "listed worst first.",
    )
    d.add_argument("path", help="learning base: folder or annotation file")
    _input_options(d)
    d.add_argument(
        "--max-distance",
        type=int,
        default=6,
        metavar="BITS",
        help="hash bits two images may differ by and count as near-duplicates (default 6, as 'data split')",
    )
    d.add_argument("--json", metavar="FILE", help="also write the numbers, every group and every pair")
    d.add_argument(
        "--out", metavar="FILE", help="also draw the compared pairs, worst first, both labellings (JPEG/PNG)"
    )
    d.set_defaults(func=run_duplicates)

    c = dsub.add_parser("convert", help="convert between voc, yolo, coco and createml")
    c.add_argument("src", help="learning base to read (format detected)")
    c.add_argument("dst", help="folder to write (for coco, a .json file references the images in place)")
    c.add_argument("--to", required=True, choices=FORMATS, help="output format")
    _input_options(c)
    c.add_argument("--split", metavar="PATH", help="split folder or file to carry along (default SRC/splits)")
    _copy_option(c)
    c.set_defaults(func=run_convert)

    sp = dsub.add_parser("split", help="leak-free stratified train/val/test split files")
    sp.add_argument("path", help="learning base")
    sp.add_argument("--out", required=True, metavar="DIR", help="folder for train.txt, val.txt, test.txt")
    sp.add_argument("--val", type=float, default=0.15, help="validation fraction (default 0.15)")
    sp.add_argument("--test", type=float, default=0.15, help="test fraction (default 0.15)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    _input_options(sp)
    sp.set_defaults(func=run_split)

    f = dsub.add_parser("frames", help="extract frames from a video, near-identical ones skipped")
    f.add_argument("video")
    f.add_argument("--out", required=True, metavar="DIR", help="folder for <video>_t<ms>.jpg files")
    f.add_argument(
        "--every", type=float, default=1.0, metavar="SECONDS", help="one frame per interval (0: all)"
    )
    f.add_argument("--max", type=int, dest="max_frames", metavar="N", help="stop after N frames")
    f.add_argument(
        "--min-change",
        type=float,
        default=3.0,
        help="skip frames whose 32x32 gray thumbnail differs from the last kept one by less (0-255)",
    )
    f.set_defaults(func=run_frames)

    m = dsub.add_parser("merge", help="combine learning bases into one")
    m.add_argument("inputs", nargs="+", metavar="BASE", help="learning bases to combine (at least two)")
    m.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    m.add_argument("--to", choices=FORMATS, help="output format (default: the first input's)")
    _input_options(m)
    m.add_argument(
        "--keep-classes",
        action="store_true",
        help="merge bases whose classes differ (e.g. no_mask and without_mask) without reconciling them",
    )
    _copy_option(m)
    m.set_defaults(func=run_merge)

    pl = dsub.add_parser(
        "prelabel",
        help="label images with a model for correcting in LabelImg, keeping those most worth labelling",
        description="Writes each chosen image with its VOC XML beside it and classes.txt: open it with "
        "'labelImg DIR DIR/classes.txt DIR'. --select keeps the N images most worth labelling and writes "
        "selection.csv (scores and why each was picked).",
    )
    pl.add_argument("images", help="folder, glob or image file (e.g. the output of 'data frames')")
    pl.add_argument("--out", required=True, metavar="DIR", help="folder to write (LabelImg layout)")
    pl.add_argument("--model", help="checkpoint or built-in name (default: the built-in default model)")
    pl.add_argument(
        "--conf",
        type=float,
        default=PRELABEL_CONF,
        help=f"keep detections scoring at least this (default {PRELABEL_CONF}: a person reviews every box)",
    )
    pl.add_argument("--min-face", type=float, default=0.0, metavar="PX", help="skip faces smaller than PX")
    pl.add_argument("--select", type=int, metavar="N", help="keep only the N images most worth labelling")
    pl.add_argument(
        "--by",
        default="mixed",
        choices=STRATEGIES,
        help="how --select ranks: uncertain faces, the rare class (no_mask), images unlike the base and "
        "each other, or mixed = 0.4 uncertainty + 0.3 rare + 0.3 diversity (default)",
    )
    pl.add_argument("--base", metavar="PATH", help="the existing learning base, for --by diversity/mixed")
    pl.add_argument(
        "--box-style",
        metavar="NAME",
        help="draw the pre-labels in that label set's box style (the default model: kaggle, its default, "
        "or ilc, tight eyebrows-to-chin boxes)",
    )
    add_stage_options(pl, "pre-label")
    pl.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    _copy_option(pl)
    pl.set_defaults(func=run_prelabel)

    rv = dsub.add_parser("review", help="contact sheet (HTML) of pre-labelled images, uncertain faces marked")
    rv.add_argument("dir", help="folder written by 'data prelabel' (or any learning base)")
    rv.add_argument("--out", metavar="FILE", help="HTML file to write (default DIR/review.html)")
    rv.set_defaults(func=run_review)


def _help(p: argparse.ArgumentParser) -> int:
    p.print_help()
    return 2


def run_stats(args: argparse.Namespace) -> int:
    ds = load_dataset(args.path, args.format, args.merge, args.split)
    stats = dataset_stats(ds)
    print(format_stats(stats, str(args.path)), end="")
    if args.plot:  # first: a bad plot file name must fail before anything is written
        from maskwatch.data.stats import plot_stats

        plot_stats(stats, Path(args.plot))
        print(f"wrote {args.plot}")
    if args.json:
        write_json(args.json, stats)
        print(f"wrote {args.json}")
    return 0


def run_duplicates(args: argparse.Namespace) -> int:
    import numpy as np

    from maskwatch.data.duplicates import duplicates_json, find_duplicates, format_duplicates
    from maskwatch.io import check_output, write_bgr_image

    for option, value in (("--json", args.json), ("--out", args.out)):
        check_output(value, option, [args.path])
    if args.out and Path(args.out).suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise MaskwatchError(f"--out {args.out}: give a .jpg or .png file")
    ds = load_dataset(args.path, args.format, args.merge)
    report = find_duplicates(ds, args.max_distance)
    print(format_duplicates(report, str(args.path)), end="")
    if args.out and report.copies:
        from maskwatch.engine.report import duplicate_sheet

        write_bgr_image(args.out, np.asarray(duplicate_sheet(report, ds))[:, :, ::-1])
        print(f"wrote {args.out}")
    if args.json:
        write_json(args.json, duplicates_json(report, ds))
        print(f"wrote {args.json}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    ds = load_dataset(args.src, args.format, args.merge, args.split)
    save_dataset(ds, args.dst, args.to, args.copy_images)
    classes = ", ".join(ds.classes)
    print(f"wrote {len(ds)} images, {ds.num_boxes} boxes, classes {classes} as {args.to} to {args.dst}")
    return 0


def run_split(args: argparse.Namespace) -> int:
    from maskwatch.data.split import split_dataset, write_split

    ds = load_dataset(args.path, args.format, args.merge)
    ds.splits = split_dataset(ds, args.val, args.test, args.seed)
    write_split(ds.splits, Path(args.out))
    print(format_stats(dataset_stats(ds), str(args.path)), end="")
    print(f"wrote {', '.join(f'{name}.txt' for name in ds.splits)} to {args.out}")
    return 0


def run_frames(args: argparse.Namespace) -> int:
    from maskwatch.data.frames import extract_frames

    result = extract_frames(args.video, args.out, args.every, args.max_frames, args.min_change)
    print(
        f"wrote {len(result.written)} frames to {args.out} "
        f"({result.skipped_similar} near-identical skipped, {result.decoded} decoded)"
    )
    return 0


def run_prelabel(args: argparse.Namespace) -> int:
    from maskwatch.apps.prelabel import check_options, check_output, prelabel, write_prelabel
    from maskwatch.data.layout import find_images
    from maskwatch.models.registry import load_detector
    from maskwatch.predict import with_stages

    check_options(args.conf, args.select, args.by, args.min_face)
    images = find_images(args.images)
    base = load_dataset(args.base) if args.base else None
    check_output(images, args.out)  # before the model runs
    detector = load_detector(args.model, args.device, args.box_style)
    result = prelabel(
        images,
        with_stages(detector, args.tta, args.classifier),
        args.conf,
        args.min_face,
        args.select,
        args.by,
        base,
        skip_unreadable=not Path(args.images).is_file(),
    )
    write_prelabel(result, args.out, args.copy_images)
    ds = result.dataset
    print(format_stats(dataset_stats(ds), args.out), end="")
    skipped = f", {len(result.skipped)} unreadable skipped" if result.skipped else ""
    chosen = ""
    if args.select:
        dups = f"; {result.near_duplicates} near-duplicates never picked" if result.near_duplicates else ""
        chosen = f" (the {len(ds)} most worth labelling by {args.by}{dups}; see selection.csv)"
    print(f"pre-labelled {len(ds)} of {len(images)} images{chosen}{skipped} in {args.out}")
    print(f"correct them with: labelImg {args.out} {Path(args.out) / 'classes.txt'} {args.out}")
    return 0


def run_review(args: argparse.Namespace) -> int:
    from maskwatch.apps.review import write_review

    out = write_review(args.dir, args.out)
    print(f"wrote {out}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from maskwatch.data.classmap import parse_merge
    from maskwatch.data.formats import detect_format
    from maskwatch.data.merge import merge_datasets

    if len(args.inputs) < 2:
        raise MaskwatchError("merge needs at least two learning bases")
    mapping = parse_merge(args.merge)
    parts = [load_dataset(p, args.format) for p in args.inputs]
    names = [Path(p).stem if Path(p).is_file() else Path(p).resolve().name for p in args.inputs]
    result = merge_datasets(parts, names, mapping, args.keep_classes)
    ds = result.dataset
    fmt = args.to or (args.format if args.format != "auto" else detect_format(Path(args.inputs[0])))
    save_dataset(ds, args.out, fmt, args.copy_images)
    print(format_stats(dataset_stats(ds), args.out), end="")
    print(f"wrote {len(ds)} images from {len(parts)} bases as {fmt} to {args.out}")
    if result.duplicates:
        differ = (
            f", {result.relabelled_duplicates} labelled differently" if result.relabelled_duplicates else ""
        )
        print(
            f"skipped {result.duplicates} images already in an earlier base (same bytes{differ}; "
            "the first base's labels kept)"
        )
    return 0
