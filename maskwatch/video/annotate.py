"""Drawing on frames: boxes coloured by class, label/score/track, face blurring, and an FPS/count overlay.

Everything draws on RGB ``uint8`` arrays with OpenCV (which releases the GIL), and sizes scale with the
frame so a 360p and a 4K video look alike. Labels are placed so that they never cover each other in a
crowd (:func:`place_labels`); the FPS figure appears only on video frames (the caller passes none for a
still image).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from maskwatch.detections import Detections

RGB = tuple[int, int, int]
GREEN, RED, ORANGE = (40, 200, 60), (230, 40, 40), (255, 150, 0)
PALETTE: tuple[RGB, ...] = ((60, 120, 255), (200, 60, 200), (0, 190, 190), (150, 150, 60), (120, 80, 40))


def class_colors(class_names: Sequence[str]) -> list[RGB]:
    """Green for a mask, red for none, orange for a mask worn wrong, by name: the colours a viewer reads
    without a legend, whatever order a model's classes are in."""
    colors = []
    for i, name in enumerate(class_names):
        n = name.lower()
        if "incorrect" in n or "wrong" in n:
            colors.append(ORANGE)
        elif n.startswith(("no_", "no-", "no ", "nomask", "without")):
            colors.append(RED)
        elif "mask" in n:
            colors.append(GREEN)
        else:
            colors.append(PALETTE[i % len(PALETTE)])
    return colors


#: blocks across a blurred face's shorter side: eyes, nose and mouth each fall within about one block
BLUR_BLOCKS = 5


def blur_regions(image: np.ndarray, boxes: np.ndarray, margin: float = 0.1) -> None:
    """Blur each box (grown by ``margin``) in place, beyond recognition.

    The blur is relative to the face, not to the frame: each face is averaged down to
    :data:`BLUR_BLOCKS` blocks across its shorter side and smoothly enlarged again, so at any resolution
    no feature smaller than a fifth of the face (an eye, the mouth) survives. A fixed pixel size left a
    large face at 1280x720 readable. The cost does not grow with the face, as a Gaussian kernel's would.
    """
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        x1, y1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
        x2, y2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = image[y1:y2, x1:x2]
        block = max(1.0, min(x2 - x1, y2 - y1) / BLUR_BLOCKS)
        small = cv2.resize(
            roi,
            (max(1, round((x2 - x1) / block)), max(1, round((y2 - y1) / block))),
            interpolation=cv2.INTER_AREA,
        )
        big = cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
        k = int(block) | 1  # smooth the creases of the enlargement: a kernel of about one block
        roi[:] = cv2.GaussianBlur(big, (k, k), 0)


class Annotator:
    """Draw one frame's detections; ``blur`` hides the faces first (labels are still drawn on top)."""

    def __init__(self, class_names: Sequence[str], blur: bool = False, overlay: bool = True) -> None:
        self.class_names = tuple(class_names)
        self.colors = class_colors(self.class_names)
        self.blur = blur
        self.overlay = overlay

    def __call__(self, image: np.ndarray, dets: Detections, fps: float | None = None) -> np.ndarray:
        out = image.copy()
        if self.blur and len(dets):
            blur_regions(out, dets.xyxy)
        side = min(out.shape[:2])
        thick = max(1, round(side / 300))
        scale = max(0.4, side / 900)
        boxes = [tuple(round(float(v)) for v in b) for b in dets.xyxy]
        texts = []
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            cv2.rectangle(out, (x1, y1), (x2, y2), self.colors[dets.class_id[i]], thick, cv2.LINE_AA)
            text = f"{self.class_names[dets.class_id[i]]} {dets.confidence[i]:.2f}"
            if dets.tracker_id is not None and dets.tracker_id[i] >= 0:
                text += f" #{dets.tracker_id[i]}"
            texts.append(text)
        sizes = [label_size(t, scale, thick) for t in texts]
        rects = place_labels(boxes, sizes, out.shape[1], out.shape[0])  # type: ignore[arg-type]
        for i, (text, rect) in enumerate(zip(texts, rects, strict=True)):
            color = self.colors[dets.class_id[i]]
            x1, y1, _x2, y2 = boxes[i]
            if rect[3] != y1 and rect[1] not in (y1, y2):  # moved away to make room: a leader to its box
                ly = rect[3] if rect[3] < y1 else rect[1]
                cv2.line(
                    out, (rect[0], ly), (x1, y1 if ly < y1 else y2), color, max(1, thick // 2), cv2.LINE_AA
                )
            _label(out, text, rect, color, scale, thick)
        if self.overlay:
            counts = dets.counts()
            parts = ([f"{fps:.1f} FPS"] if fps else []) + [f"{k} {v}" for k, v in counts.items()]
            _panel(out, "  ".join(parts), scale, thick)
        return out


Rect = tuple[int, int, int, int]


def label_size(text: str, scale: float, thick: int) -> tuple[int, int]:
    """Width and height of a label's filled tag."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    return tw + 2 * thick, th + base + 2 * thick


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_labels(
    boxes: Sequence[Rect], sizes: Sequence[tuple[int, int]], width: int, height: int
) -> list[Rect]:
    """Where each box's label tag goes (x1, y1, x2, y2), so that no two tags cover each other.

    Each tag is tried above its box, then inside its top edge, then below it, then stacked further up
    and down a tag's height at a time; the first spot inside the frame that no earlier tag occupies wins.
    Only when a frame is too crowded for any free spot does a tag fall back to its first choice.
    """
    placed: list[Rect] = []
    for (x1, y1, _x2, y2), (w, h) in zip(boxes, sizes, strict=True):
        x = min(max(0, x1), max(0, width - w))
        tops = [y1 - h, y1, y2]
        for k in range(1, max(1, height // max(h, 1)) + 1):
            tops += [y1 - h - k * h, y2 + k * h]
        spots = [(x, t, x + w, t + h) for t in tops if t >= 0 and t + h <= height]
        free = [r for r in spots if not any(_overlaps(r, p) for p in placed)]
        first = (
            spots[0] if spots else (x, max(0, min(y1, height - h)), x + w, max(0, min(y1, height - h)) + h)
        )
        placed.append(free[0] if free else first)
    return placed


def _label(image: np.ndarray, text: str, rect: Rect, color: RGB, scale: float, thick: int) -> None:
    """A filled tag with the text, in the box's colour."""
    (_, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, top, x2, y2 = rect
    cv2.rectangle(image, (x, top), (x2, y2), color, -1)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(
        image, text, (x + thick, top + th + thick), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, thick, cv2.LINE_AA
    )


def _panel(image: np.ndarray, text: str, scale: float, thick: int) -> None:
    """Text on a half-transparent dark band in the top-left corner, readable on any background."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = 4 * thick
    x2, y2 = min(image.shape[1], tw + 2 * pad), min(image.shape[0], th + base + 2 * pad)
    roi = image[:y2, :x2]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)
    cv2.putText(
        image, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA
    )
