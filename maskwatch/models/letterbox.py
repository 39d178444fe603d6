"""Input and output conventions shared by every backend and architecture, in NumPy/OpenCV (no torch).

The ONNX Runtime path, the torch predictors and ``Detector.predict`` all letterbox with these functions
and map raw network boxes back with :func:`image_detections`, so the backends cannot drift apart and the
ONNX path runs without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from maskwatch.boxes import batched_nms, clip_boxes
from maskwatch.detections import Detections

BGR_MEAN = (104.0, 117.0, 123.0)
PAD_MULTIPLE = 32
MAX_DET = 300
PRE_NMS = 3000


def resize_long_side(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, float]:
    """Resize an image so its long side is ``imgsz``; returns it and the scale from original pixels."""
    h, w = image.shape[:2]
    scale = imgsz / max(h, w)
    if scale != 1.0:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=interp)
    return image, scale


def letterbox(image: np.ndarray, imgsz: int) -> tuple[np.ndarray, float]:
    """Resize an RGB image so its long side is ``imgsz`` and turn it into mean-subtracted BGR float32.

    Returns the (h, w, 3) array and the scale from original to network pixels. Training batches these
    (``batch_tensor``); inference uses the one-pass :func:`network_input`, equal to the last bit.
    """
    image, scale = resize_long_side(image, imgsz)
    bgr = image[..., ::-1].astype(np.float32) - np.array(BGR_MEAN, dtype=np.float32)
    return bgr, scale


def padded_size(h: int, w: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int]:
    return -(-h // multiple) * multiple, -(-w // multiple) * multiple


def network_input(
    image: np.ndarray, imgsz: int, static_size: tuple[int, int] | None = None
) -> tuple[np.ndarray, float]:
    """One RGB ``uint8`` image -> the (3, H, W) float32 network input and the scale, in ~40 % of the time
    of ``letterbox`` + padding.

    The padding is done on the uint8 image with the mean colour, so that OpenCV's ``blobFromImage``
    does the channel swap, the mean subtraction and the HWC -> CHW transpose in one pass, and the
    padding comes out as exact zeros. ``static_size`` pads to a fixed (H, W) instead of a multiple of 32.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    resized, scale = resize_long_side(image, imgsz)
    h, w = resized.shape[:2]
    ph, pw = static_size or padded_size(h, w)
    if (ph, pw) != (h, w):
        pad_rgb = BGR_MEAN[::-1]
        resized = cv2.copyMakeBorder(resized, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=pad_rgb)
    # swapRB turns RGB into BGR first; the mean is then subtracted in BGR order
    tensor = cv2.dnn.blobFromImage(resized, 1.0, (pw, ph), BGR_MEAN, swapRB=True, crop=False)[0]
    return tensor, scale


def stack_padded(arrays: Sequence[np.ndarray], multiple: int = PAD_MULTIPLE) -> np.ndarray:
    """Stack (h, w, 3) float arrays into one zero-padded (N, 3, H, W) array, H and W multiples of 32."""
    hh, ww = padded_size(max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays), multiple)
    out = np.zeros((len(arrays), hh, ww, 3), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def postprocess(
    boxes: np.ndarray,
    probs: np.ndarray,
    conf: float,
    iou: float,
    agnostic: bool,
    max_det: int = MAX_DET,
    pre_nms: int = PRE_NMS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Threshold and NMS for one image: boxes (A, 4), probs (A, C) over object classes only.

    ``agnostic`` keeps one label per face (what a camera wants); otherwise each class is kept separately,
    which lets an evaluation credit a second guess on an ambiguous face, as Detectron2 does.
    """
    if agnostic:
        labels = probs.argmax(1)
        scores = probs[np.arange(len(probs)), labels]
        idx = np.flatnonzero(scores >= conf)
        scores, labels = scores[idx], labels[idx]
    else:
        idx, labels = np.nonzero(probs >= conf)
        scores = probs[idx, labels]
    b = boxes[idx]
    if len(scores) > pre_nms:
        top = np.argsort(-scores, kind="stable")[:pre_nms]
        b, scores, labels = b[top], scores[top], labels[top]
    keep = batched_nms(b, scores, np.zeros_like(labels) if agnostic else labels, iou)[:max_det]
    return b[keep], scores[keep], labels[keep].astype(np.int64)


def image_detections(
    boxes: np.ndarray,
    probs: np.ndarray,
    scale: float,
    shape: tuple[int, int],
    conf: float,
    iou: float,
    agnostic: bool,
    class_names: tuple[str, ...],
) -> Detections:
    """Threshold + NMS one image's decoded boxes (network pixels), mapped back to its (h, w) pixels.

    Shared by ``Detector.predict`` and every predictor, so all backends agree exactly.
    """
    b, s, lab = postprocess(boxes, probs, conf, iou, agnostic)
    h, w = shape
    return Detections(clip_boxes(b / scale, w, h), s, lab, class_names)
