"""Training the crop classifier (the second stage, ``classifier`` in the training config) on the labelled
faces of the detector's own training images, right after the detector.

Faces are cut once, with room for the jitter, at twice the classifier's input size; each step then takes
a jittered, mirrored, brightness-shifted square out of them. Every draw is seeded, so a run gives the same
classifier whatever else ran before it.

With ``negatives``, the trained detector is first run on its own training images, and its most confident
candidates that overlap no labelled face become a background class: the classifier then also says how
much a crop looks like a face, which re-ranks what the detector found (measured in MODEL_CARD.md).
Only images whose source says its unboxed regions are background (``negatives: true``) give them.
With ``second_boxes``, the candidates that sit on a face a better-scored candidate already found (a
duplicate, a box on part of the face or half off it) join the background too: such a box would
otherwise score as a second face, a false alarm in every count.
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
    FOUND_IOU,
    NEGATIVE_IOU,
    NEGATIVE_MIN_SCORE,
    box_deltas,
    crop_batch,
    group_faces,
    square_crop,
)

MIN_FACE = 6  # pixels: a smaller labelled face is too blurred to teach a class
_CUT_CONTEXT = 2.0  # the stored cut: the largest jittered square (1.25 x 1.2 zoom + shifts) fits inside
_SHIFT, _ZOOM = 0.1, (0.85, 1.2)
_WARMUP = 30
BOX_LOSS_WEIGHT = 1.0  # the box head's smooth-L1 (deltas ~ unit scale) beside the class cross-entropy
_BOX_BETA = 0.1  # smooth-L1's switch from quadratic to linear, in delta units


def cut_faces(
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    size: int,
    styles: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every labelled face of at least :data:`MIN_FACE` pixels as a (2 × size)² cut around it, its class
    index, its box inside the cut (xyxy cut pixels) and its box style (``styles``, per face; -1 without):
    the classifier's training set, ~110 KB a face at size 96."""
    cuts, classes, inside, kept_styles = [], [], [], []
    if styles is None:
        styles = [np.full(len(lab), -1) for lab in labels]
    for image, bxs, labs, stys in zip(images, boxes, labels, styles, strict=True):
        for box, lab, sty in zip(bxs, labs, stys, strict=True):
            w, h = box[2] - box[0], box[3] - box[1]
            if lab >= 0 and min(w, h) >= MIN_FACE:
                cuts.append(square_crop(image, box, 2 * size, _CUT_CONTEXT))
                classes.append(int(lab))
                k = 2 * size / (_CUT_CONTEXT * max(w, h))  # cut pixels per image pixel
                inside.append((size - k * w / 2, size - k * h / 2, size + k * w / 2, size + k * h / 2))
                kept_styles.append(int(sty))
    if not cuts:
        raise MaskwatchError(
            f"the crop classifier has no labelled face of at least {MIN_FACE} px to learn from"
        )
    return (
        np.stack(cuts),
        np.array(classes, dtype=np.int64),
        np.array(inside, dtype=np.float32),
        np.array(kept_styles, dtype=np.int64),
    )


def jittered(
    cut: np.ndarray, size: int, context: float, rng: np.random.Generator, face: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One training crop from a stored cut: the face square shifted, zoomed, mirrored, relit; and the
    deltas (:func:`maskwatch.models.crops.box_deltas`) from that square to the face's box ``face`` (cut
    pixels; zeros without one)."""
    side = cut.shape[0] / _CUT_CONTEXT  # the face's longer side inside the cut
    centre = cut.shape[0] / 2
    box = (centre - side / 2, centre - side / 2, centre + side / 2, centre + side / 2)
    shift = (float(rng.uniform(-_SHIFT, _SHIFT)), float(rng.uniform(-_SHIFT, _SHIFT)))
    zoom = float(rng.uniform(*_ZOOM))
    crop = square_crop(cut, box, size, context, shift, zoom)
    deltas = np.zeros(4, np.float32)
    if face is not None:  # the square this crop was cut as, seen as a box a detector drew
        cx, cy, half = centre + shift[0] * side, centre + shift[1] * side, side * zoom / 2
        deltas = box_deltas(np.array([cx - half, cy - half, cx + half, cy + half]), face, context)[0]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
        deltas[0] = -deltas[0]
    lit = crop.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
    return np.clip(lit, 0, 255), deltas


def second_boxes(iou: np.ndarray) -> np.ndarray:
    """Which candidates (rows of ``iou``, their IoU with each labelled face, best-scored first) lie on a
    labelled face (IoU at least :data:`NEGATIVE_IOU`) that a better-scored candidate already found (IoU at
    least :data:`FOUND_IOU`): a boolean mask. The first candidate on a face is never one, however poorly
    placed: it is that face's detection, which the box head improves."""
    second = np.zeros(iou.shape[0], bool)
    if not iou.size:
        return second
    on = iou.argmax(1)
    found = np.zeros(iou.shape[1], bool)
    for i, (j, best) in enumerate(zip(on, iou[np.arange(len(on)), on], strict=True)):
        if found[j]:
            second[i] = best >= NEGATIVE_IOU
        elif best >= FOUND_IOU:
            found[j] = True
    return second


def mine_negatives(
    detector: Detector,
    images: Sequence[np.ndarray],
    boxes: Sequence[np.ndarray],
    per_image: int,
    allowed: Sequence[bool] | None = None,
    iou: float = 0.45,
    second: int = 0,
    faces_only: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Per image, the ``per_image`` best-scored faces ``detector`` finds (as the second stage groups them)
    that overlap no labelled box more than :data:`NEGATIVE_IOU` and score at least
    :data:`NEGATIVE_MIN_SCORE`, and the ``second`` best-scored :func:`second_boxes` on the labelled faces
    (``faces_only`` masks the boxes that are faces, not ``ignore`` regions); none on images not
    ``allowed`` (sparse labels: an unboxed face there is not background)."""
    none = np.zeros((0, 4), np.float32)
    if per_image <= 0 and second <= 0:
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
        iou_lab = box_iou(faces, labelled)  # (faces, labelled boxes), empty where either is
        overlap = iou_lab.max(1, initial=0.0)
        confident = best.sum(1) >= NEGATIVE_MIN_SCORE
        pick = np.nonzero((overlap < NEGATIVE_IOU) & confident)[0][: max(per_image, 0)]
        if second > 0:
            on_faces = iou_lab if faces_only is None else iou_lab[:, faces_only[i]]
            extra = np.nonzero(second_boxes(on_faces) & confident)[0][:second]
            pick = np.sort(np.concatenate([pick, extra]))
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
    labels: Sequence[np.ndarray] | None = None,
) -> list[np.ndarray] | None:
    """What ``train_classifier`` takes as ``negatives`` for ``cfg``: None without a background output
    (``cfg.negatives`` 0), else ``detector``'s mistakes on ``images`` (:func:`mine_negatives`; ``labels``
    -1 marks the boxes that are no face to find twice)."""
    if not cfg.negatives:
        return None
    if detector is None:
        raise MaskwatchError("classifier.negatives needs the detector whose mistakes it learns")
    faces = None if labels is None else [lab >= 0 for lab in labels]
    return mine_negatives(
        detector, images, boxes, cfg.negatives, allowed, second=cfg.second_boxes, faces_only=faces
    )


def train_classifier_on(
    ds: Dataset,
    class_names: Sequence[str],
    cfg: ClassifierConfig,
    detector: Detector | None = None,
    **kwargs: Any,
) -> FaceClassifier:
    """:func:`train_classifier` (same keywords) on a learning base's images, loaded here (labels outside
    ``class_names`` are ignored), e.g. a cross-validation fold's training part; ``detector`` (the one the
    classifier will sit behind) gives the background examples when ``cfg.negatives``, and its box styles
    the boxes the classifier learns to draw when ``cfg.refine`` (without one: one style, every label's)."""
    index = {c: i for i, c in enumerate(class_names)}
    images = [load_image(r.image) for r in tqdm(ds.records, desc="loading images", leave=False)]
    labels = [np.array([index.get(lab, -1) for lab in r.labels], dtype=np.int64) for r in ds.records]
    boxes = [r.boxes for r in ds.records]
    allowed = [r.source.negatives for r in ds.records]
    negatives = background_examples(cfg, detector, images, boxes, allowed, labels)
    names = detector.box_style_names() if detector is not None else None
    return train_classifier(
        images,
        boxes,
        labels,
        class_names,
        cfg,
        negatives=negatives,
        styles=ds.box_style_ids(names) if names else None,
        box_styles=names or ("default",),
        **kwargs,
    )


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
    styles: Sequence[int] | None = None,
    box_styles: Sequence[str] = ("default",),
) -> FaceClassifier:
    """A crop classifier trained on the labelled faces of ``images`` (boxes xyxy pixels, labels indices
    into ``class_names``, -1 ignored), its backbone started from ``init`` (``cfg.weights`` if given).
    ``negatives`` (boxes per image, :func:`mine_negatives`) add a background output after the classes.
    With ``cfg.refine`` it also learns to draw each face's box in each of ``box_styles`` (the detector's),
    every image's labels teaching the style ``styles`` gives it (index into ``box_styles``; default the
    first)."""
    torch.manual_seed(seed)  # the new heads' initial weights, then dropout
    background = negatives is not None
    boxed = tuple(box_styles) if cfg.refine > 0 else ()
    clf = FaceClassifier(
        cfg.arch,
        tuple(class_names),
        cfg.size,
        cfg.alpha,
        device=device,
        background=background,
        beta=cfg.beta,
        box_styles=boxed,
        refine=cfg.refine,
    )
    start = cfg.weights or init
    if start is None:
        raise MaskwatchError("the crop classifier needs starting weights: set classifier.weights")
    clf.init_backbone(start)
    # float32 as the trainer holds them: the jitter's arithmetic (and so the weights) must not depend on
    # whether the boxes came from a dataset's float64 records or the trainer's arrays
    boxes = [np.asarray(b, np.float32) for b in boxes]
    style = np.asarray(styles if styles is not None else [0] * len(images), dtype=np.int64)
    # each face's box style (-1: no box to learn, a background example)
    face_styles = [np.full(len(lab), s) for lab, s in zip(labels, style, strict=True)]
    if negatives is not None:  # background is the class after the last
        k = len(class_names)
        boxes = [np.concatenate([b, n]) for b, n in zip(boxes, negatives, strict=True)]
        labels = [np.concatenate([lab, np.full(len(n), k)]) for lab, n in zip(labels, negatives, strict=True)]
        face_styles = [
            np.concatenate([f, np.full(len(n), -1)]) for f, n in zip(face_styles, negatives, strict=True)
        ]
    cuts, classes, inside, cut_styles = cut_faces(images, boxes, labels, cfg.size, face_styles)
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
            drawn = [
                jittered(cuts[i], cfg.size, clf.context, rng, inside[i] if boxed else None) for i in pick
            ]
            x = torch.from_numpy(crop_batch([c for c, _ in drawn], cfg.size))
            lr = cfg.lr * (
                (step + 1) / _WARMUP if step < _WARMUP else 0.5 * (1 + math.cos(math.pi * step / total))
            )
            for g in opt.param_groups:
                g["lr"] = lr
            y = torch.from_numpy(classes[pick]).to(clf.device)
            logits, deltas = net.forward_all(x.to(clf.device))
            loss = torch.nn.functional.cross_entropy(logits, y, label_smoothing=0.1)
            if deltas is not None:
                s = torch.from_numpy(cut_styles[pick]).to(clf.device)
                has = s >= 0
                if has.any():
                    want = torch.from_numpy(np.stack([d for _, d in drawn])).to(clf.device)[has]
                    loss = loss + BOX_LOSS_WEIGHT * torch.nn.functional.smooth_l1_loss(
                        deltas[has, s[has]], want, beta=_BOX_BETA
                    )
            if not torch.isfinite(loss):
                raise MaskwatchError(f"crop classifier training diverged at step {step}; lower classifier.lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
    net.eval()
    return clf
