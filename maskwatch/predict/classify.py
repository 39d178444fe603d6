"""The second stage behind any predictor: the first stage's per-class detections become faces, and a crop
classifier re-decides each face's class and, if it learned to, re-draws its box
(:mod:`maskwatch.models.crops` holds the rules).

Torch-free: the classifier is anything with :class:`CropClassifier`'s shape, the torch module of a
checkpoint (:class:`TorchCropClassifier`) or the classifier model an ONNX export carries in its metadata
(:class:`maskwatch.predict.onnx.OnnxCropClassifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from maskwatch.detections import Detections
from maskwatch.models.crops import FIRST_STAGE_CONF, decide, face_crops, face_floor, group_faces, refine_boxes
from maskwatch.predict.base import Predictor, Prepared, Wrapper


class CropClassifier(Protocol):
    """Crops (M, 3, size, size) float32 RGB 0-255 in; out, class probabilities (M, C), or (M, C + 1) with
    the background's last (then ``beta`` > 0 weighs it in the face score), and, with a box head, each
    face's box deltas per style of ``box_styles`` (M, S, 4; :func:`~maskwatch.models.crops.box_deltas`),
    which move its box ``refine`` of the way, else None."""

    size: int
    context: float
    alpha: float
    beta: float
    refine: float
    box_styles: tuple[str, ...]

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


class TorchCropClassifier:
    """A checkpoint's :class:`~maskwatch.models.classifier.FaceClassifier` run by torch."""

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier
        self.size, self.context, self.alpha = classifier.size, classifier.context, classifier.alpha
        self.beta, self.refine, self.box_styles = classifier.beta, classifier.refine, classifier.box_styles

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        probs, deltas = self.classifier.run(torch.from_numpy(crops))
        return probs.cpu().numpy(), None if deltas is None else deltas.cpu().numpy()


class ClassifiedPredictor(Wrapper, Predictor):
    """``inner`` (any predictor or detector-backed one), then ``classifier`` on each face it finds.

    The first stage runs at a lower threshold with every class kept, so a face the detector splits between
    the classes still counts as one face with their summed score; only faces over ``conf`` are classified.
    ``prepare`` is the inner predictor's (in the decoding thread) plus a reference to the frame for the crops.
    """

    def __init__(self, inner: Predictor, classifier: CropClassifier, refine: float | None = None) -> None:
        self.inner = self.wrapped = inner
        self.classifier = classifier
        # how far each face's box moves to the classifier's (default: the classifier's own weight)
        self.refine = classifier.refine if refine is None else float(refine)
        self.backend = inner.backend
        self.name = inner.name
        self.class_names = tuple(inner.class_names)
        self.box_style, self.box_styles = inner.box_style, tuple(inner.box_styles)

    @property
    def static_size(self) -> tuple[int, int] | None:
        return getattr(self.inner, "static_size", None)

    def prepare(self, image: np.ndarray) -> Prepared:
        p = self.inner.prepare(image)
        p.image = image
        return p

    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        if not batch:
            return []
        k = max(1, len(self.class_names))
        # every class kept, at a fixed low threshold (a face over conf has a class over conf / k)
        found = self.inner.infer(batch, min(conf / k, FIRST_STAGE_CONF), iou, agnostic=False)
        faces, crops = [], []
        clf = self.classifier
        floor = face_floor(conf, clf.beta)  # the faces that can still end over conf
        for p, d in zip(batch, found, strict=True):
            if p.image is None:
                raise ValueError("infer() needs images made by this predictor's prepare()")
            boxes, best = group_faces(d, iou)
            ok = best.sum(1) >= floor
            faces.append((boxes[ok], best[ok]))
            crops.append(face_crops(p.image, boxes[ok], clf.size, clf.context))
        # every face of the batch in one classifier run
        stacked = np.concatenate(crops)
        probs, deltas = clf.classify(stacked) if len(stacked) else (np.zeros((0, k), np.float32), None)
        ends = np.cumsum([len(c) for c in crops])[:-1]
        if deltas is not None and self.refine > 0 and self.box_style in clf.box_styles:
            style = clf.box_styles.index(self.box_style)  # the boxes drawn as the detector draws them
            moved = refine_boxes(
                np.concatenate([b for b, _ in faces]), deltas[:, style], self.refine, clf.context
            )
            faces = [(b, best) for b, (_, best) in zip(np.split(moved, ends), faces, strict=True)]
        return [
            decide(boxes, best, pr, clf.alpha, conf, agnostic, self.class_names, p.shape, clf.beta)
            for p, (boxes, best), pr in zip(batch, faces, np.split(probs, ends), strict=True)
        ]


def with_classifier(
    model: Any, classifier: CropClassifier, refine: float | None = None
) -> ClassifiedPredictor:
    """``model`` (a predictor or a detector) behind ``classifier`` (see :func:`crop_classifier_of`);
    ``refine`` overrides its box weight."""
    if not isinstance(model, Predictor):
        from maskwatch.predict.torch_backend import DetectorPredictor

        model = DetectorPredictor(model)
    return ClassifiedPredictor(model, classifier, refine)


def crop_classifier_of(model: Any) -> CropClassifier | None:
    """The crop classifier a predictor (``crop_classifier``) or a detector (``classifier``) carries."""
    if isinstance(model, Predictor):
        return model.crop_classifier
    clf = getattr(model, "classifier", None)
    return TorchCropClassifier(clf) if clf is not None else None
