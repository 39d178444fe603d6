"""Drawing on frames: boxes coloured by class, label/score/track, face blurring, and an FPS/count overlay.

Everything draws on RGB ``uint8`` arrays with OpenCV (which releases the GIL), and sizes scale with the
frame so a 360p and a 4K video look alike.
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


def blur_regions(image: np.ndarray, boxes: np.ndarray, margin: float = 0.1) -> None:
    """Blur each box (grown by ``margin``) in place, beyond recognition.

    Downscaling to ~8 pixels across and back blurs a face whatever its size at a cost independent of it,
    where a Gaussian kernel would have to grow with the face.
    """
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in boxes:
        mx, my = (x2 - x1) * margin, (y2 - y1) * margin
        x1, y1 = max(0, int(x1 - mx)), max(0, int(y1 - my))
        x2, y2 = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            continue
        roi = image[y1:y2, x1:x2]
        small = cv2.resize(
            roi, (max(1, (x2 - x1) // 12), max(1, (y2 - y1) // 12)), interpolation=cv2.INTER_AREA
        )
        roi[:] = cv2.GaussianBlur(
            cv2.resize(small, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR), (5, 5), 0
        )


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
        for i in range(len(dets)):
            color = self.colors[dets.class_id[i]]
            x1, y1, x2, y2 = (round(float(v)) for v in dets.xyxy[i])
            cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
            text = f"{self.class_names[dets.class_id[i]]} {dets.confidence[i]:.2f}"
            if dets.tracker_id is not None and dets.tracker_id[i] >= 0:
                text += f" #{dets.tracker_id[i]}"
            _label(out, text, (x1, y1), color, scale, thick)
        if self.overlay:
            counts = dets.counts()
            parts = ([f"{fps:.1f} FPS"] if fps else []) + [f"{k} {v}" for k, v in counts.items()]
            _panel(out, "  ".join(parts), scale, thick)
        return out


def _label(
    image: np.ndarray, text: str, anchor: tuple[int, int], color: RGB, scale: float, thick: int
) -> None:
    """A filled tag above the box (inside it when the box touches the top edge)."""
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = anchor
    top = y - th - base - 2 * thick if y - th - base - 2 * thick >= 0 else y
    cv2.rectangle(image, (x, top), (x + tw + 2 * thick, top + th + base + 2 * thick), color, -1)
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
