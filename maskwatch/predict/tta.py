"""Test-time augmentation (``--tta``): a model run on flipped and enlarged copies of each image, their
detections fused into one set.

Opt-in, for still images and evaluation where a few times the compute buys accuracy: the enlarged
views find faces too small for the model's input size, and averaging several views' boxes places them
better. Built on any :class:`~maskwatch.predict.Predictor` or detector with ``predict`` and ``imgsz`` (the
ONNX path stays torch-free); views at another size need a dynamic-shape model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from maskwatch.boxes import batched_nms, clip_boxes, fuse_boxes, hflip_boxes
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.models.letterbox import MAX_DET
from maskwatch.predict.base import ImagePredictor, Wrapper

# Input sizes, as multiples of the model's own. Measured on a held-out Kaggle cross-validation fold (AP):
# plain 45.4; mirrored 47.6; 1 and 1.3, mirrored 50.1; 1, 1.3 and 1.6, mirrored 51.2 (~8x the compute;
# MODEL_CARD.md has the K-fold numbers).
SCALES = (1.0, 1.3, 1.6)
FUSE_IOU = 0.55  # boxes of two views overlapping more than this are one face (the WBF paper's value)
# Every look keeps its detections down to this score (evaluation's threshold), so a fused face's score
# (the mean of its looks) does not depend on the caller's ``conf``, which only filters the fused faces.
LOOK_CONF = 0.01


class _Model(Protocol):
    imgsz: int
    class_names: tuple[str, ...]

    def predict(
        self, images: Sequence[np.ndarray], conf: float = ..., iou: float = ..., agnostic: bool = ...
    ) -> list[Detections]: ...


class TTAPredictor(Wrapper, ImagePredictor):
    """``model`` at each of ``scales`` × its own input size, each also mirrored left-right (``flip``)."""

    def __init__(self, model: _Model, scales: Sequence[float] = SCALES, flip: bool = True) -> None:
        if not scales or any(s <= 0 for s in scales):
            raise MaskwatchError(f"TTA scales must be positive, got {list(scales)}")
        if any(s != 1 for s in scales) and getattr(model, "static_size", None) is not None:
            raise MaskwatchError(
                f"{getattr(model, 'name', 'this model')}: a fixed-size ONNX export cannot run the enlarged "
                "test-time views (export it without --static)"
            )
        self.model = self.wrapped = model
        self.scales, self.flip = tuple(scales), flip
        self.backend = getattr(model, "backend", "torch")
        self.name = f"{getattr(model, 'name', '') or getattr(model, 'arch', 'model')} + TTA"
        self.class_names = tuple(model.class_names)
        self.box_style = getattr(model, "box_style", "default")
        self.box_styles = tuple(getattr(model, "box_styles", None) or (self.box_style,))

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        if not images:
            return []
        per_view: list[list[Detections]] = []
        base, look_conf = self.model.imgsz, min(conf, LOOK_CONF)
        mirrored = [np.ascontiguousarray(im[:, ::-1]) for im in images] if self.flip else []
        try:
            for scale in self.scales:
                self.model.imgsz = max(32, round(base * scale))
                per_view.append(self.model.predict(images, look_conf, iou, agnostic))
                if mirrored:
                    found = self.model.predict(mirrored, look_conf, iou, agnostic)
                    per_view.append([_unflip(d, im.shape[1]) for d, im in zip(found, images, strict=True)])
        finally:
            self.model.imgsz = base
        return [self._fuse([v[i] for v in per_view], im, conf, iou, agnostic) for i, im in enumerate(images)]

    def _fuse(
        self, found: list[Detections], image: np.ndarray, conf: float, iou: float, agnostic: bool
    ) -> Detections:
        xyxy = np.concatenate([d.xyxy for d in found])
        scores = np.concatenate([d.confidence for d in found])
        labels = np.concatenate([d.class_id for d in found])
        # Fused within each class, so a face the looks disagree on keeps one cluster per class with that
        # class's own mean score; the caller's NMS (one label per face when agnostic) then keeps the best.
        boxes, fused, group = fuse_boxes(xyxy, scores, labels, FUSE_IOU)
        keep = np.flatnonzero(fused >= conf)
        classes = np.zeros_like(keep) if agnostic else group[keep]
        keep = keep[batched_nms(boxes[keep], fused[keep], classes, iou)]
        keep = keep[:MAX_DET]
        h, w = image.shape[:2]
        return Detections(clip_boxes(boxes[keep], w, h), fused[keep], group[keep], self.class_names)


def _unflip(d: Detections, width: int) -> Detections:
    """Detections on a left-right mirrored image, put back on the original."""
    return Detections(hflip_boxes(d.xyxy, width), d.confidence, d.class_id, d.class_names)
