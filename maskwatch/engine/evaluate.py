"""COCO-style evaluation with the official pycocotools code (no home-made AP).

Ground truth comes from a :class:`~maskwatch.data.record.Dataset`; predictions are one
:class:`~maskwatch.detections.Detections` per record. Image ids, category ids and class names are
always explicit, so no result is ever read through a hard-coded class list.

Image ids are the ids of :mod:`maskwatch.engine.predictions` (1-based position in the dataset as loaded,
or the dataset's own ids when it is a COCO JSON file); category ids are 1-based positions in the
evaluated class list, and ``ground_truth.json`` written next to the results says which is which.

Range of interest (``min_size``): ground-truth faces whose shorter side is below ``min_size`` pixels
become ignore regions and detections below it are dropped. The ignore regions use pycocotools' own
``ignore`` mechanism (see :class:`IgnoreAwareCOCOeval` for why not ``iscrowd``), and each one is
entered once per category, so a detection of *any* class on a face too small to matter is neither a hit
nor a false alarm: whether a 10-pixel face wears a mask is exactly what the range of interest gives up on.
"On" a face means what it means for every face: IoU at least the threshold being scored. So a box much
larger than the ignored face under it (a 22-px box on a 15-px face: IoU 0.46) is still a false alarm, and
one with IoU 0.69 is ignored at 0.50-0.65 and a false alarm above, as with COCO's own area ranges.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import multiprocessing
import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tqdm import tqdm

from maskwatch.boxes import xyxy_to_xywh
from maskwatch.data.record import Dataset
from maskwatch.defaults import CONF
from maskwatch.detections import Detections
from maskwatch.engine.confusion import Confusion, confusion_at, small_box_mask
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image

if TYPE_CHECKING:  # the models import torch; scoring a predictions file does not need it
    from maskwatch.models.base import Detector
    from maskwatch.predict import Predictor

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
# Running a model for evaluation: a low score threshold so the whole precision/recall curve is scored, and
# per-class NMS (agnostic=False) so a second class guess on an ambiguous face still counts, as Detectron2
# does. The same values as training's per-epoch validation, so `maskwatch eval` on the validation split
# reproduces the metrics stored in best.pt.
EVAL_CONF = 0.01
EVAL_NMS_IOU = 0.5
OPERATING_CONF = CONF  # default score threshold of the confusion matrix, P/R/F1 and gallery
MATCH_IOU = 0.5  # IoU a detection needs to count as a hit at the operating point (PASCAL / AP50)

ImageId = Hashable


def category_ids(class_names: Sequence[str]) -> dict[str, int]:
    """Category id of each class name: its 1-based position (0 is background in many tools)."""
    return {name: i + 1 for i, name in enumerate(class_names)}


def check_classes(ds: Dataset, class_names: Sequence[str]) -> None:
    """Every dataset class must be a model class; naming the first that is not beats a silent drop."""
    unknown = sorted({lab for r in ds for lab in r.labels} - set(class_names))
    if unknown:
        raise MaskwatchError(
            f"dataset class {unknown[0]!r} is not a model class ({', '.join(class_names)}); "
            "map it with --merge"
        )


def check_options(min_size: float, conf: float) -> None:
    """Option values, checked before a model runs for minutes rather than after."""
    if not min_size >= 0:
        raise MaskwatchError(f"--min-size {min_size:g}: must be >= 0")
    if not 0 <= conf <= 1:
        raise MaskwatchError(f"--conf {conf:g}: must be between 0 and 1")


def _positional_ids(ds: Dataset, image_ids: Sequence[ImageId] | None) -> list[ImageId]:
    ids: list[ImageId] = list(range(1, len(ds) + 1)) if image_ids is None else list(image_ids)
    if len(ids) != len(ds):
        raise ValueError(f"{len(ids)} image ids for {len(ds)} images")
    return ids


def coco_ground_truth(
    ds: Dataset,
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
) -> dict[str, Any]:
    """The dataset as a COCO instances dict.

    Image ids default to 1-based record positions. With ``min_size``, faces whose shorter side is smaller
    get ``"ignore": 1`` and a copy in every other category (see the module docstring).
    """
    check_classes(ds, class_names)
    cat_id = category_ids(class_names)
    ids = _positional_ids(ds, image_ids)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for img_id, r in zip(ids, ds.records, strict=True):
        images.append({"id": img_id, "file_name": r.name, "width": r.width, "height": r.height})
        small = small_box_mask(r.boxes, min_size)
        xywh = xyxy_to_xywh(r.boxes).tolist()
        for (x, y, w, h), lab, ignore in zip(xywh, r.labels, small.tolist(), strict=True):
            for cat in cat_id.values() if ignore else (cat_id[lab],):
                ann = {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
                if ignore:
                    ann["ignore"] = 1
                annotations.append(ann)
    categories = [{"id": i, "name": n, "supercategory": "face"} for n, i in cat_id.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def coco_results(
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
) -> list[dict[str, Any]]:
    """Detections as a COCO results list (``coco_instances_results.json``), categories matched by name."""
    cat_id = category_ids(class_names)
    ids = list(range(1, len(predictions) + 1)) if image_ids is None else list(image_ids)
    luts: dict[tuple[str, ...], np.ndarray] = {}
    out = []
    for img_id, det in zip(ids, predictions, strict=True):
        lut = luts.setdefault(
            det.class_names, np.array([cat_id.get(n, 0) for n in det.class_names], np.int64)
        )
        cats = lut[det.class_id]
        if (cats == 0).any():
            name = det.class_names[det.class_id[np.argmin(cats)]]
            raise MaskwatchError(
                f"prediction class {name!r} is not a dataset class ({', '.join(class_names)})"
            )
        xywh = xyxy_to_xywh(det.xyxy).tolist()
        out += [
            {"image_id": img_id, "category_id": c, "bbox": box, "score": s}
            for c, box, s in zip(cats.tolist(), xywh, det.confidence.astype(np.float64).tolist(), strict=True)
        ]
    return out


class IgnoreAwareCOCOeval(COCOeval):
    """pycocotools' ``COCOeval`` with the ground-truth ``ignore`` flag honoured.

    ``COCOeval._prepare`` reads ``ignore`` and then overwrites it with ``iscrowd`` (cocoapi issues #123 and
    #466; the fixes #322/#465/#640 were never merged), so the flag its matching code was written for never
    takes effect. This subclass only puts the flag back; matching and accumulation stay pycocotools' own.
    With it an ignored box is matched one-to-one by IoU like any other, but only by a detection that found no
    regular box; that detection is neither a true nor a false positive, and a missed ignored box costs no
    recall. ``iscrowd=1`` is the wrong tool for small faces: a crowd region matches by intersection over the
    *detection's* area and absorbs any number of detections, so duplicate boxes on a small face, and small
    boxes anywhere inside a larger ignored one, would never count as false alarms.
    """

    def _prepare(self) -> None:
        flags = {a["id"]: bool(a.get("ignore", 0)) for a in self.cocoGt.dataset["annotations"]}
        super()._prepare()
        for gts in self._gts.values():
            for g in gts:
                g["ignore"] = bool(g["ignore"]) or flags[g["id"]]


_FORKED: COCOeval | None = None  # the evaluator forked workers inherit (fork shares it without pickling)


def _evaluate_images(img_ids: Sequence[ImageId]) -> list[dict[str, Any] | None]:
    assert _FORKED is not None
    _FORKED.params.imgIds = list(img_ids)
    _FORKED.evaluate()
    return _FORKED.evalImgs


def evaluate_parallel(ev: COCOeval, workers: int) -> None:
    """``ev.evaluate()`` with its per-image loop spread over forked processes.

    ``evaluateImg`` (pure-Python matching, ~90% of the time) is independent per image, so each worker runs
    pycocotools' own ``evaluate`` on a slice of the images, and the parts are laid out in the order
    ``accumulate`` indexes them (category, area range, image). Accumulation and summary stay serial and
    untouched, so the numbers are identical to a serial run (tested).
    """
    global _FORKED
    p = ev.params
    img_ids = list(np.unique(p.imgIds))
    methods = multiprocessing.get_all_start_methods()
    if workers <= 1 or len(img_ids) < 2 * workers or "fork" not in methods:
        ev.evaluate()
        return
    chunks = [list(c) for c in np.array_split(np.asarray(img_ids, dtype=object), workers)]
    _FORKED = ev
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_evaluate_images, chunks)
    finally:
        _FORKED = None
    p.imgIds, p.catIds, p.maxDets = img_ids, list(np.unique(p.catIds)), sorted(p.maxDets)
    ev.evalImgs = [
        e
        for k in range(len(p.catIds))
        for a in range(len(p.areaRng))
        for chunk, part in zip(chunks, parts, strict=True)
        for e in part[(k * len(p.areaRng) + a) * len(chunk) : (k * len(p.areaRng) + a + 1) * len(chunk)]
    ]
    ev._paramsEval = copy.deepcopy(p)


def default_workers() -> int:
    """Processes for pycocotools' per-image matching: the CPUs this process may use that are idle now.

    Forking workers onto CPUs that another job (a training run) already fills only adds the fork and
    pickling overhead: on 2 busy cores 2 workers measured slower than 1. The 1-minute load average may
    include this process itself, hence the +1.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (OSError, AttributeError):  # not available on this platform
        busy = 0.0
    return max(1, min(cpus, round(cpus + 1 - busy)))


def run_cocoeval(gt: dict[str, Any], results: list[dict[str, Any]], workers: int = 1) -> tuple[COCOeval, str]:
    """Run pycocotools quietly; return the evaluator and its 12-line summary text.

    ``loadRes`` adds id, area and segmentation to every entry of ``results`` (as pycocotools always has);
    the ground truth is copied, because ``_prepare`` writes an ``ignore`` field into every box.
    ``workers`` > 1 spreads the per-image matching over processes (:func:`evaluate_parallel`).
    """
    if not gt["images"]:
        raise MaskwatchError("no images to evaluate")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**gt, "annotations": [dict(a) for a in gt["annotations"]]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        ev = IgnoreAwareCOCOeval(coco_gt, coco_dt, "bbox")
        evaluate_parallel(ev, workers)
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        ev.summarize()
    return ev, buf.getvalue()


def mean_precision(values: np.ndarray) -> float:
    """AP in percent as pycocotools' ``summarize`` takes it: the mean of the valid (> -1) interpolated
    precisions; NaN when there are none (no ground truth)."""
    valid = values[values > -1]
    return round(float(valid.mean()) * 100, 2) if valid.size else float("nan")


def metrics_from_eval(ev: COCOeval, class_names: Sequence[str]) -> dict[str, Any]:
    """Percent values: the six summary APs and AP/AP50 per class (NaN where there is no ground truth)."""
    m: dict[str, Any] = {
        k: round(float(v) * 100, 2) if v > -1 else float("nan")
        for k, v in zip(SUMMARY_KEYS, ev.stats[:6], strict=False)
    }
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    # Categories are read by id, never by position in a list we did not build ourselves.
    k_of = {c: k for k, c in enumerate(ev.params.catIds)}
    cat_id = category_ids(class_names)
    m["per_class"] = {
        name: {
            "AP": mean_precision(precision[:, :, k_of[cat_id[name]], 0, -1]),
            "AP50": mean_precision(precision[0, :, k_of[cat_id[name]], 0, -1]),
        }
        for name in class_names
    }
    return m


def evaluate(ds: Dataset, predictions: Sequence[Detections], class_names: Sequence[str]) -> dict[str, Any]:
    """COCO metrics of ``predictions`` (one per record of ``ds``) in percent."""
    if len(predictions) != len(ds):
        raise ValueError(f"{len(predictions)} predictions for {len(ds)} images")
    ev, _ = run_cocoeval(coco_ground_truth(ds, class_names), coco_results(predictions, class_names))
    return metrics_from_eval(ev, class_names)


@dataclass
class EvalRun:
    """One pycocotools evaluation: percent metrics, the 12-line summary and the PR arrays for plots."""

    metrics: dict[str, Any]
    summary: str
    precision: np.ndarray  # (T, R, K) at area "all", maxDets 100; -1 where a class has no ground truth
    scores: np.ndarray  # (T, R, K) score at each recall threshold
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    boxes: int  # ground-truth boxes that count (not ignored)
    ignored: int = 0
    min_size: float = 0.0
    ground_truth: dict[str, Any] = field(default_factory=dict, repr=False)  # the COCO dict it scored
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)  # scored (loadRes added fields)


@dataclass
class EvalReport:
    """Everything ``maskwatch eval`` prints and writes, computed once."""

    class_names: tuple[str, ...]
    image_ids: list[ImageId]
    full: EvalRun
    roi: EvalRun | None
    confusion: Confusion
    images: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def summary_json(self) -> dict[str, Any]:
        """The ``--json`` object: percent values, NaN (no ground truth) written as null."""
        out = {k: self.full.metrics[k] for k in SUMMARY_KEYS}
        out.update(per_class=self.full.metrics["per_class"], images=self.images, boxes=self.full.boxes)
        out["seconds"] = round(self.seconds, 2)
        if self.roi is not None:
            roi = {k: self.roi.metrics[k] for k in SUMMARY_KEYS}
            roi.update(per_class=self.roi.metrics["per_class"], images=self.images, boxes=self.roi.boxes)
            roi.update(ignored=self.roi.ignored, min_size=self.roi.min_size)
            out["roi"] = roi
        return json_safe(out)

    def metrics_json(self) -> dict[str, Any]:
        """``metrics.json``: the summary plus the operating point (confusion matrix, P/R/F1)."""
        out = self.summary_json()
        out["classes"] = list(self.class_names)
        out["operating_point"] = json_safe(self.confusion.to_json())
        out.update(json_safe(self.extra))
        return out


def json_safe(obj: Any) -> Any:
    """NaN and infinity become null: strict JSON readers (browsers, jq) reject Python's ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _run(
    ds: Dataset,
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: list[ImageId],
    min_size: float,
    workers: int,
) -> EvalRun:
    gt = coco_ground_truth(ds, class_names, image_ids, min_size)
    if min_size > 0:
        predictions = [d.filter(min_size=min_size) for d in predictions]
    results = coco_results(predictions, class_names, image_ids)
    ev, summary = run_cocoeval(gt, results, workers)
    # Reorder the category axis to class_names order through the ids, whatever order pycocotools used.
    k_of = {c: k for k, c in enumerate(ev.params.catIds)}
    order = [k_of[c] for c in category_ids(class_names).values()]
    small = sum(int(small_box_mask(r.boxes, min_size).sum()) for r in ds)
    return EvalRun(
        metrics=metrics_from_eval(ev, class_names),
        summary=summary,
        precision=ev.eval["precision"][:, :, order, 0, -1],
        scores=ev.eval["scores"][:, :, order, 0, -1],
        iou_thresholds=np.asarray(ev.params.iouThrs),
        recall_thresholds=np.asarray(ev.params.recThrs),
        boxes=ds.num_boxes - small,
        ignored=small,
        min_size=min_size,
        ground_truth=gt,
        results=results,
    )


def evaluate_dataset(
    ds: Dataset,
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
    conf: float = OPERATING_CONF,
    workers: int | None = None,
) -> EvalReport:
    """Full evaluation: COCO metrics on all faces, on the range of interest (``min_size`` > 0), and the
    confusion matrix at the ``conf`` operating point (on the range of interest when there is one).

    ``workers`` processes share pycocotools' per-image matching (default: :func:`default_workers`).
    """
    t0 = time.perf_counter()
    if len(predictions) != len(ds):
        raise ValueError(f"{len(predictions)} predictions for {len(ds)} images")
    check_options(min_size, conf)
    ids = _positional_ids(ds, image_ids)
    workers = default_workers() if workers is None else workers
    full = _run(ds, predictions, class_names, ids, 0.0, workers)
    roi = _run(ds, predictions, class_names, ids, min_size, workers) if min_size > 0 else None
    confusion = confusion_at(
        ds, predictions, class_names, conf=conf, iou=MATCH_IOU, min_size=min_size, nms_iou=EVAL_NMS_IOU
    )
    return EvalReport(
        class_names=tuple(class_names),
        image_ids=ids,
        full=full,
        roi=roi,
        confusion=confusion,
        images=len(ds),
        seconds=time.perf_counter() - t0,
    )


def predict_dataset(
    detector: Detector | Predictor,
    ds: Dataset,
    batch: int = 8,
    conf: float = EVAL_CONF,
    iou: float = EVAL_NMS_IOU,
    progress: bool = True,
) -> list[Detections]:
    """Run a :class:`~maskwatch.models.base.Detector` over every record, with a progress bar."""
    preds: list[Detections] = []
    with tqdm(total=len(ds), desc="eval", unit="img", disable=not progress) as bar:
        for i in range(0, len(ds), batch):
            images = [load_image(r.image) for r in ds.records[i : i + batch]]
            preds += detector.predict(images, conf=conf, iou=iou, agnostic=False)
            bar.update(len(images))
    return preds
