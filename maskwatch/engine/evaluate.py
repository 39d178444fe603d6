"""COCO-style evaluation with the official pycocotools code (no home-made AP).

Ground truth comes from a :class:`~maskwatch.data.record.Dataset`; predictions are one
:class:`~maskwatch.detections.Detections` per record. Image ids, category ids and class names are
always explicit, so no result is ever read through a hard-coded class list.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskwatch.data.record import Dataset
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def coco_ground_truth(ds: Dataset, class_names: Sequence[str]) -> dict[str, Any]:
    """The dataset as a COCO instances dict; image ids are 1-based record positions."""
    cat_id = {name: i + 1 for i, name in enumerate(class_names)}
    unknown = sorted({lab for r in ds for lab in r.labels} - set(cat_id))
    if unknown:
        raise MaskwatchError(
            f"dataset class {unknown[0]!r} is not a model class ({', '.join(class_names)}); map it with --merge"
        )
    images, annotations = [], []
    for img_id, r in enumerate(ds.records, start=1):
        images.append({"id": img_id, "file_name": r.image.name, "width": r.width, "height": r.height})
        for box, lab in zip(r.boxes, r.labels, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": cat_id[lab],
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n, "supercategory": "face"} for n, i in cat_id.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(predictions: Sequence[Detections], class_names: Sequence[str]) -> list[dict[str, Any]]:
    """Detections as a COCO results list (``coco_instances_results.json``), categories matched by name."""
    cat_id = {name: i + 1 for i, name in enumerate(class_names)}
    out = []
    for img_id, det in enumerate(predictions, start=1):
        names = det.label_names
        for box, score, name in zip(det.boxes, det.scores, names, strict=True):
            if name not in cat_id:
                raise MaskwatchError(f"prediction class {name!r} is not a dataset class ({', '.join(class_names)})")
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                {
                    "image_id": img_id,
                    "category_id": cat_id[name],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    return out


def run_cocoeval(gt: dict[str, Any], results: list[dict[str, Any]]) -> tuple[COCOeval, str]:
    """Run pycocotools quietly; return the evaluator and its 12-line summary text."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    return ev, buf.getvalue()


def metrics_from_eval(ev: COCOeval, class_names: Sequence[str]) -> dict[str, Any]:
    """Percent values: the six summary APs and AP/AP50 per class (NaN where a class has no ground truth)."""
    m: dict[str, Any] = {k: round(float(v) * 100, 2) for k, v in zip(SUMMARY_KEYS, ev.stats[:6], strict=False)}
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    per_class = {}
    for k, name in enumerate(class_names):
        p = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        ap = float(np.mean(p[p > -1])) * 100 if (p > -1).any() else float("nan")
        ap50 = float(np.mean(p50[p50 > -1])) * 100 if (p50 > -1).any() else float("nan")
        per_class[name] = {"AP": round(ap, 2), "AP50": round(ap50, 2)}
    m["per_class"] = per_class
    return m


def evaluate(ds: Dataset, predictions: Sequence[Detections], class_names: Sequence[str]) -> dict[str, Any]:
    """COCO metrics of ``predictions`` (one per record of ``ds``) in percent."""
    if len(predictions) != len(ds):
        raise ValueError(f"{len(predictions)} predictions for {len(ds)} images")
    ev, _ = run_cocoeval(coco_ground_truth(ds, class_names), coco_results(predictions, class_names))
    return metrics_from_eval(ev, class_names)
