"""The operating point: what a deployed detector does at one score threshold.

COCO AP summarises every threshold at once; a camera runs at one. At that threshold each face is a hit, a
class swap (with_mask ↔ no_mask) or a miss, and each detection is a hit, a swap or a false alarm.

Evaluation predictions come from per-class NMS (a second class guess on a face is kept for AP); a camera
runs class-agnostic NMS and shows one label per face. So the detections above the threshold first go
through class-agnostic NMS (IoU ``nms_iou``), or a face guessed as both classes would count a hit and a
false alarm. Matching
is greedy by score and class-agnostic (a detection takes the unmatched face it overlaps most), so a swap is
seen as a swap rather than as one miss plus one false alarm; otherwise it follows pycocotools: one-to-one,
IoU ≥ ``iou``, regular faces first, and with a range of interest the same ignore semantics as
:mod:`maskwatch.engine.evaluate` (a detection on a too-small face counts for nothing, nor does missing it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from maskwatch.boxes import box_iou, nms
from maskwatch.data.record import Dataset, class_lookup, small_box_mask
from maskwatch.detections import Detections

# Per-face and per-detection outcome codes.
HIT, SWAP, MISS, IGNORED = 0, 1, 2, 3
FALSE_ALARM = MISS  # a detection without a face is the detection-side counterpart of a missed face


@dataclass
class ImageMatch:
    """The operating-point outcome in one image; labels are indices into the evaluated class list."""

    gt_labels: np.ndarray  # (G,)
    gt_state: np.ndarray  # (G,) HIT / SWAP / MISS / IGNORED
    det_index: np.ndarray  # (D,) indices into the image's Detections of those kept at the operating point
    det_labels: np.ndarray  # (D,)
    det_state: np.ndarray  # (D,) HIT / SWAP / FALSE_ALARM / IGNORED

    @property
    def missed(self) -> int:
        return int((self.gt_state == MISS).sum())

    @property
    def false_alarms(self) -> int:
        return int((self.det_state == FALSE_ALARM).sum())

    @property
    def swapped(self) -> int:
        return int((self.gt_state == SWAP).sum())

    @property
    def errors(self) -> int:
        return self.missed + self.false_alarms + self.swapped


def match_image(
    gt_boxes: np.ndarray,
    gt_ignore: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    iou: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy one-to-one matching: (matched detection per face, matched face per detection), -1 = none.

    Detections are taken by decreasing score (stable, as pycocotools sorts); each takes the regular face it
    overlaps most, and only when none is left above ``iou`` an ignored one.
    """
    n_gt, n_det = len(gt_boxes), len(det_boxes)
    gt_match = np.full(n_gt, -1, dtype=np.int64)
    det_match = np.full(n_det, -1, dtype=np.int64)
    if n_gt == 0 or n_det == 0:
        return gt_match, det_match
    ious = box_iou(det_boxes, gt_boxes)
    for d in np.argsort(-np.asarray(det_scores), kind="mergesort"):
        free = (gt_match < 0) & (ious[d] >= iou)
        for pool in (free & ~gt_ignore, free & gt_ignore):
            if pool.any():
                g = int(np.argmax(np.where(pool, ious[d], -1.0)))
                gt_match[g], det_match[d] = d, g
                break
    return gt_match, det_match


@dataclass
class Confusion:
    """Counts at one operating point. ``matrix[truth, predicted]`` over the classes plus a last "none" row
    and column: row "none" holds false alarms (no face there), column "none" holds missed faces."""

    class_names: tuple[str, ...]
    matrix: np.ndarray
    conf: float
    iou: float
    min_size: float
    nms_iou: float
    images: list[ImageMatch]

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall and F1 per class; a swap is a miss of one class and a false alarm of another."""
        out = {}
        m = self.matrix
        for k, name in enumerate(self.class_names):
            tp = int(m[k, k])
            fp, fn = int(m[:, k].sum()) - tp, int(m[k, :].sum()) - tp
            p = tp / (tp + fp) if tp + fp else float("nan")
            r = tp / (tp + fn) if tp + fn else float("nan")
            f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
            out[name] = {
                "precision": round(p * 100, 2),
                "recall": round(r * 100, 2),
                "f1": round(f1 * 100, 2),
                "tp": tp,
                "fp": fp,
                "fn": fn,
            }
        return out

    def to_json(self) -> dict[str, Any]:
        names = [*self.class_names, "none"]
        return {
            "conf": self.conf,
            "iou": self.iou,
            "min_size": self.min_size,
            "nms_iou": self.nms_iou,
            "truth": names,
            "predicted": names,
            "matrix": self.matrix.astype(int).tolist(),
            "missed": int(self.matrix[:-1, -1].sum()),
            "false_alarms": int(self.matrix[-1, :-1].sum()),
            "swapped": int(self.matrix[:-1, :-1].sum() - np.trace(self.matrix[:-1, :-1])),
            "per_class": self.per_class(),
        }


def confusion_at(
    ds: Dataset,
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    conf: float = 0.5,
    iou: float = 0.5,
    min_size: float = 0.0,
    nms_iou: float = 0.5,
) -> Confusion:
    """Match every image at score ≥ ``conf`` (after class-agnostic NMS at ``nms_iou``) and IoU ≥ ``iou``;
    faces below ``min_size`` px are ignored and detections below it dropped, as in the range-of-interest
    COCO evaluation."""
    class_names = tuple(class_names)
    k = len(class_names)
    matrix = np.zeros((k + 1, k + 1), dtype=np.int64)
    luts: dict[tuple[str, ...], np.ndarray] = {}
    images = []
    for rec, det in zip(ds.records, predictions, strict=True):
        gt_labels, gt_ignore = rec.scored(class_names, min_size)
        keep = np.nonzero((det.confidence >= conf) & ~small_box_mask(det.xyxy, min_size))[0]
        keep = np.sort(keep[nms(det.xyxy[keep], det.confidence[keep], nms_iou)])
        if det.class_names not in luts:
            luts[det.class_names] = class_lookup(det.class_names, class_names)
        det_labels = luts[det.class_names][det.class_id[keep]]
        gt_match, det_match = match_image(rec.boxes, gt_ignore, det.xyxy[keep], det.confidence[keep], iou)

        gt_state = np.full(len(gt_labels), MISS, dtype=np.int64)
        hit = gt_match >= 0
        gt_state[hit] = np.where(det_labels[gt_match[hit]] == gt_labels[hit], HIT, SWAP)
        gt_state[gt_ignore] = IGNORED
        det_state = np.full(len(keep), FALSE_ALARM, dtype=np.int64)
        on = det_match >= 0
        det_state[on] = gt_state[det_match[on]]

        counted = hit & ~gt_ignore
        np.add.at(matrix, (gt_labels[counted], det_labels[gt_match[counted]]), 1)
        np.add.at(matrix, (gt_labels[~hit & ~gt_ignore], k), 1)
        np.add.at(matrix, (k, det_labels[det_state == FALSE_ALARM]), 1)
        images.append(ImageMatch(gt_labels, gt_state, keep, det_labels, det_state))
    return Confusion(class_names, matrix, conf, iou, min_size, nms_iou, images)
