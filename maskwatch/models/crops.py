"""The second stage's conventions, in NumPy/OpenCV (no torch): face crops, and how the crop classifier's
class probabilities and the detector's scores become the final detections.

Shared by training (crops of labelled faces), the torch and ONNX predictors and the export, so the crop a
classifier learns from is the crop it is run on.

Why a second stage: at 640 px a 20 px face is a few feature cells of a detector whose backbone is shared
with finding faces; the same face cropped with some context and resized to the classifier's input gets a
network of its own that sees only it. Measured on the Kaggle cross-validation folds (MODEL_CARD.md), the
class decision was where the default lost most AP50; re-deciding it from crops recovered part of it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from maskwatch.boxes import box_iou, clip_boxes, nms
from maskwatch.detections import Detections

#: The crop classifier's backbones (:mod:`maskwatch.models.classifier`).
CLASSIFIER_ARCHS = ("mnet", "mobilenet_v2", "mobilenet_v2_14")
#: A crop is this many times the box's longer side, centred on the box: the mask's edges, chin and ears
#: stay in view whatever box style the face was drawn in.
CONTEXT = 1.25
#: Detections of one face overlap its kept box at least this much (IoU).
SAME_FACE_IOU = 0.5
#: The first stage keeps its per-class detections down to this score (evaluation's 0.01 over two classes),
#: whatever the caller's ``conf``, so a face's final scores do not depend on ``conf``, which only filters.
FIRST_STAGE_CONF = 0.005
#: At most this many faces an image are classified (the detector keeps at most 300 boxes).
MAX_FACES = 100
#: A classifier with a background output learns it from the detector's own mistakes on its training
#: images: candidates overlapping no labelled face more than this (IoU) ...
NEGATIVE_IOU = 0.3
#: ... and scoring at least this as a face (the detector's confident mistakes, not its noise floor).
NEGATIVE_MIN_SCORE = 0.01
#: A candidate covering a labelled face at least this much has found it (COCO's AP50 criterion).
FOUND_IOU = 0.5
#: A box regressor's centre offsets are in this fraction of its crop's side (quarters: about unit scale
#: for the offsets a detector makes).
OFFSET_UNIT = 0.25


def square_crop(
    image: np.ndarray,
    box: Sequence[float] | np.ndarray,
    size: int,
    context: float = CONTEXT,
    shift: tuple[float, float] = (0.0, 0.0),
    zoom: float = 1.0,
    fill: int | None = None,
) -> np.ndarray:
    """The square of side ``context`` × the box's longer side around its centre, resized to ``size``;
    parts outside the image repeat its edge pixels (what a network should see), or are ``fill`` (what a
    person should see: where the image ends). ``shift`` (fractions of that side) and ``zoom`` jitter the
    square in training."""
    x0, y0, x1, y1 = (float(v) for v in box[:4])
    side = max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2 + shift[0] * side, (y0 + y1) / 2 + shift[1] * side
    k = size / (side * context * zoom)
    m = np.array([[k, 0, size / 2 - k * cx], [0, k, size / 2 - k * cy]], dtype=np.float32)
    mode = cv2.BORDER_REPLICATE if fill is None else cv2.BORDER_CONSTANT
    value = (fill or 0,) * 3
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=value)


def crop_batch(crops: Sequence[np.ndarray], size: int) -> np.ndarray:
    """(size, size, 3) RGB crops -> the classifier's input: (M, 3, size, size) float32 RGB 0-255 (the
    network normalises in its graph)."""
    if not len(crops):
        return np.zeros((0, 3, size, size), np.float32)
    return np.ascontiguousarray(np.stack(crops).astype(np.float32).transpose(0, 3, 1, 2))


def face_crops(image: np.ndarray, boxes: np.ndarray, size: int, context: float = CONTEXT) -> np.ndarray:
    """The classifier's input for ``boxes`` (xyxy pixels) of one RGB image."""
    return crop_batch([square_crop(image, b, size, context) for b in boxes], size)


def group_faces(found: Detections, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """One box per face from per-class detections (each class kept separately, low threshold).

    Returns the faces' boxes (F, 4) and, per face and class, the best score of that class among the
    detections of the face (F, C). Their sum over classes is the face's score: the detector's softmax
    splits one face's probability between the classes, so an ambiguous face scores low in each class but
    high as a face.
    """
    k = len(found.class_names)
    if not len(found):
        return np.zeros((0, 4), np.float32), np.zeros((0, k), np.float32)
    keep = nms(found.xyxy, found.confidence, iou)[:MAX_FACES]
    boxes = found.xyxy[keep]
    same = box_iou(boxes, found.xyxy) > SAME_FACE_IOU
    same[np.arange(len(keep)), keep] = True
    best = np.stack(
        [np.where(same & (found.class_id[None] == c), found.confidence[None], 0.0).max(1) for c in range(k)],
        1,
    ).astype(np.float32)
    return boxes, best


def _squares(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre x, centre y and longer side of each box: the square a crop is cut around."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    side = np.maximum(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]), 1.0)
    return (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, side


def box_deltas(boxes: np.ndarray, targets: np.ndarray, context: float = CONTEXT) -> np.ndarray:
    """What a box regressor looking at the crops of ``boxes`` (:func:`square_crop`) learns to say about
    ``targets``: centre offsets in :data:`OFFSET_UNIT` of the crop's side, then the log of the target's
    width and height over the cropped box's longer side. (N, 4) float32; :func:`apply_deltas` inverts it.

    Relative to the crop, so one network serves faces of every size, and only the crop decides."""
    cx, cy, side = _squares(boxes)
    t = np.asarray(targets, np.float64).reshape(-1, 4)
    unit = side * context * OFFSET_UNIT
    w, h = np.maximum(t[:, 2] - t[:, 0], 1e-6), np.maximum(t[:, 3] - t[:, 1], 1e-6)
    return np.stack(
        [
            ((t[:, 0] + t[:, 2]) / 2 - cx) / unit,
            ((t[:, 1] + t[:, 3]) / 2 - cy) / unit,
            np.log(w / side),
            np.log(h / side),
        ],
        1,
    ).astype(np.float32)


def apply_deltas(boxes: np.ndarray, deltas: np.ndarray, context: float = CONTEXT) -> np.ndarray:
    """The boxes a regressor's ``deltas`` (:func:`box_deltas`) describe around the crops of ``boxes``."""
    cx, cy, side = _squares(boxes)
    d = np.asarray(deltas, np.float64).reshape(-1, 4)
    unit = side * context * OFFSET_UNIT
    x, y = cx + d[:, 0] * unit, cy + d[:, 1] * unit
    w, h = np.exp(np.clip(d[:, 2], -4, 4)) * side, np.exp(np.clip(d[:, 3], -4, 4)) * side
    return np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], 1).astype(np.float32)


def refine_boxes(
    boxes: np.ndarray, deltas: np.ndarray, weight: float, context: float = CONTEXT
) -> np.ndarray:
    """Each face's box moved ``weight`` of the way to the box the crop regressor draws: the crop sees the
    face at its own resolution, the detector the whole image; their mean is better than either (measured
    in MODEL_CARD.md)."""
    if weight <= 0 or not len(boxes):
        return boxes
    drawn = apply_deltas(boxes, deltas, context)
    return ((1.0 - weight) * np.asarray(boxes, np.float32) + weight * drawn).astype(np.float32)


def face_floor(conf: float, beta: float) -> float:
    """The lowest detector face score that can still end at ``conf`` or above: a face's final score is at
    most its face score ** (1 − ``beta``), so faces below this need not be classified, and ``conf`` only
    filters (the same faces over ``conf`` whatever was classified)."""
    return float(conf ** (1.0 / (1.0 - beta))) if conf > 0 else 0.0


def decide(
    boxes: np.ndarray,
    best: np.ndarray,
    probs: np.ndarray,
    alpha: float,
    conf: float,
    agnostic: bool,
    class_names: tuple[str, ...],
    shape: tuple[int, int],
    beta: float = 0.0,
) -> Detections:
    """The final detections of one image: each face scores its face score × (``alpha`` × the classifier's
    class probability + (1 − ``alpha``) × the detector's share of that class).

    The face score is the detector's (its class scores summed), or, when ``probs`` has a last background
    column (a classifier that learned the detector's mistakes), the detector's ** (1 − ``beta``) × the
    classifier's face probability ** ``beta``, and the class probabilities are those given a face: the
    crop, seen at its own resolution, re-ranks the faces too, not only their classes.

    ``agnostic`` keeps each face's best class (what a camera wants); otherwise every class of a face over
    ``conf`` is kept, so an evaluation credits a second guess, as the detector alone does.
    """
    k = len(class_names)
    face = np.clip(best.sum(1), 0.0, 1.0)
    if probs.shape[1] > k:  # the background column
        is_face = np.clip(1.0 - probs[:, k], 1e-6, 1.0)
        probs = probs[:, :k] / is_face[:, None]
        face = face ** (1.0 - beta) * is_face**beta
    share = best / np.maximum(best.sum(1, keepdims=True), 1e-9)
    scores = face[:, None] * (alpha * probs + (1 - alpha) * share)  # (F, C)
    if agnostic:
        labels = scores.argmax(1) if len(scores) else np.zeros(0, np.int64)
        idx = np.arange(len(scores))
        score = scores[idx, labels] if len(scores) else np.zeros(0, np.float32)
    else:
        idx, labels = np.nonzero(scores >= 0)
        score = scores[idx, labels]
    ok = score >= conf
    idx, labels, score = idx[ok], labels[ok], score[ok]
    order = np.argsort(-score, kind="stable")
    h, w = shape
    xyxy = clip_boxes(boxes[idx[order]].astype(np.float32).reshape(-1, 4), w, h)
    return Detections(xyxy, score[order].astype(np.float32), labels[order].astype(np.int64), class_names)
