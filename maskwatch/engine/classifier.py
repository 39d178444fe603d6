"""Training the crop classifier (the second stage, ``classifier`` in the training config) on the labelled
faces of the detector's own training images, right after the detector.

Faces are cut once, with room for the jitter, at twice the classifier's input size; each step then takes
a jittered, mirrored, brightness-shifted square out of them. Every draw is seeded, so a run gives the same
classifier whatever else ran before it.

With ``negatives``, the trained detector is first run on its own training images, and its most confident
candidates that overlap no labelled face become a background class: the classifier then also says how
much a crop looks like a face, which re-ranks what the detector found (measured in MODEL_CARD.md).
Only images whose source says its unboxed regions are background (``negatives: true``) give them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from maskwatch.boxes import box_iou
from maskwatch.data.record import Dataset
from maskwatch.engine.train_config import CLASSIFIER_EPOCHS, ClassifierConfig
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image
from maskwatch.models.base import Detector
from maskwatch.models.classifier import FaceClassifier
from maskwatch.models.crops import (
    FIRST_STAGE_CONF,
    NEGATIVE_IOU,
    NEGATIVE_MIN_SCORE,
    crop_batch,
    group_faces,
    square_crop,
)

MIN_FACE = 6  # pixels: a smaller labelled face is too blurred to teach a class
_CUT_CONTEXT = 2.0  # the stored cut: the largest jittered square (1.25 x 1.2 zoom + shifts) fits inside
_SHIFT, _ZOOM = 0.1, (0.85, 1.2)
_WARMUP = 30


def cut_faces(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Every labelled face of at least :data:`MIN_FACE` pixels as a (2 × size)² cut around it, and its
    class index: the classifier's training set, ~110 KB a face at size 96."""
    cuts, classes = [], []
    for image, bxs, labs in zip(images, boxes, labels, strict=True):
        for box, lab in zip(bxs, labs, strict=True):
            if lab >= 0 and min(box[2] - box[0], box[3] - box[1]) >= MIN_FACE:
                cuts.append(square_crop(image, box, 2 * size, _CUT_CONTEXT))
                classes.append(int(lab))
    if not cuts:
        raise MaskwatchError(
            f"the crop classifier has no labelled face of at least {MIN_FACE} px to learn from"
        )
    return np.stack(cuts), np.array(classes, dtype=np.int64)


def jittered(cut: np.ndarray, size: int, context: float, rng: np.random.Generator) -> np.ndarray:
    """One training crop from a stored cut: the face square shifted, zoomed, mirrored, relit."""
    side = cut.shape[0] / _CUT_CONTEXT  # the face's longer side inside the cut
    centre = cut.shape[0] / 2
    box = (centre - side / 2, centre - side / 2, centre + side / 2, centre + side / 2)
    shift = (float(rng.uniform(-_SHIFT, _SHIFT)), float(rng.uniform(-_SHIFT, _SHIFT)))
    crop = square_crop(cut, box, size, context, shift, float(rng.uniform(*_ZOOM)))
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    lit = crop.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
    return np.clip(lit, 0, 255)


def mine_negatives(
    detector: Detector,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    per_image: int,
    allowed: Sequence[bool] | None = None,
    iou: float = 0.45,
) -> list[np.ndarray]:
    """Per image, the ``per_image`` best-scored faces ``detector`` finds (as the second stage groups them)
    that overlap no labelled box more than :data:`NEGATIVE_IOU` and score at least
    :data:`NEGATIVE_MIN_SCORE`; none on images not ``allowed`` (sparse labels: an unboxed face there is not
    background)."""
    none = np.zeros((0, 4), np.float32)
    if per_image <= 0:
        return [none for _ in images]
    detector.model.eval()
    out: list[np.ndarray] = []
    for i, (image, labelled) in enumerate(
        zip(tqdm(images, desc="mining background", unit="img"), boxes, strict=True)
    ):
        if allowed is not None and not allowed[i]:
            out.append(none)
            continue
        found = detector.predict([image], conf=FIRST_STAGE_CONF, iou=iou, agnostic=False)[0]
        faces, best = group_faces(found, iou)  # best-scored first
        overlap = box_iou(faces, labelled).max(1) if len(labelled) and len(faces) else np.zeros(len(faces))
        pick = np.nonzero((overlap < NEGATIVE_IOU) & (best.sum(1) >= NEGATIVE_MIN_SCORE))[0][:per_image]
        # to 1/16 px: the network's last float bits vary with its thread count, and a resumed run must
        # cut the same crops as an unbroken one
        out.append((np.round(faces[pick] * 16) / 16).astype(np.float32))
    return out


def background_examples(
    cfg: ClassifierConfig,
    detector: Detector | None,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    allowed: Sequence[bool] | None,
) -> list[np.ndarray] | None:
    """What ``train_classifier`` takes as ``negatives`` for ``cfg``: None without a background output
    (``cfg.negatives`` 0), else ``detector``'s mistakes on ``images`` (:func:`mine_negatives`)."""
    if not cfg.negatives:
        return None
    if detector is None:
        raise MaskwatchError("classifier.negatives needs the detector whose mistakes it learns")
    return mine_negatives(detector, images, boxes, cfg.negatives, allowed)


def train_classifier_on(
    ds: Dataset,
    class_names: Sequence[str],
    cfg: ClassifierConfig,
    detector: Detector | None = None,
    **kwargs: Any,
) -> FaceClassifier:
    """:func:`train_classifier` (same keywords) on a learning base's images, loaded here (labels outside
    ``class_names`` are ignored), e.g. a cross-validation fold's training part; ``detector`` (the one the
    classifier will sit behind) gives the background examples when ``cfg.negatives``."""
    index = {c: i for i, c in enumerate(class_names)}
    images = [load_image(r.image) for r in tqdm(ds.records, desc="loading images", leave=False)]
    labels = [np.array([index.get(lab, -1) for lab in r.labels], dtype=np.int64) for r in ds.records]
    boxes = [r.boxes for r in ds.records]
    allowed = [r.source.negatives for r in ds.records]
    negatives = background_examples(cfg, detector, images, boxes, allowed)
    return train_classifier(images, boxes, labels, class_names, cfg, negatives=negatives, **kwargs)


def train_classifier(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    class_names: Sequence[str],
    cfg: ClassifierConfig,
    init: str | Path | dict[str, torch.Tensor] | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    desc: str = "classifier",
    negatives: Sequence[np.ndarray] | None = None,
) -> FaceClassifier:
    """A crop classifier trained on the labelled faces of ``images`` (boxes xyxy pixels, labels indices
    into ``class_names``, -1 ignored), its backbone started from ``init`` (``cfg.weights`` if given).
    ``negatives`` (boxes per image, :func:`mine_negatives`) add a background output after the classes."""
    torch.manual_seed(seed)  # the new head's initial weights, then dropout
    background = negatives is not None
    clf = FaceClassifier(
        cfg.arch, tuple(class_names), cfg.size, cfg.alpha, device=device, background=background, beta=cfg.beta
    )
    start = cfg.weights or init
    if start is None:
        raise MaskwatchError("the crop classifier needs starting weights: set classifier.weights")
    clf.init_backbone(start)
    if negatives is not None:  # background is the class after the last
        k = len(class_names)
        boxes = [np.concatenate([b, n]) for b, n in zip(boxes, negatives, strict=True)]
        labels = [np.concatenate([lab, np.full(len(n), k)]) for lab, n in zip(labels, negatives, strict=True)]
    cuts, classes = cut_faces(images, boxes, labels, cfg.size)
    net = clf.net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(cuts) // cfg.batch)
    epochs = CLASSIFIER_EPOCHS if cfg.epochs is None else cfg.epochs
    total, step = epochs * steps_per_epoch, 0
    for epoch in range(epochs):
        rng = np.random.default_rng((seed, epoch, 1 << 21))
        order = rng.permutation(len(cuts))
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} epoch {epoch + 1}/{epochs}", unit="step")
        for k in bar:
            pick = order[k * cfg.batch : (k + 1) * cfg.batch]
            x = torch.from_numpy(
                crop_batch([jittered(cuts[i], cfg.size, clf.context, rng) for i in pick], cfg.size)
            )
            lr = cfg.lr * (
                (step + 1) / _WARMUP if step < _WARMUP else 0.5 * (1 + math.cos(math.pi * step / total))
            )
            for g in opt.param_groups:
                g["lr"] = lr
            y = torch.from_numpy(classes[pick]).to(clf.device)
            loss = torch.nn.functional.cross_entropy(net(x.to(clf.device)), y, label_smoothing=0.1)
            if not torch.isfinite(loss):
                raise MaskwatchError(f"crop classifier training diverged at step {step}; lower classifier.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    return clf
