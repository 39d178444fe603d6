"""Augmentations that suit faces: scale jitter, crops that do not cut faces in half, flips, colour.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a seed fixes the whole
training stream (what makes ``--resume`` reproduce an unbroken run).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from maskwatch.boxes import hflip_boxes

IGNORE = -1


@dataclass
class AugmentConfig:
    """The ``augment:`` section of a training config (every field a knob a run records)."""

    crop: int = 512  # square training crop taken from the rescaled image
    scale: tuple[float, float] = (0.7, 1.3)  # jitter of the long side around imgsz
    flip: float = 0.5
    hsv: tuple[float, float, float] = (0.015, 0.5, 0.35)  # hue, saturation, value gains
    crop_tries: int = 8
    keep_visible: float = 0.6  # a cut face keeps its label if this much of it is visible, else is ignored


def _colour(img: np.ndarray, gains: tuple[float, float, float], rng: np.random.Generator) -> np.ndarray:
    g = 1 + rng.uniform(-1, 1, 3) * np.array(gains)
    hue, sat, val = cv2.split(cv2.cvtColor(img, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * g[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * g[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * g[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _visible_fraction(boxes: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    ix = np.clip(boxes[:, [0, 2]], x0, x0 + size)
    iy = np.clip(boxes[:, [1, 3]], y0, y0 + size)
    inter = (ix[:, 1] - ix[:, 0]) * (iy[:, 1] - iy[:, 0])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area, 1e-6)


def augment(
    img: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    cfg: AugmentConfig,
    rng: np.random.Generator,
    imgsz: int = 640,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a ``cfg.crop``-square RGB image, its boxes and labels (``IGNORE`` for faces cut in half).

    ``imgsz`` is the long side the model sees at inference; the scale jitter is drawn around it.
    """
    h, w = img.shape[:2]
    s = imgsz * rng.uniform(*cfg.scale) / max(h, w)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)
    boxes = boxes * s
    size = cfg.crop
    # Among a few random windows, take the one that cuts the fewest faces (partially visible ones).
    best: tuple[int, int, int] | None = None
    for _ in range(cfg.crop_tries):
        x0 = int(rng.integers(min(0, nw - size), max(0, nw - size) + 1))
        y0 = int(rng.integers(min(0, nh - size), max(0, nh - size) + 1))
        vis = _visible_fraction(boxes, x0, y0, size) if len(boxes) else np.zeros(0)
        cut = int(((vis > 0.02) & (vis < 0.98)).sum())
        if best is None or cut < best[0]:
            best = (cut, x0, y0)
        if cut == 0:
            break
    assert best is not None
    _, x0, y0 = best
    canvas = np.full((size, size, 3), 114, dtype=np.uint8)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, nw), min(y0 + size, nh)
    canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = img[sy0:sy1, sx0:sx1]
    if len(boxes):
        vis = _visible_fraction(boxes, x0, y0, size)
        keep = vis > 0.02
        boxes, labels, vis = boxes[keep] - [x0, y0, x0, y0], labels[keep].copy(), vis[keep]
        boxes = boxes.clip(0, size)
        labels[vis < cfg.keep_visible] = IGNORE
    if rng.random() < cfg.flip:
        canvas = canvas[:, ::-1]
        boxes = hflip_boxes(boxes, size)
    canvas = _colour(np.ascontiguousarray(canvas), cfg.hsv, rng)
    return canvas, boxes.astype(np.float32).reshape(-1, 4), labels.astype(np.int64)
