"""Honestly synthetic images and a tiny VOC learning base for the model and training tests: plain
backgrounds with skin-coloured "faces", masked ones covered by a light-blue lower half, so a detector can
learn both classes in a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from maskwatch.data.record import Annotation
from maskwatch.data.voc import write_voc_file

CLASSES = ("with_mask", "no_mask")


def make_image(
    rng: np.random.Generator, size: tuple[int, int] = (128, 96)
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One RGB image of ``size`` (width, height) with 1-3 faces; returns (pixels, xyxy boxes, labels)."""
    w, h = size
    background = tuple(int(v) for v in rng.integers(40, 200, 3))
    im = Image.new("RGB", (w, h), background)
    draw = ImageDraw.Draw(im)
    n = int(rng.integers(1, 4))
    slot = w / n
    boxes, labels = [], []
    for j in range(n):
        side = float(rng.uniform(0.55, 0.85) * min(slot, h))
        x1 = j * slot + float(rng.uniform(0, slot - side))
        y1 = float(rng.uniform(0, h - side * 1.2))
        box = [x1, y1, x1 + side, y1 + side * 1.2]
        draw.ellipse(box, fill=(224, 172, 138))
        cx = (box[0] + box[2]) / 2
        for dx in (-side / 5, side / 5):  # eyes
            draw.ellipse(
                [cx + dx - 2, box[1] + side * 0.4 - 2, cx + dx + 2, box[1] + side * 0.4 + 2],
                fill=(30, 30, 30),
            )
        label = CLASSES[int(rng.integers(0, 2))]
        if label == "with_mask":
            draw.rectangle(
                [box[0] + side * 0.1, box[1] + side * 0.65, box[2] - side * 0.1, box[3] - side * 0.1],
                fill=(150, 200, 235),
            )
        else:
            draw.line(
                [cx - side / 6, box[1] + side * 0.85, cx + side / 6, box[1] + side * 0.85],
                fill=(150, 40, 40),
                width=2,
            )
        boxes.append(box)
        labels.append(label)
    return np.asarray(im), np.array(boxes, dtype=np.float64), labels


def make_voc_dataset(root: Path, n: int = 6, size: tuple[int, int] = (128, 96), seed: int = 0) -> Path:
    """``root/images/synthNNN.jpg`` + ``root/annotations/synthNNN.xml`` (LabelImg layout); both classes
    appear (the first two images are redrawn until each holds a face of one class)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels, boxes, labels = make_image(rng, size)
        while i < len(CLASSES) and CLASSES[i] not in labels:
            pixels, boxes, labels = make_image(rng, size)
        name = f"synth{i:03d}.jpg"
        Image.fromarray(pixels).save(root / "images" / name, quality=95)
        rec = Annotation(root / "images" / name, size[0], size[1], boxes, labels)
        write_voc_file(rec, root / "annotations" / f"synth{i:03d}.xml", name)
    return root
