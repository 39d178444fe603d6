"""Where AP50 goes: each false detection sorted by what it lies on, and what AP50 would be without each kind.

An AP50 short of a target can mean a weak detector or a learning base with unlabelled faces, and the two
call for opposite work (train more, or label more). COCO AP alone cannot tell them apart; the kinds below
(after TIDE, Bolya et al. 2020, reduced to what a face detector needs) can, and the crops of each kind
(``eval --out``: ``errors/<kind>.jpg``) show which it is.

Every number comes from pycocotools' own matching at IoU 0.5 and its own ``accumulate``: a kind's effect is
measured by marking its detections ignored and accumulating again, so "AP50 without them" is exactly the
AP50 pycocotools would report had the detector not made them, and the table always agrees with ``eval``'s.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pycocotools.cocoeval import COCOeval

from maskwatch.boxes import box_iou, xywh_to_xyxy
from maskwatch.data.coco import ImageId
from maskwatch.data.record import Dataset
from maskwatch.detections import Detections
from maskwatch.engine.evaluate import (
    MATCH_IOU,
    OPERATING_CONF,
    DatasetEvaluator,
    mean_precision,
    score_coco,
)

# The kinds of false detection, in the order they are tested: the first that applies names it.
DUPLICATE, SWAP, POOR_BOX, BACKGROUND = "duplicate", "wrong class", "poor box", "background"
KINDS = (DUPLICATE, SWAP, POOR_BOX, BACKGROUND)
KIND_HELP = {
    DUPLICATE: "a second box on a face already found",
    SWAP: "on a face of the other class",
    POOR_BOX: "overlaps a face, IoU 0.1-0.5",
    BACKGROUND: "no labelled face there: often an unlabelled one (look)",
}
BACKGROUND_IOU = 0.1  # below this with every labelled face (ignored ones too), a detection is on background
EXAMPLES = 60  # crops kept per kind for the contact sheets


@dataclass
class ErrorBreakdown:
    """The breakdown of one evaluation: AP50, the false detections of each kind (all, and at or above the
    operating point ``conf``), AP50 without each kind, and the faces no detection found."""

    ap50: float
    without: dict[str, float]  # kind -> AP50 had the detector not made these false detections
    counts: dict[str, int]  # kind -> false detections (every score)
    counts_at_conf: dict[str, int]  # kind -> false detections scoring >= conf
    ceiling: float  # AP50 with no false detection at all: what the missed faces alone cap it at
    faces: int  # faces that count (not ignored)
    missed: int  # of those, found by no detection at IoU >= 0.5
    missed_sizes: np.ndarray  # the missed faces' shorter sides (px)
    face_sizes: np.ndarray  # every counted face's shorter side (px)
    conf: float = OPERATING_CONF
    min_size: float = 0.0
    # (kind or "missed") -> [(image index, xyxy box, score or nan, class name)], highest score / largest first
    examples: dict[str, list[tuple[int, np.ndarray, float, str]]] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        def r(v: float) -> float:
            return round(float(v), 2)

        return {
            "iou": MATCH_IOU,
            "AP50": r(self.ap50),
            "conf": self.conf,
            "false_detections": {
                k: {
                    "all": self.counts[k],
                    "at_conf": self.counts_at_conf[k],
                    "AP50_without": r(self.without[k]),
                }
                for k in KINDS
            },
            "AP50_without_any_false_detection": r(self.ceiling),
            "faces": self.faces,
            "missed": self.missed,
            "missed_median_px": r(np.median(self.missed_sizes)) if self.missed else None,
            "face_median_px": r(np.median(self.face_sizes)) if self.faces else None,
            "missed_under_16px": int((self.missed_sizes < 16).sum()),
        }


def _ap50(ev: COCOeval, evals: list[dict[str, Any] | None]) -> float:
    """pycocotools' AP50 (area "all", the most detections) over ``evals``, a modified ``ev.evalImgs``."""
    view = copy.copy(ev)  # shallow: shares the parameters and the matching, not the accumulated arrays
    view.evalImgs = evals
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        view.accumulate()
    return mean_precision(view.eval["precision"][0, :, :, 0, -1])


def _faces_by_image(ev: COCOeval) -> dict[ImageId, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every labelled box of each image, whatever its class: (xyxy, category ids, ignored)."""
    out: dict[ImageId, list[tuple[list[float], int, bool]]] = {}
    for (img, cat), gts in ev._gts.items():
        out.setdefault(img, []).extend((g["bbox"], cat, bool(g["ignore"])) for g in gts)
    return {
        img: (
            xywh_to_xyxy(np.array([b for b, _, _ in v], dtype=np.float64).reshape(-1, 4)),
            np.array([c for _, c, _ in v], dtype=np.int64),
            np.array([i for _, _, i in v], dtype=bool),
        )
        for img, v in out.items()
    }


def _kind(iou: np.ndarray, cats: np.ndarray, ignored: np.ndarray, cat: int) -> str:
    """The kind of one unmatched detection from its IoU with every labelled box of its image."""
    real = ~ignored
    if (iou[real & (cats == cat)] >= MATCH_IOU).any():
        return DUPLICATE  # its own face was matched by a better-scoring detection
    if (iou[real & (cats != cat)] >= MATCH_IOU).any():
        return SWAP
    return POOR_BOX if len(iou) and iou.max() >= BACKGROUND_IOU else BACKGROUND


def breakdown(
    ev: COCOeval,
    image_ids: Sequence[ImageId],
    class_names: Sequence[str],
    conf: float = OPERATING_CONF,
    min_size: float = 0.0,
) -> ErrorBreakdown:
    """The breakdown of an evaluated (``evaluate()`` run) ``ev`` whose first IoU threshold is 0.5."""
    if not np.isclose(ev.params.iouThrs[0], MATCH_IOU):
        raise ValueError(f"the breakdown needs IoU {MATCH_IOU} first, got {ev.params.iouThrs[0]}")
    position = {img: i for i, img in enumerate(image_ids)}
    name_of = {c: class_names[k] for k, c in enumerate(sorted(ev.params.catIds))}
    faces = _faces_by_image(ev)
    n_area, n_img = len(ev.params.areaRng), len(ev.params.imgIds)
    kinds: dict[str, list[tuple[int, int]]] = {k: [] for k in KINDS}  # kind -> [(evalImgs index, det index)]
    examples: dict[str, list[tuple[int, np.ndarray, float, str]]] = {k: [] for k in (*KINDS, "missed")}
    counts_at_conf = dict.fromkeys(KINDS, 0)
    missed_sizes, face_sizes = [], []
    for k in range(len(ev.params.catIds)):
        for j in range(n_img):
            e_index = k * n_area * n_img + j  # area range 0 ("all")
            e = ev.evalImgs[e_index]
            if e is None:
                continue
            img, cat = e["image_id"], e["category_id"]
            boxes, cats, ignored = faces.get(
                img, (np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, bool))
            )
            dts = {d["id"]: d for d in ev._dts[img, cat]}
            gts = {g["id"]: g for g in ev._gts[img, cat]}
            for d, (dt_id, matched, ign) in enumerate(
                zip(e["dtIds"], e["dtMatches"][0], e["dtIgnore"][0], strict=True)
            ):
                if matched or ign:
                    continue
                dt = dts[dt_id]
                xyxy = xywh_to_xyxy(np.array([dt["bbox"]], dtype=np.float64))
                kind = _kind(box_iou(xyxy, boxes)[0], cats, ignored, cat)
                kinds[kind].append((e_index, d))
                counts_at_conf[kind] += dt["score"] >= conf
                examples[kind].append((position[img], xyxy[0], float(dt["score"]), name_of[cat]))
            for gt_id, matched, ign in zip(e["gtIds"], e["gtMatches"][0], e["gtIgnore"], strict=True):
                if ign:
                    continue
                w, h = gts[gt_id]["bbox"][2:]
                face_sizes.append(min(w, h))
                if not matched:
                    missed_sizes.append(min(w, h))
                    xyxy = xywh_to_xyxy(np.array([gts[gt_id]["bbox"]], dtype=np.float64))[0]
                    examples["missed"].append((position[img], xyxy, float("nan"), name_of[cat]))

    def without(marked: Sequence[tuple[int, int]]) -> float:
        evals = list(ev.evalImgs)
        for e_index, d in marked:
            e = evals[e_index]
            assert e is not None
            if e is ev.evalImgs[e_index]:  # copy an entry before its first change
                e = evals[e_index] = {**e, "dtIgnore": e["dtIgnore"].copy()}
            e["dtIgnore"][0, d] = True
        return _ap50(ev, evals)

    for kind in KINDS:
        examples[kind].sort(key=lambda x: -x[2])
        examples[kind] = examples[kind][:EXAMPLES]
    examples["missed"].sort(key=lambda x: -float(min(x[1][2] - x[1][0], x[1][3] - x[1][1])))
    examples["missed"] = examples["missed"][:EXAMPLES]
    return ErrorBreakdown(
        ap50=_ap50(ev, list(ev.evalImgs)),
        without={kind: without(kinds[kind]) for kind in KINDS},
        counts={kind: len(kinds[kind]) for kind in KINDS},
        counts_at_conf=counts_at_conf,
        ceiling=without([m for kind in KINDS for m in kinds[kind]]),
        faces=len(face_sizes),
        missed=len(missed_sizes),
        missed_sizes=np.array(missed_sizes, dtype=np.float64),
        face_sizes=np.array(face_sizes, dtype=np.float64),
        conf=conf,
        min_size=min_size,
        examples=examples,
    )


class ErrorEvaluator(DatasetEvaluator):
    """The :class:`ErrorBreakdown` of the predictions (on the range of interest when ``min_size`` > 0);
    :attr:`errors` after :meth:`evaluate`."""

    def __init__(
        self,
        class_names: Sequence[str],
        name: str = "errors",
        image_ids: Sequence[ImageId] | None = None,
        min_size: float = 0.0,
        conf: float = OPERATING_CONF,
        workers: int = 1,
    ) -> None:
        self.class_names, self.name, self.image_ids = tuple(class_names), name, image_ids
        self.min_size, self.conf, self.workers = min_size, conf, workers
        self.errors: ErrorBreakdown | None = None
        self.reset()

    def evaluate(self) -> dict[str, Any]:
        ds = Dataset(list(self._inputs), list(self.class_names))
        self.errors = error_breakdown(
            ds, self._outputs, self.class_names, self.image_ids, self.min_size, self.conf, self.workers
        )
        return {self.name: self.errors.to_json()}


def error_breakdown(
    ds: Dataset,
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
    conf: float = OPERATING_CONF,
    workers: int = 1,
) -> ErrorBreakdown:
    """The :class:`ErrorBreakdown` of ``predictions`` on ``ds`` (faces >= ``min_size`` px when > 0)."""
    ids = list(range(1, len(ds) + 1)) if image_ids is None else list(image_ids)
    _, _, ev, _ = score_coco(ds, predictions, class_names, ids, min_size, workers, MATCH_IOU)
    return breakdown(ev, ids, class_names, conf, min_size)


def mean_breakdown(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The mean over cross-validation folds of :meth:`ErrorBreakdown.to_json` dicts (counts summed)."""

    def mean(values: Sequence[float]) -> float:
        return round(float(np.mean(values)), 2)

    return {
        "AP50": mean([r["AP50"] for r in rows]),
        "false_detections": {
            k: {
                "all": sum(r["false_detections"][k]["all"] for r in rows),
                "at_conf": sum(r["false_detections"][k]["at_conf"] for r in rows),
                "AP50_without": mean([r["false_detections"][k]["AP50_without"] for r in rows]),
            }
            for k in KINDS
        },
        "AP50_without_any_false_detection": mean([r["AP50_without_any_false_detection"] for r in rows]),
        "faces": sum(r["faces"] for r in rows),
        "missed": sum(r["missed"] for r in rows),
        "missed_under_16px": sum(r["missed_under_16px"] for r in rows),
    }
