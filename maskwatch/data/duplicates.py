"""Near-duplicate images of a learning base, and whether their labels agree.

Why: a base gathered from the web holds the same photo more than once (re-encoded, resized, re-cropped),
often labelled by different people or at different times. ``data split`` already keeps such images on one
side; here they are put to use. Two labellings of one picture are a free measurement of the labels
themselves:

- how far two boxes of one face lie apart says how precisely the base's boxes are drawn, and so how much
  AP at strict IoU (0.75 and above) any model can score against them: a model cannot agree with a label
  better than the labellers agree with each other, give or take the one labeller's share of the spread;
- a face given two classes, or boxed on one copy and not on the other, is a labelling error to fix.

Only pairs that are the same picture up to scale are compared (same aspect ratio, thumbnails alike); a
near-duplicate that is re-cropped is listed but its boxes cannot be laid on the other's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from maskwatch.boxes import match_boxes
from maskwatch.data.record import Dataset
from maskwatch.data.split import leakage_groups
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image

MATCH_IOU = 0.3  # two boxes of one face drawn by two people overlap more; two neighbours' faces rarely do
SAME_ASPECT = 0.01  # relative difference of width/height below which two copies can share a frame
SAME_PICTURE = 4.0  # mean absolute difference (0-255) of 64x64 grey thumbnails of one picture re-encoded
COPIED_PX = 1.0  # boxes this close on every side were copied from one copy to the other, not redrawn
_THUMB = 64


@dataclass(frozen=True)
class FacePair:
    """One face labelled on both copies; ``box_b`` is in copy A's pixels."""

    box_a: np.ndarray
    box_b: np.ndarray
    label_a: str
    label_b: str
    iou: float


@dataclass
class CopyPair:
    """Two copies of one picture (record indices ``a``, ``b``) and how their labels compare.

    ``only_a``/``only_b`` are the boxes of one copy with no counterpart on the other (indices into that
    copy's boxes)."""

    a: int
    b: int
    stem_a: str
    stem_b: str
    faces: list[FacePair] = field(default_factory=list)
    only_a: list[int] = field(default_factory=list)
    only_b: list[int] = field(default_factory=list)
    copied: bool = False  # the same boxes to a pixel: labels copied over, not drawn twice

    @property
    def class_differs(self) -> int:
        return sum(f.label_a != f.label_b for f in self.faces)

    @property
    def worst_iou(self) -> float:
        return min((f.iou for f in self.faces), default=1.0)

    def iou_text(self) -> str:
        """The faces' IoUs, or their range when there are many (a crowd photo has dozens)."""
        ious = sorted((f.iou for f in self.faces), reverse=True)
        if not ious:
            return "no face on both"
        if len(ious) <= 4:
            return "IoU " + ", ".join(f"{v:.2f}" for v in ious)
        return f"{len(ious)} faces, IoU {ious[-1]:.2f} to {ious[0]:.2f}, median {float(np.median(ious)):.2f}"

    @property
    def disagrees(self) -> bool:
        """Something here is worth a labeller's look: a face on one copy only, two classes, or IoU < 0.5."""
        return bool(self.only_a or self.only_b or self.class_differs or self.worst_iou < 0.5)


@dataclass
class DuplicateReport:
    """Near-duplicate groups of a base (record indices, two images or more) and the label comparison of
    every pair in them that is one picture up to scale."""

    images: int
    groups: list[list[int]]
    copies: list[CopyPair]
    reframed: int  # near-duplicate pairs of another framing (crop, aspect): listed, not compared

    @property
    def faces(self) -> list[FacePair]:
        """The faces drawn twice: those of pairs whose labels were copied say nothing of how precisely
        boxes are drawn, so they are left out."""
        return [f for c in self.copies if not c.copied for f in c.faces]

    def side_spread(self) -> np.ndarray:
        """One labeller's spread of each side (left, top, right, bottom), as a share of the face's width
        (left, right) or height (top, bottom): the standard deviation of the two copies' difference over
        sqrt(2), the two labellings taken as independent draws of the same precision."""
        faces = self.faces
        if len(faces) < 2:
            return np.full(4, np.nan)
        return side_spread(np.stack([f.box_a for f in faces]), np.stack([f.box_b for f in faces]))

    def summary(self) -> dict[str, Any]:
        """The numbers ``data duplicates`` prints and writes (JSON-ready; IoUs as fractions)."""
        ious = np.array([f.iou for f in self.faces])

        def share(t: float) -> float | None:
            return float((ious >= t).mean()) if len(ious) else None

        spread = self.side_spread()
        return {
            "images": self.images,
            "groups": len(self.groups),
            "images_in_groups": sum(len(g) for g in self.groups),
            "copies_compared": len(self.copies),
            "copied_labels": sum(c.copied for c in self.copies),
            "reframed_pairs": self.reframed,
            "faces_drawn_twice": len(ious),
            "iou_mean": float(ious.mean()) if len(ious) else None,
            "iou_median": float(np.median(ious)) if len(ious) else None,
            "iou_at_least": {f"{t:g}": share(t) for t in (0.5, 0.75, 0.9)},
            "class_differs": sum(c.class_differs for c in self.copies),
            "one_copy_only": sum(len(c.only_a) + len(c.only_b) for c in self.copies),
            "side_spread": None
            if np.isnan(spread).any()
            else dict(zip(("left", "top", "right", "bottom"), map(float, spread), strict=True)),
        }


def face_scale(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Each face's mean width and height over its two drawings, as (N, 4) to divide xyxy offsets by."""
    size = (a[:, 2:] - a[:, :2] + b[:, 2:] - b[:, :2]) / 2
    return np.concatenate([size, size], axis=1)


def side_spread(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One labeller's spread of each side from faces drawn twice (``a[i]`` and ``b[i]``, xyxy): the
    standard deviation of the two drawings' difference, as a share of the face's size, over sqrt(2)."""
    return np.asarray(((a - b) / face_scale(a, b)).std(axis=0, ddof=1) / np.sqrt(2))


def _thumbnail(path: Any) -> np.ndarray:
    image = Image.fromarray(load_image(path)).convert("L").resize((_THUMB, _THUMB), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def boxes_in(ds: Dataset, b: int, a: int) -> np.ndarray:
    """Record ``b``'s boxes in record ``a``'s pixels, the two being one picture at two sizes."""
    ra, rb = ds.records[a], ds.records[b]
    return rb.boxes * np.array([ra.width / rb.width, ra.height / rb.height] * 2)


def compare_copies(ds: Dataset, a: int, b: int) -> CopyPair:
    """The label comparison of records ``a`` and ``b``, taken as one picture at two sizes."""
    ra, rb = ds.records[a], ds.records[b]
    boxes_b = boxes_in(ds, b, a)
    rows, cols, ious = match_boxes(ra.boxes, boxes_b, MATCH_IOU)
    pair = CopyPair(a, b, ra.stem, rb.stem)
    pair.faces = [
        FacePair(ra.boxes[i].copy(), boxes_b[j], ra.labels[i], rb.labels[j], float(iou))
        for i, j, iou in zip(rows.tolist(), cols.tolist(), ious.tolist(), strict=True)
    ]
    pair.only_a = sorted(set(range(len(ra.boxes))) - set(rows.tolist()))
    pair.only_b = sorted(set(range(len(rb.boxes))) - set(cols.tolist()))
    pair.copied = bool(
        pair.faces
        and not pair.only_a
        and not pair.only_b
        and all(np.abs(f.box_a - f.box_b).max() <= COPIED_PX for f in pair.faces)
    )
    return pair


def find_duplicates(ds: Dataset, max_distance: int = 6) -> DuplicateReport:
    """Group ``ds``'s near-duplicate images (the difference hash ``data split`` uses, at most
    ``max_distance`` bits apart) and compare the labels of every pair that is one picture up to scale."""
    if not 0 <= max_distance <= 64:
        raise MaskwatchError(f"--max-distance {max_distance}: must be between 0 and 64 bits")
    groups = [g for g in leakage_groups(ds, max_distance, videos=False) if len(g) > 1]
    thumbs: dict[int, np.ndarray] = {}
    copies: list[CopyPair] = []
    reframed = 0
    for group in groups:
        for k, a in enumerate(group):
            for b in group[k + 1 :]:
                ra, rb = ds.records[a], ds.records[b]
                aspect_a, aspect_b = ra.width / ra.height, rb.width / rb.height
                same = abs(aspect_a - aspect_b) <= SAME_ASPECT * aspect_a
                if same:
                    for i in (a, b):  # each image read once, however many pairs it is in
                        if i not in thumbs:
                            thumbs[i] = _thumbnail(ds.records[i].image)
                    same = float(np.abs(thumbs[a] - thumbs[b]).mean()) <= SAME_PICTURE
                if same:
                    copies.append(compare_copies(ds, a, b))
                else:
                    reframed += 1
    copies.sort(key=lambda c: (not c.disagrees, c.worst_iou, c.stem_a))
    return DuplicateReport(len(ds), groups, copies, reframed)


def _faces(n: int) -> str:
    return f"{n} face" + ("" if n == 1 else "s")


def format_duplicates(report: DuplicateReport, name: str, rows: int = 20) -> str:
    """The summary and the pairs most worth a labeller's look, as ``data duplicates`` prints them."""
    s = report.summary()
    lines = [
        f"{name}: {s['images']} images; {s['groups']} groups of near-duplicates ({s['images_in_groups']} "
        "images)",
        f"{s['copies_compared']} pairs are one picture up to scale (labels compared), "
        f"{s['reframed_pairs']} are framed differently (not compared)",
    ]
    if s["copied_labels"]:
        lines.append(
            f"{s['copied_labels']} pairs carry the same boxes (copied, not drawn twice): left out below"
        )
    if s["faces_drawn_twice"]:
        at = s["iou_at_least"]
        lines.append(
            f"faces drawn on both copies: {s['faces_drawn_twice']}; box IoU mean {s['iou_mean']:.2f}, "
            f"median {s['iou_median']:.2f}; at least 0.5: {at['0.5']:.0%}, 0.75: {at['0.75']:.0%}, "
            f"0.9: {at['0.9']:.0%}"
        )
        if s["side_spread"]:
            sides = ", ".join(f"{k} {v:.1%}" for k, v in s["side_spread"].items())
            lines.append(f"one labeller's spread per side (sd, share of the face's size): {sides}")
    lines.append(
        f"class differs: {_faces(s['class_differs'])}; boxed on one copy only: {_faces(s['one_copy_only'])}"
    )
    shown = [c for c in report.copies if c.disagrees][:rows]
    if shown:
        lines.append(
            f"pairs to look at (worst first, {len(shown)} of {sum(c.disagrees for c in report.copies)}):"
        )
        width = max(len(c.stem_a) for c in shown)
        for c in shown:
            what = [c.iou_text()]
            what += [f"{c.class_differs} class differs"] if c.class_differs else []
            what += [f"{len(c.only_a) + len(c.only_b)} on one copy only"] if c.only_a or c.only_b else []
            lines.append(f"  {c.stem_a:<{width}}  {c.stem_b}: {'; '.join(what)}")
    return "\n".join(lines) + "\n"


def duplicates_json(report: DuplicateReport, ds: Dataset) -> dict[str, Any]:
    """Everything: the summary, every group (file names) and every compared pair face by face."""

    def box(b: np.ndarray) -> list[float]:
        return [round(float(v), 2) for v in b]

    return {
        **report.summary(),
        "near_duplicate_groups": [[ds.records[i].name for i in g] for g in report.groups],
        "pairs": [
            {
                "a": ds.records[c.a].name,
                "b": ds.records[c.b].name,
                "faces": [
                    {
                        "box_a": box(f.box_a),
                        "box_b": box(f.box_b),
                        "label_a": f.label_a,
                        "label_b": f.label_b,
                        "iou": round(f.iou, 4),
                    }
                    for f in c.faces
                ],
                "only_a": [box(ds.records[c.a].boxes[i]) for i in c.only_a],
                "only_b": [box(ds.records[c.b].boxes[i]) for i in c.only_b],
            }
            for c in report.copies
        ],
    }
