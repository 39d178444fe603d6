"""A contact sheet of pre-labelled images (``maskwatch data review``), to spot obvious errors (a painted
face boxed, a crowd missed, a class flipped) before a labelling session, or to check a session's work.

One self-contained HTML file: thumbnails are embedded as JPEG data URIs and boxes drawn as SVG over them,
so the sheet opens anywhere, offline, and can be mailed. Boxes are coloured by class; a box the model was
unsure of (``prelabel.json``: class margin or score near the threshold) is dashed and its card outlined,
and the sheet lists those images first, in ``selection.csv``'s order when there is one.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from maskwatch.apps.prelabel import SCORES_FILE, SELECTION_FILE
from maskwatch.boxes import box_iou
from maskwatch.data.formats import load_dataset
from maskwatch.data.record import Annotation
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, load_image, read_json

THUMB = 420  # px, long side
PALETTE = {"with_mask": "#2e9d4f", "no_mask": "#d7263d"}
OTHER_COLOURS = ("#1f6fd1", "#9c27b0", "#ff8f00", "#00897b")
MATCH_IOU = 0.9  # a box still this close to the model's is the model's (else: edited by hand)

STYLE = """
body{font:14px system-ui,sans-serif;margin:16px;background:#f4f4f4;color:#222}
h1{font-size:20px;margin:0 0 4px}.legend span{margin-right:14px}.sw{display:inline-block;width:12px;
height:12px;margin-right:4px;vertical-align:-1px}.grid{display:flex;flex-wrap:wrap;gap:12px;margin-top:12px}
.card{background:#fff;border:3px solid #fff;border-radius:6px;padding:6px;width:auto}
.card.uncertain{border-color:#ff9800}.card svg{display:block}.cap{font-size:12px;margin-top:4px;
max-width:420px;word-break:break-all}.badge{background:#ff9800;color:#fff;border-radius:3px;padding:0 4px}
text{font:bold 12px system-ui,sans-serif;paint-order:stroke;stroke:#000;stroke-width:3px;fill:#fff}
"""


def colour(name: str, classes: list[str]) -> str:
    if name in PALETTE:
        return PALETTE[name]
    return OTHER_COLOURS[classes.index(name) % len(OTHER_COLOURS)] if name in classes else "#555"


def _thumbnail(path: Path) -> tuple[str, float, int, int]:
    im = Image.fromarray(load_image(path))
    scale = min(1.0, THUMB / max(im.size))
    im = im.resize(
        (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BILINEAR
    )
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return base64.b64encode(buf.getvalue()).decode(), scale, im.width, im.height


def _scores_for(rec: Annotation, faces: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The model's score entry for each box of the (maybe corrected) XML, None where a person drew it."""
    written = [f for f in faces if f.get("written", True)]
    if not len(rec.boxes) or not written:
        return [None] * len(rec.boxes)
    iou = box_iou(rec.boxes, np.array([f["box"] for f in written], dtype=np.float64))
    best = iou.argmax(axis=1)
    return [
        written[j] if iou[i, j] >= MATCH_IOU and written[j]["label"] == rec.labels[i] else None
        for i, j in enumerate(best)
    ]


def _card(rec: Annotation, faces: list[dict[str, Any]], classes: list[str], why: str) -> tuple[str, int]:
    data, scale, w, h = _thumbnail(rec.image)
    shapes, doubtful = [], 0
    for box, label, info in zip(rec.boxes, rec.labels, _scores_for(rec, faces), strict=True):
        x1, y1, x2, y2 = (float(v) * scale for v in box)
        uncertain = bool(info and info["uncertain"])
        doubtful += uncertain
        dash = ' stroke-dasharray="5 3"' if uncertain else ""
        text = f"{label} {info['score']:.2f}{' ?' if uncertain else ''}" if info else f"{label} (edited)"
        c = colour(label, classes)
        tx = max(0.0, min(x1, w - 7.0 * len(text)))  # keep the label inside the thumbnail
        shapes.append(
            f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{x2 - x1:.1f}" height="{y2 - y1:.1f}" fill="none" '
            f'stroke="{c}" stroke-width="{3 if uncertain else 2}"{dash}/>'
            f'<text x="{tx:.1f}" y="{max(y1 - 3, 11):.1f}">{html.escape(text)}</text>'
        )
    badge = f' <span class="badge">{doubtful} uncertain</span>' if doubtful else ""
    return (
        f'<div class="card{" uncertain" if doubtful else ""}" data-image="{html.escape(rec.name)}">'
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg">'
        f'<image href="data:image/jpeg;base64,{data}" width="{w}" height="{h}"/>{"".join(shapes)}</svg>'
        f'<div class="cap"><b>{html.escape(rec.name)}</b> · {len(rec.boxes)} faces{badge}'
        f"{'<br>' + html.escape(why) if why else ''}</div></div>",
        doubtful,
    )


def _selection_order(directory: Path) -> dict[str, tuple[int, str]]:
    path = directory / SELECTION_FILE
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("rank")]
    try:
        return {r["image"]: (int(r["rank"]), r["reason"]) for r in rows}
    except (KeyError, ValueError) as e:
        raise MaskwatchError(f"{path}: not a selection.csv written by 'data prelabel' ({e})") from None


def review_sheet(directory: str | Path) -> str:
    """The HTML text of the contact sheet for a pre-labelled folder (or any learning base)."""
    directory = Path(directory)
    ds = load_dataset(directory)
    scores_path = directory / SCORES_FILE
    scores = read_json(scores_path) if scores_path.is_file() else {"images": {}}
    if not isinstance(scores, dict) or not isinstance(scores.get("images"), dict):
        raise MaskwatchError(f"{scores_path}: not a prelabel.json written by 'data prelabel'")
    order = _selection_order(directory)
    cards = []
    for rec in ds:
        rank, why = order.get(rec.name, (len(order) + 1, ""))
        card, doubtful = _card(rec, scores["images"].get(rec.name, []), ds.classes, why)
        cards.append((doubtful == 0, rank, rec.name, card))
    cards.sort()
    legend = "".join(
        f'<span><i class="sw" style="background:{colour(c, ds.classes)}"></i>{html.escape(c)}</span>'
        for c in ds.classes
    )
    uncertain = sum(not c[0] for c in cards)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>review: {html.escape(directory.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(directory.name)}: {len(ds)} images, {ds.num_boxes} boxes, "
        f"{uncertain} with uncertain faces</h1>"
        f'<div class="legend">{legend}<span>dashed box with ?, orange card: the model was unsure '
        "(class margin or score near the threshold) · (edited): drawn or changed by hand</span></div>"
        f'<div class="grid">{"".join(c[3] for c in cards)}</div></body></html>\n'
    )


def write_review(directory: str | Path, out: str | Path | None = None) -> Path:
    """Write the contact sheet (default ``DIR/review.html``) atomically; returns its path."""
    target = Path(out) if out else Path(directory) / "review.html"
    if target.is_dir():
        raise MaskwatchError(f"{target}: is a folder; give an .html file name")
    text = review_sheet(directory)
    with atomic_write(target) as f:
        f.write(text)
    return target
