"""What ``maskwatch eval`` shows: the printed tables, and the ``--out`` folder (COCO files, metrics, PR
curves, confusion matrix, error gallery).

Plots use matplotlib's object API on the Agg canvas (no pyplot, no global backend switch), so they work
headless and inside any host program. The gallery is static PNGs plus one ``index.html`` with relative
links, so the folder can be copied, zipped or served as is.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from maskwatch.data.duplicates import DuplicateReport, boxes_in
from maskwatch.data.record import Dataset
from maskwatch.detections import Detections
from maskwatch.engine.confusion import FALSE_ALARM, HIT, IGNORED, MISS, SWAP, Confusion, ImageMatch
from maskwatch.engine.errors import KIND_HELP, KINDS, ErrorBreakdown
from maskwatch.engine.evaluate import MATCH_IOU, SUMMARY_KEYS, EvalReport, EvalRun, mean_precision
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_dir, check_output, check_replaceable, load_image, write_json
from maskwatch.models.crops import square_crop

RESULTS_FILE = "coco_instances_results.json"  # the name Detectron2 gives it
RESULT_KEYS = ("image_id", "category_id", "bbox", "score")
GROUND_TRUTH_FILE = "ground_truth.json"
METRICS_FILE = "metrics.json"
CONFUSION_FILE = "confusion_matrix.png"
GALLERY_DIR = "gallery"
ERRORS_DIR = "errors"  # --errors: a contact sheet per kind of false detection, and of the missed faces
SHEET_TILE = 128  # px, side of one crop in those sheets
SHEET_CONTEXT = 2.5  # a crop's side in the sheets, in box sides: the face and what is around it
GALLERY_SIDE = 1024  # long side of gallery images (at most 2× the original): tiny faces visible, pages light

# Gallery colours (RGB): ground truth in greens/yellow, predictions in blue/orange/red, ignored in grey.
GT_COLOURS = {HIT: (0, 200, 0), SWAP: (0, 200, 0), MISS: (255, 230, 0), IGNORED: (150, 150, 150)}
DET_COLOURS = {HIT: (30, 144, 255), SWAP: (255, 140, 0), FALSE_ALARM: (230, 0, 0), IGNORED: (150, 150, 150)}
LEGEND = (
    ("ground truth, found", GT_COLOURS[HIT]),
    ("ground truth, missed", GT_COLOURS[MISS]),
    ("detection, correct", DET_COLOURS[HIT]),
    ("detection, wrong class", DET_COLOURS[SWAP]),
    ("detection, false alarm", DET_COLOURS[FALSE_ALARM]),
    ("ignored (below --min-size, or labelled ignore)", GT_COLOURS[IGNORED]),
)


def _pct(v: float | None) -> str:
    return "nan" if v is None or not math.isfinite(v) else f"{v:.1f}"


def _cell(run: EvalRun, key: str, name: str | None = None) -> str:
    """A percent value, with its bootstrap interval when there is one: ``55.5 (51.2-59.8)``."""
    if run.iou_thr is not None and key in ("AP50", "AP75"):
        return "-"  # a single-threshold run has no AP50/AP75
    value = run.metrics[key] if name is None else run.metrics["per_class"][name][key]
    if run.interval is None:
        return _pct(value)
    iv = run.interval.get(key) if name is None else run.interval["per_class"][name].get(key)
    return _pct(value) + (f" ({_pct(iv[0])}-{_pct(iv[1])})" if iv else " (n/a)")


def pipe_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown pipe table like Detectron2 prints (first column left-aligned, numbers centred)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "| "
        + " | ".join(c.center(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        + " |"
        for r in cells
    ]
    rule = "|" + "|".join(":" + "-" * w + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([lines[0], rule, *lines[1:]])


def format_report(report: EvalReport) -> str:
    """What ``maskwatch eval`` prints: pycocotools' summaries, the AP tables and the operating point."""
    full, roi, at_iou = report.full, report.roi, report.at_iou
    roi_name = f">= {roi.min_size:g} px" if roi else ""
    regions = f", {full.ignored} 'ignore' regions" if full.ignored else ""
    parts = [
        f"pycocotools, all faces ({report.images} images, {full.boxes} boxes{regions}):",
        full.summary.rstrip(),
    ]
    if roi:
        parts += [
            f"\npycocotools, range of interest (faces {roi_name}: {roi.ignored - full.ignored} smaller faces "
            "ignored, smaller detections dropped):",
            roi.summary.rstrip(),
        ]
    runs = [("all faces", full)] + ([(roi_name, roi)] if roi else [])
    rows_runs = runs + ([(f"IoU {at_iou.iou_thr:g}, {roi_name or 'all faces'}", at_iou)] if at_iou else [])
    parts += [
        "\nEvaluation results for bbox (%):",
        pipe_table(
            ["faces", *SUMMARY_KEYS], [[n, *(_cell(r, k) for k in SUMMARY_KEYS)] for n, r in rows_runs]
        ),
        "\nPer-category bbox AP (%):",
    ]
    header = ["category", "AP", "AP50"] + ([f"AP {roi_name}", f"AP50 {roi_name}"] if roi else [])
    header += [f"AP@{at_iou.iou_thr:g}" + (f" {roi_name}" if roi else "")] if at_iou else []
    rows = []
    for name in report.class_names:
        row = [name] + [_cell(r, k, name) for _, r in runs for k in ("AP", "AP50")]
        rows.append(row + ([_cell(at_iou, "AP", name)] if at_iou else []))
    parts.append(pipe_table(header, rows))
    if report.bootstrap:
        b = report.bootstrap
        parts.append(
            f"(low-high): {b['level']:g} % image-bootstrap interval, "
            f"{b['resamples']} resamples, seed {b['seed']}"
        )
    c = report.confusion.to_json()
    where = f", faces {roi_name}" if roi else ""
    parts += [
        f"\nOperating point (score >= {c['conf']:g}, IoU >= {c['iou']:g}{where}): "
        f"{c['missed']} missed, {c['false_alarms']} false alarm(s), {c['swapped']} wrong class; "
        "per category (%):",
        pipe_table(
            ["category", "precision", "recall", "F1"],
            [[n, _pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"])] for n, v in c["per_class"].items()],
        ),
    ]
    if report.errors is not None:
        parts.append("\n" + format_errors(report.errors, roi_name))
    return "\n".join(parts) + "\n"


def format_errors(errors: ErrorBreakdown, roi_name: str = "") -> str:
    """The ``--errors`` table: false detections by kind, and AP50 without each kind."""
    e = errors

    def gain(v: float) -> str:
        return f"{_pct(v)} ({v - e.ap50:+.1f})"

    missed = f"{e.missed} of {e.faces} faces found by no detection" + (
        f" (median {np.median(e.missed_sizes):.0f} px, {int((e.missed_sizes < 16).sum())} under 16 px; "
        f"all faces: median {np.median(e.face_sizes):.0f} px)"
        if e.missed
        else ""
    )
    rows = [
        [kind, KIND_HELP[kind], e.counts[kind], e.counts_at_conf[kind], gain(e.without[kind])]
        for kind in KINDS
    ]
    rows.append(
        [
            "all of them",
            "the rest is missed faces",
            sum(e.counts.values()),
            sum(e.counts_at_conf.values()),
            gain(e.ceiling),
        ]
    )
    where = f", faces {roi_name}" if roi_name else ""
    return "\n".join(
        [
            f"Where AP50 goes (IoU {MATCH_IOU:g}{where}): AP50 {_pct(e.ap50)}; {missed}.",
            pipe_table(
                ["false detections", "what they are", "all", f"score >= {e.conf:g}", "AP50 without them"],
                rows,
            ),
        ]
    )


def contact_sheet(tiles: Sequence[tuple[Path, np.ndarray, str]], columns: int = 10) -> Image.Image:
    """A grid of crops around ``(image file, xyxy box, caption)`` tiles: each crop is 2.5x the box's long
    side (4 px at least), the box drawn in it, the caption under it, black where the crop runs off the
    image so the box stays centred. Images are read once however many tiles they give."""
    font = _font(11)
    side, caption_h = SHEET_TILE, 16
    sheet = Image.new(
        "RGB", (side * min(columns, len(tiles)), (side + caption_h) * -(-len(tiles) // columns))
    )
    draw = ImageDraw.Draw(sheet)
    images: dict[Path, np.ndarray] = {}
    for n, (path, box, caption) in enumerate(tiles):
        image = images.setdefault(path, load_image(path))
        long = max(box[2] - box[0], box[3] - box[1], 1.0)  # as square_crop measures it
        window = max(long, 4.0) * SHEET_CONTEXT  # image pixels across the tile
        tile = Image.fromarray(square_crop(image, box, side, window / long, fill=0))
        centre = np.array([box[0] + box[2], box[1] + box[3]] * 2) / 2
        ImageDraw.Draw(tile).rectangle(
            ((np.asarray(box[:4]) - centre) * (side / window) + side / 2).tolist(),
            outline=(0, 255, 0),
            width=2,
        )
        col, row = n % columns, n // columns
        sheet.paste(tile, (col * side, row * (side + caption_h)))
        draw.text(
            (col * side + 2, row * (side + caption_h) + side + 1), caption, fill=(255, 255, 255), font=font
        )
    return sheet


def _short(stem: str, n: int = 18) -> str:
    """A file stem cut in the middle to fit a tile (md5 names keep their two ends)."""
    return stem if len(stem) <= n else f"{stem[: n // 2 - 1]}..{stem[-(n // 2 - 1) :]}"


COPY_COLOURS = ((0, 220, 0), (255, 0, 255))  # copy A's boxes, copy B's (``data duplicates --out``)


def duplicate_sheet(report: DuplicateReport, ds: Dataset, limit: int = 48, columns: int = 4) -> Image.Image:
    """The compared copies, worst agreement first: copy A's picture around its faces, copy A's boxes and
    copy B's laid on it, so a labeller sees at a glance which of two labellings to keep."""
    side, caption_h = 256, 42
    pairs = report.copies[:limit]
    if not pairs:
        raise MaskwatchError("no two images are one picture: nothing to draw")
    font = _font(11)
    rows = -(-len(pairs) // columns)
    sheet = Image.new("RGB", (side * min(columns, len(pairs)), (side + caption_h) * rows))
    draw = ImageDraw.Draw(sheet)
    for n, c in enumerate(pairs):
        image = load_image(ds.records[c.a].image)
        own, other = ds.records[c.a].boxes, boxes_in(ds, c.b, c.a)
        both = (
            np.concatenate([own, other]) if len(own) + len(other) else np.array([[0, 0, *image.shape[1::-1]]])
        )
        lo, hi = both[:, :2].min(0), both[:, 2:].max(0)
        centre, long = (lo + hi) / 2, max(float((hi - lo).max()) * 1.3, 32.0)  # the faces and a margin
        box = np.array([*(centre - long / 2), *(centre + long / 2)])
        tile = Image.fromarray(square_crop(image, box, side, 1.0, fill=0))
        tdraw = ImageDraw.Draw(tile)
        for boxes, colour in zip((own, other), COPY_COLOURS, strict=True):
            for b in boxes:
                tdraw.rectangle(
                    ((b - np.r_[box[:2], box[:2]]) * (side / long)).tolist(), outline=colour, width=2
                )
        col, row = n % columns, n // columns
        sheet.paste(tile, (col * side, row * (side + caption_h)))
        flags = [f"{c.class_differs} given two classes"] if c.class_differs else []
        flags += [f"{len(c.only_a) + len(c.only_b)} boxed on one copy only"] if c.only_a or c.only_b else []
        x, y = col * side + 2, row * (side + caption_h) + side + 1
        for k, text in enumerate(
            [f"{_short(c.stem_a)} / {_short(c.stem_b)}", c.iou_text(), "; ".join(flags)]
        ):
            draw.text((x, y + 13 * k), text, fill=(255, 255, 255), font=font)
    return with_legend(
        sheet, _font(12), (("copy A's boxes", COPY_COLOURS[0]), ("copy B's boxes", COPY_COLOURS[1]))
    )


def write_error_sheets(errors: ErrorBreakdown, ds: Dataset, out: Path) -> list[str]:
    """One contact sheet per kind of false detection (``<kind>.jpg``, highest scores first) and one of the
    missed faces (``missed.jpg``, largest first), so the breakdown can be looked at: background detections
    on unlabelled faces say "label more", on walls and hands "train more". Returns the files written;
    images whose file is missing (``--predictions`` scored on sizes alone) are left out."""
    written = []
    for kind, items in errors.examples.items():
        tiles = [
            (
                ds.records[i].image,
                box,
                (f"{score:.2f}  " if math.isfinite(score) else "")
                + f"{name} {min(box[2] - box[0], box[3] - box[1]):.0f}px",
            )
            for i, box, score, name in items
            if ds.records[i].image.is_file()
        ]
        if tiles:
            out.mkdir(parents=True, exist_ok=True)
            name = safe_name(kind) + ".jpg"  # photographs: a tenth of the PNG's size
            contact_sheet(tiles).save(out / name, quality=85)
            written.append(name)
    return written


def safe_name(name: str) -> str:
    """A file-name-safe version of a class name or image stem."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "x"


def new_figure(size: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure  # imported here: matplotlib costs ~0.5 s and only --out needs it

    return Figure(figsize=size, dpi=100, layout="constrained")


def pr_curve_runs(report: EvalReport) -> list[tuple[str, EvalRun, str, Confusion]]:
    """(label, COCO run, line style, confusion matrix of the same faces) of each PR curve family: the dot on
    a curve comes from the confusion matrix computed on that curve's faces."""
    runs = [("all faces", report.full, "-", report.confusion_all or report.confusion)]
    if report.roi:
        runs.append(("range of interest", report.roi, "--", report.confusion))
    return runs


def plot_pr_curves(report: EvalReport, out: Path) -> list[Path]:
    """One PNG per class: precision/recall at IoU 0.5 and 0.75 (all faces) and at 0.5 on the range of
    interest. Each IoU 0.5 curve carries a dot at the ``--conf`` operating point, taken from the confusion
    matrix of the same faces (so the dot and the confusion table show the same precision and recall), and
    the legend says which curve each dot belongs to."""
    written = []
    conf = report.confusion.conf
    for k, name in enumerate(report.class_names):
        fig = new_figure((5.5, 4.5))
        ax = fig.add_subplot()
        for label, run, style, confusion in pr_curve_runs(report):
            ious = (0.5, 0.75) if run is report.full else (0.5,)
            for iou in ious:
                t = int(np.argmin(np.abs(run.iou_thresholds - iou)))
                p = run.precision[t, :, k]
                if (p < 0).all():
                    continue  # no ground truth of this class
                reached = (p > 0) | (np.arange(len(p)) == 0)
                r = run.recall_thresholds[reached]
                ap = mean_precision(p)
                (line,) = ax.plot(r, p[reached], style, label=f"{label}, IoU {iou:g} (AP {_pct(ap)})")
                op = confusion.per_class()[name]
                if iou == 0.5 and math.isfinite(op["precision"]) and math.isfinite(op["recall"]):
                    ax.plot(
                        op["recall"] / 100,
                        op["precision"] / 100,
                        "o",
                        color=line.get_color(),
                        markeredgecolor="k",
                        label=f"  score >= {conf:g} on {label}: "
                        f"P {_pct(op['precision'])}, R {_pct(op['recall'])}",
                    )
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"{name}")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(
                loc="lower left",
                fontsize=7,
                title="dots: operating point, as in the confusion table",
                title_fontsize=7,
            )
        else:
            ax.text(0.5, 0.5, "no ground truth", ha="center", va="center")
        path = out / f"pr_{safe_name(name)}.png"
        fig.savefig(path)
        written.append(path)
    return written


def plot_confusion(report: EvalReport, path: Path) -> None:
    """Heat map of the confusion matrix (colour = share of its row) beside the P/R/F1 table."""
    c = report.confusion
    m = c.matrix.astype(float)
    names = [*c.class_names, "none"]
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = new_figure((4 + 0.9 * len(names), 2.5 + 0.7 * len(names)))
    ax, tab = fig.subplots(2, 1, height_ratios=[len(names), 0.45 * len(c.class_names) + 0.6])
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), v in np.ndenumerate(m):
        if i == len(names) - 1 and j == len(names) - 1:
            continue
        ax.text(j, i, f"{int(v)}", ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(names)), [*c.class_names, "none\n(missed)"])
    ax.set_yticks(range(len(names)), [*c.class_names, "none\n(false alarm)"])
    ax.set(xlabel="prediction", ylabel="ground truth")
    where = f", faces >= {c.min_size:g} px" if c.min_size else ""
    ax.set_title(f"score >= {c.conf:g}, IoU >= {c.iou:g}{where}", fontsize=9)
    per = c.per_class()
    tab.axis("off")
    tab.table(
        cellText=[[_pct(v["precision"]), _pct(v["recall"]), _pct(v["f1"])] for v in per.values()],
        rowLabels=list(per),
        colLabels=["precision %", "recall %", "F1 %"],
        loc="center",
    )
    fig.savefig(path)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size)
    except TypeError:  # Pillow < 10.1 has one bitmap size only
        return ImageFont.load_default()


def draw_errors(
    image: np.ndarray, boxes: np.ndarray, match: ImageMatch, det: Detections, class_names: Sequence[str]
) -> Image.Image:
    """The image, scaled to the gallery size, with faces and operating-point detections in their colours."""
    h, w = image.shape[:2]
    scale = min(2.0, GALLERY_SIDE / max(h, w))  # small images grow too, so tiny faces stay visible
    im = Image.fromarray(image)
    if scale != 1:
        im = im.resize((round(w * scale), round(h * scale)), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(im)
    font = _font(max(10, round(12 * im.width / 640)))
    line = max(1, round(im.width / 400))
    for box, lab, state in zip(boxes * scale, match.gt_labels, match.gt_state, strict=True):
        draw.rectangle(box.tolist(), outline=GT_COLOURS[int(state)], width=line + (state == MISS))
        if state != IGNORED:
            draw.text(
                (box[0] + line, box[1] + line), class_names[lab], fill=GT_COLOURS[int(state)], font=font
            )
    for i, lab, state in zip(match.det_index, match.det_labels, match.det_state, strict=True):
        box = det.xyxy[i] * scale
        colour = DET_COLOURS[int(state)]
        draw.rectangle(box.tolist(), outline=colour, width=line)
        draw.text((box[0], box[3] + 1), f"{class_names[lab]} {det.confidence[i]:.2f}", fill=colour, font=font)
    return with_legend(im, font)


def with_legend(
    im: Image.Image,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    legend: Sequence[tuple[str, tuple[int, int, int]]] = LEGEND,
) -> Image.Image:
    """The image above a strip explaining its colours, so a PNG copied out of the gallery still reads."""
    probe = ImageDraw.Draw(im)
    line_h = round(probe.textbbox((0, 0), "Hg", font=font)[3] * 1.5)
    swatch, gap = line_h * 2 // 3, line_h // 2
    items = [(t, c, swatch + 4 + round(probe.textlength(t, font=font)) + gap) for t, c in legend]
    rows: list[list[tuple[str, tuple[int, int, int], int]]] = [[]]
    for item in items:  # wrap into as many rows as the image width needs
        if rows[-1] and sum(w for *_, w in rows[-1]) + item[2] > im.width - gap:
            rows.append([])
        rows[-1].append(item)
    out = Image.new("RGB", (im.width, im.height + line_h * len(rows) + gap), (255, 255, 255))
    out.paste(im, (0, 0))
    draw = ImageDraw.Draw(out)
    for r, row in enumerate(rows):
        x, y = gap // 2, im.height + gap // 2 + r * line_h
        for text, colour, width in row:
            draw.rectangle([x, y + 2, x + swatch, y + 2 + swatch], outline=colour, width=3)
            draw.text((x + swatch + 4, y), text, fill=(0, 0, 0), font=font)
            x += width
    return out


def _caption(stem: str, m: ImageMatch, conf: float) -> str:
    return (
        f"{stem}: {m.missed} missed, {m.false_alarms} false alarm(s), {m.swapped} wrong class "
        f"({int((m.gt_state != IGNORED).sum())} faces, {len(m.det_index)} detections ≥ {conf:g})"
    )


def write_gallery(
    report: EvalReport, ds: Dataset, predictions: Sequence[Detections], out: Path, n: int
) -> int:
    """The ``n`` images with the most errors at the operating point, as PNGs and one ``index.html``."""
    out.mkdir(parents=True, exist_ok=True)
    matches = report.confusion.images
    missing = sum(1 for r in ds.records if not r.image.is_file())  # scored from sizes alone (--predictions)
    ranked = sorted(
        (i for i, m in enumerate(matches) if m.errors and ds.records[i].image.is_file()),
        key=lambda i: (-matches[i].errors, i),
    )[:n]
    figures = []
    for rank, i in enumerate(ranked, start=1):
        rec, m = ds.records[i], matches[i]
        im = draw_errors(load_image(rec.image), rec.boxes, m, predictions[i], report.class_names)
        name = f"{rank:03d}_{safe_name(rec.stem)}.png"
        im.save(out / name, compress_level=3)
        cap = html.escape(_caption(rec.stem, m, report.confusion.conf))
        figures.append(
            f'<figure><a href="{name}"><img src="{name}" alt="{cap}"></a>'
            f"<figcaption>{cap}</figcaption></figure>"
        )
    legend = "".join(f'<span><i style="border-color:rgb{c}"></i>{html.escape(t)}</span>' for t, c in LEGEND)
    conf = report.confusion.conf
    note = f" {missing} image file(s) not found, left out." if missing else ""
    body = "\n".join(figures) or "<p>No errors at this operating point.</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>maskwatch error gallery</title>
<style>
body{{font-family:sans-serif;margin:1em;background:#fafafa}}
figure{{display:inline-block;vertical-align:top;margin:.5em;max-width:48%}}
img{{max-width:100%;border:1px solid #ccc}}
.legend span{{margin-right:1.2em;white-space:nowrap}}
.legend i{{display:inline-block;width:1.2em;height:.8em;border:3px solid;margin-right:.3em}}
</style></head><body>
<h1>Error gallery</h1>
<p>{len(ranked)} image(s) with the most misses, false alarms and wrong classes at score ≥ {conf:g}
(IoU ≥ {report.confusion.iou:g}), worst first.{note}</p>
<p class="legend">{legend}</p>
{body}
</body></html>
"""
    (out / "index.html").write_text(page, encoding="utf-8")
    return len(ranked)


def check_out_dir(path: Path, inputs: Sequence[str | Path] = ()) -> None:
    """Replace only an earlier ``--out`` folder (its ``metrics.json`` is the marker) or an empty one, never
    an input, and find an unwritable place before minutes of inference (:mod:`maskwatch.io`'s one rule)."""
    check_replaceable(path, marker=METRICS_FILE)
    check_output(path, "--out", inputs, folder=True)


def write_outputs(
    report: EvalReport, ds: Dataset, predictions: Sequence[Detections], out: str | Path, gallery: int = 20
) -> Path:
    """Write the whole ``--out`` folder under a temporary name and move it into place when complete."""
    out = Path(out)
    check_out_dir(out)
    names = report.class_names
    with atomic_dir(out) as tmp:
        cat_names = {c["id"]: c["name"] for c in report.full.ground_truth["categories"]}
        # Only the results fields (pycocotools' loadRes added more); "label" beside category_id makes the
        # file unambiguous even without ground_truth.json.
        results = [
            {k: r[k] for k in RESULT_KEYS} | {"label": cat_names[r["category_id"]]}
            for r in report.full.results
        ]
        # json.dumps runs the C encoder; json.dump (write_json) streams through the pure-Python one, 5× slower
        # on 30 000 results. Inside atomic_dir a plain write is already atomic.
        (tmp / RESULTS_FILE).write_text(json.dumps(results), encoding="utf-8")
        (tmp / GROUND_TRUTH_FILE).write_text(json.dumps(report.full.ground_truth), encoding="utf-8")
        plot_pr_curves(report, tmp)
        plot_confusion(report, tmp / CONFUSION_FILE)
        shown = write_gallery(report, ds, predictions, tmp / GALLERY_DIR, gallery)
        sheets = write_error_sheets(report.errors, ds, tmp / ERRORS_DIR) if report.errors else []
        metrics = report.metrics_json()
        metrics["files"] = {
            "results": RESULTS_FILE,
            "ground_truth": GROUND_TRUTH_FILE,
            "pr_curves": [f"pr_{safe_name(n)}.png" for n in names],
            "confusion_matrix": CONFUSION_FILE,
            "gallery": f"{GALLERY_DIR}/index.html",
            "gallery_images": shown,
        }
        if report.errors:
            metrics["files"]["errors"] = [f"{ERRORS_DIR}/{n}" for n in sheets]
        write_json(tmp / METRICS_FILE, metrics)
    return out
