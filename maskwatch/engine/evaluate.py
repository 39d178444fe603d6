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

Evaluation composes like detectron2's ``DatasetEvaluator``: every metric is an evaluator with
``reset() / process(inputs, outputs) / evaluate() -> dict`` (:class:`COCOEvaluator` for AP on all faces, on
the range of interest or at one IoU threshold, :class:`ConfusionEvaluator` for the operating point), and
:class:`DatasetEvaluators` runs several over one pass of a model (:func:`inference_on_dataset`). Training's
per-epoch validation and ``maskwatch eval`` use the same evaluators.

``bootstrap``: a 95 % interval for each headline number, from resampling the images with replacement. The
per-image matching pycocotools did once (``evalImgs``) is reused: a resample only lays those out again and
re-runs pycocotools' own ``accumulate``, so N=200 costs seconds, not N full evaluations.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskwatch.boxes import nms, xyxy_to_xywh
from maskwatch.data.coco import ImageId, category_ids, coco_dict
from maskwatch.data.record import IGNORE_CLASS, Annotation, Dataset, class_lookup
from maskwatch.defaults import CONF
from maskwatch.detections import Detections
from maskwatch.engine.confusion import Confusion, confusion_at
from maskwatch.engine.predict import predict_images
from maskwatch.errors import MaskwatchError

if TYPE_CHECKING:  # the models import torch; scoring a predictions file does not need it
    from maskwatch.engine.errors import ErrorBreakdown
    from maskwatch.models.base import Detector
    from maskwatch.predict import Predictor

SUMMARY_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
AT_IOU_KEYS = ("AP", "APs", "APm", "APl")  # what a single --iou-thr run measures (no AP50/AP75 there)
# Running a model for evaluation: a low score threshold so the whole precision/recall curve is scored, and
# per-class NMS (agnostic=False) so a second class guess on an ambiguous face still counts, as Detectron2
# does. The same values as training's per-epoch validation, so `maskwatch eval` on the validation split
# reproduces the metrics stored in best.pt.
EVAL_CONF = 0.01
EVAL_NMS_IOU = 0.5
OPERATING_CONF = CONF  # default score threshold of the confusion matrix, P/R/F1 and gallery
MATCH_IOU = 0.5  # IoU a detection needs to count as a hit at the operating point (PASCAL / AP50)
INTERVAL = 95.0  # percent coverage of the bootstrap intervals


def check_classes(ds: Dataset, class_names: Sequence[str]) -> None:
    """Every dataset class must be a model class; naming the first that is not beats a silent drop."""
    unknown = sorted({lab for r in ds for lab in r.labels} - set(class_names) - {IGNORE_CLASS})
    if unknown:
        raise MaskwatchError(
            f"dataset class {unknown[0]!r} is not a model class ({', '.join(class_names)}); "
            "map it with --merge"
        )


def check_options(min_size: float, conf: float, iou_thr: float | None = None, bootstrap: int = 0) -> None:
    """Option values, checked before a model runs for minutes rather than after."""
    if not min_size >= 0:
        raise MaskwatchError(f"--min-size {min_size:g}: must be >= 0")
    if not 0 <= conf <= 1:
        raise MaskwatchError(f"--conf {conf:g}: must be between 0 and 1")
    if iou_thr is not None and not 0 < iou_thr <= 1:
        raise MaskwatchError(f"--iou-thr {iou_thr:g}: must be in (0, 1]")
    if bootstrap < 0 or bootstrap == 1:
        raise MaskwatchError(f"--bootstrap {bootstrap}: must be 0 (off) or at least 2 resamples")


def coco_ground_truth(
    ds: Dataset,
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
) -> dict[str, Any]:
    """The ground truth pycocotools scores against (:func:`maskwatch.data.coco.coco_dict`, the one builder),
    after checking that every dataset class is a model class."""
    check_classes(ds, class_names)
    return coco_dict(ds, class_names=class_names, image_ids=image_ids, min_size=min_size)


def coco_results(
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
) -> list[dict[str, Any]]:
    """Detections as a COCO results list (``coco_instances_results.json``), categories matched by name."""
    ids = list(range(1, len(predictions) + 1)) if image_ids is None else list(image_ids)
    luts: dict[tuple[str, ...], np.ndarray] = {}
    out = []
    for img_id, det in zip(ids, predictions, strict=True):
        if det.class_names not in luts:
            luts[det.class_names] = class_lookup(det.class_names, class_names) + 1
        cats = luts[det.class_names][det.class_id]
        xywh = xyxy_to_xywh(det.xyxy.astype(np.float64)).tolist()
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
    ev._prepare()  # the parent's own boxes by image and class, as a serial evaluate() leaves them
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


def run_cocoeval(
    gt: dict[str, Any], results: list[dict[str, Any]], workers: int = 1, iou_thr: float | None = None
) -> tuple[COCOeval, str]:
    """Run pycocotools quietly; return the evaluator and its summary text.

    ``loadRes`` adds id, area and segmentation to every entry of ``results`` (as pycocotools always has);
    the ground truth is copied, because ``_prepare`` writes an ``ignore`` field into every box.
    ``workers`` > 1 spreads the per-image matching over processes (:func:`evaluate_parallel`). ``iou_thr``
    scores at that one IoU threshold instead of COCO's 0.50:0.95 (AP then means AP at that IoU).
    """
    if not gt["images"]:
        raise MaskwatchError("no images to evaluate")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {**gt, "annotations": [dict(a) for a in gt["annotations"]]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results) if results else COCO()
        ev = IgnoreAwareCOCOeval(coco_gt, coco_dt, "bbox")
        if iou_thr is not None:
            ev.params.iouThrs = np.array([iou_thr])
        evaluate_parallel(ev, workers)
        ev.accumulate()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        if iou_thr is None:
            ev.summarize()
    return ev, buf.getvalue()


def score_coco(
    ds: Dataset,
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
    workers: int = 1,
    iou_thr: float | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]], COCOeval, str]:
    """``predictions`` on ``ds`` through pycocotools, on faces >= ``min_size`` px when > 0 (detections
    under it dropped too, so they are neither hits nor errors): the ground truth and results as scored,
    the evaluated (and accumulated) ``COCOeval`` and its summary text."""
    gt = coco_ground_truth(ds, class_names, image_ids, min_size)
    preds = [d.filter(min_size=min_size) for d in predictions] if min_size > 0 else predictions
    results = coco_results(preds, class_names, image_ids)
    ev, summary = run_cocoeval(gt, results, workers, iou_thr)
    return gt, results, ev, summary


def mean_precision(values: np.ndarray) -> float:
    """AP in percent as pycocotools' ``summarize`` takes it: the mean of the valid (> -1) interpolated
    precisions; NaN when there are none (no ground truth)."""
    valid = values[values > -1]
    return round(float(valid.mean()) * 100, 2) if valid.size else float("nan")


def metrics_from_precision(
    precision: np.ndarray, iou_thrs: np.ndarray, cat_ids: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Percent values from pycocotools' ``precision`` array (T, R, K, A, M): the six summary APs exactly as
    ``summarize`` computes them (area ranges all/small/medium/large, the last maxDets) and AP/AP50 per class.

    A summary AP at an IoU the run did not score (AP50 of an ``--iou-thr 0.3`` run) is NaN.
    """
    p = precision[..., -1]  # (T, R, K, A) at maxDets 100

    def at(iou: float) -> np.ndarray | None:
        t = np.nonzero(np.isclose(iou_thrs, iou))[0]
        return p[t[0]] if len(t) else None

    def ap(values: np.ndarray | None) -> float:
        return float("nan") if values is None else mean_precision(values)

    p50, p75 = at(0.5), at(0.75)
    m: dict[str, Any] = {
        "AP": ap(p[..., 0]),
        "AP50": ap(None if p50 is None else p50[..., 0]),
        "AP75": ap(None if p75 is None else p75[..., 0]),
        "APs": ap(p[..., 1]),
        "APm": ap(p[..., 2]),
        "APl": ap(p[..., 3]),
    }
    # Categories are read by id, never by position in a list we did not build ourselves.
    k_of = {c: k for k, c in enumerate(cat_ids)}
    cat_id = category_ids(class_names)
    m["per_class"] = {
        name: {
            "AP": ap(p[:, :, k_of[cat_id[name]], 0]),
            "AP50": ap(None if p50 is None else p50[:, k_of[cat_id[name]], 0]),
        }
        for name in class_names
    }
    return m


def metrics_from_eval(ev: COCOeval, class_names: Sequence[str]) -> dict[str, Any]:
    """Percent values: the six summary APs and AP/AP50 per class (NaN where there is no ground truth)."""
    return metrics_from_precision(
        ev.eval["precision"], np.asarray(ev.params.iouThrs), ev.params.catIds, class_names
    )


def _flatten(metrics: dict[str, Any]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update({(k, *kk): vv for kk, vv in _flatten(v).items()})
        else:
            out[(k,)] = v
    return out


def _unflatten(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in values.items():
        d = out
        for k in key[:-1]:
            d = d.setdefault(k, {})
        d[key[-1]] = v
    return out


def bootstrap_samples(images: int, n: int, seed: int) -> np.ndarray:
    """(n, images) image indices drawn with replacement: the same draws for every run of one evaluation, so
    the intervals of all faces, the range of interest and --iou-thr come from the same resampled sets."""
    return np.random.default_rng(seed).integers(0, images, size=(n, images))


def bootstrap_intervals(
    ev: COCOeval, class_names: Sequence[str], samples: np.ndarray, level: float = INTERVAL
) -> dict[str, Any]:
    """Percentile intervals of every metric over image resamples, as ``{metric: [low, high]}``.

    ``ev`` has run ``evaluate`` and ``accumulate``. For each resample its per-image results
    (``evalImgs``, laid out category × area range × image) are picked in the resampled order, an image drawn
    twice appearing twice, and pycocotools' ``accumulate`` runs again on them at maxDets 100 only (what the
    summary APs use). A resample without ground truth of a class gives NaN, left out of that class's
    percentiles.
    """
    pe = ev._paramsEval
    n_img, n_area = len(pe.imgIds), len(pe.areaRng)
    params = copy.deepcopy(pe)
    params.maxDets = [max(pe.maxDets)]
    boot = copy.copy(ev)  # shares the ground truth and detections; only params and evalImgs change
    boot.params = boot._paramsEval = params
    blocks = [ev.evalImgs[b * n_img : (b + 1) * n_img] for b in range(len(pe.catIds) * n_area)]
    rows = []
    with contextlib.redirect_stdout(io.StringIO()):
        for sample in samples:
            params.imgIds = list(range(len(sample)))  # positions in the resample: a repeat is a new image
            boot.evalImgs = [block[i] for block in blocks for i in sample]
            boot.accumulate()
            m = metrics_from_precision(
                boot.eval["precision"], np.asarray(params.iouThrs), params.catIds, class_names
            )
            rows.append(_flatten(m))
    tail = (100 - level) / 2
    out: dict[tuple[str, ...], Any] = {}
    for key in rows[0]:
        v = np.array([r[key] for r in rows], dtype=np.float64)
        v = v[np.isfinite(v)]
        out[key] = [round(float(x), 2) for x in np.percentile(v, [tail, 100 - tail])] if v.size else None
    return _unflatten(out)


@dataclass
class EvalRun:
    """One pycocotools evaluation: percent metrics, the summary text and the PR arrays for plots."""

    metrics: dict[str, Any]
    summary: str
    precision: np.ndarray  # (T, R, K) at area "all", maxDets 100; -1 where a class has no ground truth
    scores: np.ndarray  # (T, R, K) score at each recall threshold
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    boxes: int  # ground-truth boxes that count (not ignored)
    ignored: int = 0
    min_size: float = 0.0
    iou_thr: float | None = None  # the one IoU threshold of an --iou-thr run; None: COCO's 0.50:0.95
    interval: dict[str, Any] | None = None  # bootstrap intervals, {metric: [low, high]} like ``metrics``
    ground_truth: dict[str, Any] = field(default_factory=dict, repr=False)  # the COCO dict it scored
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)  # scored (loadRes added fields)

    def to_json(self, images: int) -> dict[str, Any]:
        keys = SUMMARY_KEYS if self.iou_thr is None else AT_IOU_KEYS
        out: dict[str, Any] = {k: self.metrics[k] for k in keys}
        per_class = self.metrics["per_class"]
        if self.iou_thr is not None:
            out["iou"] = self.iou_thr
            per_class = {n: {"AP": v["AP"]} for n, v in per_class.items()}
        out.update(per_class=per_class, images=images, boxes=self.boxes)
        if self.ignored or self.min_size:
            out["ignored"] = self.ignored
        if self.min_size:
            out["min_size"] = self.min_size
        if self.interval is not None:
            iv = {k: self.interval[k] for k in keys}
            iv["per_class"] = {
                n: {k: v[k] for k in per_class[n]} for n, v in self.interval["per_class"].items()
            }
            out["interval"] = iv
        return out


class DatasetEvaluator:
    """detectron2's evaluator interface: ``reset`` before a pass, ``process`` each batch of ground truth
    (``inputs``) and predictions (``outputs``), ``evaluate`` once at the end into a dict of results."""

    def reset(self) -> None:
        self._inputs: list[Annotation] = []
        self._outputs: list[Detections] = []

    def process(self, inputs: Sequence[Annotation], outputs: Sequence[Detections]) -> None:
        if len(inputs) != len(outputs):
            raise ValueError(f"{len(outputs)} predictions for {len(inputs)} images")
        self._inputs += inputs
        self._outputs += outputs

    def evaluate(self) -> dict[str, Any]:
        raise NotImplementedError


class COCOEvaluator(DatasetEvaluator):
    """COCO box AP with pycocotools: on all faces, on a range of interest (``min_size``), at COCO's IoU
    thresholds or at one (``iou_thr``), with bootstrap intervals when ``samples`` (:func:`bootstrap_samples`)
    are given. ``image_ids`` are the COCO ids of the images in processing order (default 1, 2, ...).
    After :meth:`evaluate`, :attr:`run` holds everything the report draws."""

    def __init__(
        self,
        class_names: Sequence[str],
        name: str = "bbox",
        image_ids: Sequence[ImageId] | None = None,
        min_size: float = 0.0,
        iou_thr: float | None = None,
        samples: np.ndarray | None = None,
        workers: int = 1,
    ) -> None:
        self.class_names = tuple(class_names)
        self.name, self.image_ids, self.min_size, self.iou_thr = name, image_ids, min_size, iou_thr
        self.samples, self.workers = samples, workers
        self.run: EvalRun | None = None
        self.reset()

    def evaluate(self) -> dict[str, Any]:
        ds = Dataset(list(self._inputs), list(self.class_names))
        gt, results, ev, summary = score_coco(
            ds, self._outputs, self.class_names, self.image_ids, self.min_size, self.workers, self.iou_thr
        )
        # Reorder the category axis to class_names order through the ids, whatever order pycocotools used.
        k_of = {c: k for k, c in enumerate(ev.params.catIds)}
        order = [k_of[c] for c in category_ids(self.class_names).values()]
        ignored = sum(int(r.scored(self.class_names, self.min_size)[1].sum()) for r in ds)
        self.run = EvalRun(
            metrics=metrics_from_eval(ev, self.class_names),
            summary=summary,
            precision=ev.eval["precision"][:, :, order, 0, -1],
            scores=ev.eval["scores"][:, :, order, 0, -1],
            iou_thresholds=np.asarray(ev.params.iouThrs),
            recall_thresholds=np.asarray(ev.params.recThrs),
            boxes=ds.num_boxes - ignored,
            ignored=ignored,
            min_size=self.min_size,
            iou_thr=self.iou_thr,
            interval=None
            if self.samples is None
            else bootstrap_intervals(ev, self.class_names, self.samples),
            ground_truth=gt,
            results=results,
        )
        return {self.name: self.run.to_json(len(ds))}


class ConfusionEvaluator(DatasetEvaluator):
    """The operating point (:func:`maskwatch.engine.confusion.confusion_at`); :attr:`confusion` after
    :meth:`evaluate`."""

    def __init__(
        self,
        class_names: Sequence[str],
        name: str = "operating_point",
        conf: float = OPERATING_CONF,
        iou: float = MATCH_IOU,
        min_size: float = 0.0,
        nms_iou: float = EVAL_NMS_IOU,
    ) -> None:
        self.class_names = tuple(class_names)
        self.name, self.conf, self.iou, self.min_size, self.nms_iou = name, conf, iou, min_size, nms_iou
        self.confusion: Confusion | None = None
        self.reset()

    def evaluate(self) -> dict[str, Any]:
        ds = Dataset(list(self._inputs), list(self.class_names))
        self.confusion = confusion_at(
            ds, self._outputs, self.class_names, self.conf, self.iou, self.min_size, self.nms_iou
        )
        return {self.name: self.confusion.to_json()}


class DatasetEvaluators(DatasetEvaluator):
    """Several evaluators over one pass (detectron2's ``DatasetEvaluators``); their results merge into one
    dict, and two evaluators writing the same key is an error rather than a silent overwrite."""

    def __init__(self, evaluators: Sequence[DatasetEvaluator]) -> None:
        self.evaluators = list(evaluators)

    def reset(self) -> None:
        for e in self.evaluators:
            e.reset()

    def process(self, inputs: Sequence[Annotation], outputs: Sequence[Detections]) -> None:
        for e in self.evaluators:
            e.process(inputs, outputs)

    def evaluate(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for e in self.evaluators:
            for k, v in e.evaluate().items():
                if k in out:
                    raise ValueError(f"two evaluators produced {k!r}")
                out[k] = v
        return out


def predict_dataset(
    detector: Detector | Predictor,
    ds: Dataset,
    batch: int = 8,
    conf: float = EVAL_CONF,
    iou: float = EVAL_NMS_IOU,
    progress: bool = True,
) -> list[Detections]:
    """Run a detector over every record for evaluation (:func:`maskwatch.engine.predict.predict_images`:
    same-sized batches, so the metrics do not depend on ``batch``)."""
    found = predict_images(
        detector, [r.image for r in ds], batch, conf, iou, agnostic=False, progress=progress, desc="eval"
    )
    return [p.detections for p in found]


def inference_on_dataset(
    detector: Detector | Predictor,
    ds: Dataset,
    evaluator: DatasetEvaluator,
    batch: int = 8,
    progress: bool = True,
) -> dict[str, Any]:
    """Run ``detector`` over ``ds`` and feed ``evaluator`` (detectron2's function of the same name)."""
    evaluator.reset()
    evaluator.process(ds.records, predict_dataset(detector, ds, batch, progress=progress))
    return evaluator.evaluate()


FACE = "face"


def as_faces(
    ds: Dataset, predictions: Sequence[Detections], nms_iou: float = EVAL_NMS_IOU
) -> tuple[Dataset, list[Detections]]:
    """The class-agnostic view (``--agnostic``): every face and every detection one class, ``face``, so AP
    says whether the faces were found, whatever class they were given. Where a model gave one face boxes
    of several classes, the lower-scored ones are dropped (class-agnostic NMS): one face, one box."""
    records = [replace(r, labels=[FACE] * len(r.labels)) for r in ds.records]
    faces = []
    for d in predictions:
        keep = nms(d.xyxy, d.confidence, nms_iou)
        faces.append(Detections(d.xyxy[keep], d.confidence[keep], np.zeros(len(keep), np.int64), (FACE,)))
    return replace(ds, records=records, classes=[FACE], merge={}), faces


def evaluate(ds: Dataset, predictions: Sequence[Detections], class_names: Sequence[str]) -> dict[str, Any]:
    """COCO metrics of ``predictions`` (one per record of ``ds``) in percent: what training's per-epoch
    validation stores (the same :class:`COCOEvaluator` as ``maskwatch eval``)."""
    ev = COCOEvaluator(class_names)
    ev.process(ds.records, predictions)
    ev.evaluate()
    assert ev.run is not None
    return ev.run.metrics


def validate(
    detector: Detector, ds: Dataset, batch: int = 8, evaluator: DatasetEvaluator | None = None
) -> dict[str, Any]:
    """Training-time validation, the same evaluation as ``maskwatch eval``: the detector (switched to eval
    mode: training leaves it in train mode) over ``ds`` without a progress bar, scored by ``evaluator``
    (default: COCO metrics on all faces, returned as :func:`evaluate` returns them)."""
    detector.model.eval()
    if evaluator is not None:
        return inference_on_dataset(detector, ds, evaluator, batch, progress=False)
    return evaluate(ds, predict_dataset(detector, ds, batch, progress=False), detector.class_names)


@dataclass
class EvalReport:
    """Everything ``maskwatch eval`` prints and writes, computed once."""

    class_names: tuple[str, ...]
    image_ids: list[ImageId]
    full: EvalRun
    roi: EvalRun | None
    confusion: Confusion  # at the operating point, on the range of interest when there is one
    images: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    at_iou: EvalRun | None = None  # --iou-thr, on the range of interest when there is one
    confusion_all: Confusion | None = None  # the operating point on all faces, when ``confusion`` is not
    bootstrap: dict[str, Any] | None = None  # {"resamples": N, "seed": S, "level": 95}
    errors: ErrorBreakdown | None = None  # where AP50 goes (--errors), on the range of interest if any

    def summary_json(self) -> dict[str, Any]:
        """The ``--json`` object: percent values, NaN (no ground truth) written as null."""
        out = self.full.to_json(self.images)
        out["seconds"] = round(self.seconds, 2)
        if self.roi is not None:
            out["roi"] = self.roi.to_json(self.images)
        if self.at_iou is not None:
            out["iou_thr"] = self.at_iou.to_json(self.images)
        if self.bootstrap is not None:
            out["bootstrap"] = self.bootstrap
        if self.errors is not None:
            out["errors"] = self.errors.to_json()
        if self.extra:  # what was scored on what: model, data, split, box style, --tta, crop classifier
            out["run"] = self.extra
        return json_safe(out)

    def metrics_json(self) -> dict[str, Any]:
        """``metrics.json``: the summary plus the operating point (confusion matrix, P/R/F1)."""
        out = self.summary_json()
        out["classes"] = list(self.class_names)
        out["operating_point"] = json_safe(self.confusion.to_json())
        out.update(json_safe(out.pop("run", {})))  # flat here, as metrics.json always had it
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


def evaluate_dataset(
    ds: Dataset,
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
    conf: float = OPERATING_CONF,
    workers: int | None = None,
    iou_thr: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    errors: bool = False,
) -> EvalReport:
    """Full evaluation: COCO metrics on all faces, on the range of interest (``min_size`` > 0), at one IoU
    (``iou_thr``), with ``bootstrap`` resamples for intervals, the confusion matrix at the ``conf``
    operating point (on the range of interest when there is one, and on all faces for the PR-curve dots),
    and with ``errors`` where AP50 goes (:mod:`maskwatch.engine.errors`).

    ``workers`` processes share pycocotools' per-image matching (default: :func:`default_workers`).
    """
    t0 = time.perf_counter()
    if len(predictions) != len(ds):
        raise ValueError(f"{len(predictions)} predictions for {len(ds)} images")
    check_options(min_size, conf, iou_thr, bootstrap)
    ids: list[ImageId] = list(range(1, len(ds) + 1)) if image_ids is None else list(image_ids)
    workers = default_workers() if workers is None else workers
    samples = bootstrap_samples(len(ds), bootstrap, seed) if bootstrap else None

    def coco(name: str, size: float, iou: float | None = None) -> COCOEvaluator:
        return COCOEvaluator(class_names, name, ids, size, iou, samples, workers)

    full = coco("all", 0.0)
    roi = coco("roi", min_size) if min_size > 0 else None
    at_iou = coco("iou_thr", min_size, iou_thr) if iou_thr is not None else None
    confusion = ConfusionEvaluator(class_names, conf=conf, min_size=min_size)
    confusion_all = (
        ConfusionEvaluator(class_names, "operating_point_all", conf=conf) if min_size > 0 else None
    )
    breakdown = None
    if errors:
        from maskwatch.engine.errors import ErrorEvaluator  # it builds on this module: imported late

        breakdown = ErrorEvaluator(class_names, "errors", ids, min_size, conf, workers)
    parts = [e for e in (full, roi, at_iou, confusion, confusion_all, breakdown) if e is not None]
    evaluators = DatasetEvaluators(parts)
    evaluators.reset()
    evaluators.process(ds.records, predictions)
    evaluators.evaluate()
    assert full.run is not None and confusion.confusion is not None
    return EvalReport(
        class_names=tuple(class_names),
        image_ids=ids,
        full=full.run,
        roi=roi.run if roi else None,
        confusion=confusion.confusion,
        images=len(ds),
        seconds=time.perf_counter() - t0,
        at_iou=at_iou.run if at_iou else None,
        confusion_all=confusion_all.confusion if confusion_all else None,
        bootstrap=None if not bootstrap else {"resamples": bootstrap, "seed": seed, "level": INTERVAL},
        errors=breakdown.errors if breakdown else None,
    )
