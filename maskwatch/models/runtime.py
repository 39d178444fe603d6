"""Inference for video: one small ``Predictor`` interface over the torch and ONNX Runtime backends.

A video pipeline wants preprocessing (letterbox, mean subtraction, padding) to run in the decoding thread
so the model thread does nothing but run the network; ``Detector.predict`` does everything in one call.
A ``Predictor`` splits the two: ``prepare`` (any thread) and ``infer`` (the model thread). Both backends
of ``maskface-mnet`` share ``prepare`` and the thresholding/NMS after the network, and run the same
decode + softmax module (:class:`~maskwatch.models.retinaface.DecodedRetinaFace`), so their outputs agree.
"""

from __future__ import annotations

import abc
import copy
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.models.base import Detector, resolve_device
from maskwatch.models.registry import load_detector
from maskwatch.models.retinaface import (
    BGR_MEAN,
    PAD_MULTIPLE,
    DecodedRetinaFace,
    MaskFaceDetector,
    image_detections,
    resize_long_side,
)

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")


@dataclass
class Prepared:
    """One image made ready for the network, remembering how to map boxes back to its pixels.

    ``tensor`` is the (3, H, W) float32 network input; ``image`` is kept instead by predictors whose
    detector prepares its own input (architectures without a split fast path).
    """

    tensor: np.ndarray | None
    scale: float
    shape: tuple[int, int]
    image: np.ndarray | None = None


class Predictor(abc.ABC):
    """Images in, :class:`Detections` out, with preprocessing separable from the network run."""

    backend: str
    name: str
    class_names: tuple[str, ...]
    imgsz: int

    @abc.abstractmethod
    def prepare(self, image: np.ndarray) -> Prepared:
        """Preprocess one RGB ``uint8`` image; safe to call from another thread than :meth:`infer`."""

    @abc.abstractmethod
    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        """Run the network and the post-processing on prepared images."""

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        """``Detector.predict``'s contract: prepare and infer in one call."""
        return self.infer([self.prepare(im) for im in images], conf, iou, agnostic)


class RetinaPredictor(Predictor):
    """What both ``maskface-mnet`` backends share: the input layout and everything after the network."""

    #: Fixed (height, width) network input of a static ONNX export; None pads to a multiple of 32.
    static_size: tuple[int, int] | None = None

    def prepare(self, image: np.ndarray) -> Prepared:
        """``letterbox`` + ``batch_tensor``'s result (equal to the last bit), in ~40 % of their time.

        The padding is done on the uint8 image with the mean colour, so that OpenCV's ``blobFromImage``
        does the channel swap, the mean subtraction and the HWC -> CHW transpose in one pass, and the
        padding comes out as exact zeros.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
        resized, scale = resize_long_side(image, self.imgsz)
        h, w = resized.shape[:2]
        m = PAD_MULTIPLE
        ph, pw = self.static_size or (-(-h // m) * m, -(-w // m) * m)
        if (ph, pw) != (h, w):
            pad_rgb = BGR_MEAN[::-1]
            resized = cv2.copyMakeBorder(resized, 0, ph - h, 0, pw - w, cv2.BORDER_CONSTANT, value=pad_rgb)
        # swapRB turns RGB into BGR first; the mean is then subtracted in BGR order
        tensor = cv2.dnn.blobFromImage(resized, 1.0, None, BGR_MEAN, swapRB=True, crop=False)[0]
        return Prepared(tensor, scale, (image.shape[0], image.shape[1]))

    @abc.abstractmethod
    def run_network(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch (N, 3, H, W) float32 -> boxes (N, A, 4) xyxy network pixels, probs (N, A, C) on the CPU."""

    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        out: list[Detections] = []
        # Frames of one video share a shape and run as one batch; mixed image sizes run one by one.
        groups = [list(batch)] if len({p.tensor.shape for p in batch}) <= 1 else [[p] for p in batch]
        for group in groups:
            if not group:
                continue
            boxes, probs = self.run_network(np.stack([p.tensor for p in group]))
            out.extend(
                image_detections(boxes[i], probs[i], p.scale, p.shape, conf, iou, agnostic, self.class_names)
                for i, p in enumerate(group)
            )
        return out


def fuse_conv_bn(module: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a Conv2d in an ``nn.Sequential`` into the conv, in place.

    Inference then runs one op instead of two per layer (``maskface-mnet`` has ~60 such pairs); the
    results are the same up to float rounding. Only for an eval-mode copy, never for a model in training.
    """
    for child in module.children():
        if isinstance(child, nn.Sequential):
            for i in range(len(child) - 1):
                conv, bn = child[i], child[i + 1]
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    child[i] = fuse_conv_bn_eval(conv, bn)
                    child[i + 1] = nn.Identity()
        fuse_conv_bn(child)
    return module


class TorchPredictor(RetinaPredictor):
    """``maskface-mnet`` in PyTorch, made cheaper for inference: Conv+BN fused, ``inference_mode``."""

    backend = "torch"

    def __init__(self, detector: MaskFaceDetector, imgsz: int | None = None, name: str = "") -> None:
        self.name = name or detector.arch
        self.class_names = detector.class_names
        self.imgsz = imgsz or detector.imgsz
        self.device = detector.device
        net = fuse_conv_bn(copy.deepcopy(detector.model).eval())
        self.module = DecodedRetinaFace(net).to(self.device).eval()

    @torch.inference_mode()
    def run_network(self, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, probs = self.module(torch.from_numpy(x).to(self.device))
        return boxes.cpu(), probs.cpu()


class DetectorPredictor(Predictor):
    """Any other :class:`Detector` (e.g. the torchvision models): its own ``predict`` does everything."""

    backend = "torch"

    def __init__(self, detector: Detector, imgsz: int | None = None, name: str = "") -> None:
        self.detector = detector
        self.name = name or detector.arch
        self.class_names = detector.class_names
        if imgsz:
            detector.imgsz = imgsz
        self.imgsz = detector.imgsz

    def prepare(self, image: np.ndarray) -> Prepared:
        return Prepared(None, 1.0, (image.shape[0], image.shape[1]), image)

    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        return self.detector.predict([p.image for p in batch], conf=conf, iou=iou, agnostic=agnostic)


def load_predictor(
    model: str | Path | None = None,
    backend: str | None = None,
    device: str = "cpu",
    imgsz: int | None = None,
    threads: int | None = None,
) -> Predictor:
    """A predictor for a built-in model name, a ``.pt`` checkpoint or an exported ``.onnx`` file.

    ``backend`` ``None``/``"auto"`` takes the fastest path that fits: ONNX Runtime for an ``.onnx`` file
    and for ``maskface-mnet`` on the CPU (exported in memory first, ~3 s; then ~2.5x less CPU per frame
    than torch), torch otherwise.

    ``threads`` sets the network's CPU threads. The default, every core but one, leaves a core to the
    pipeline's decoding and encoding threads so the network never competes with them: torch's OpenMP
    threads busy-wait and stall when a core is taken (on 2 shared cores, 2 threads ran ~5x slower than
    1), and a single ONNX Runtime thread does more per CPU-second than two.
    """
    name = str(model) if model else "maskface-mnet"
    is_onnx = name.lower().endswith(".onnx")
    backend = backend or "auto"
    if backend not in ("auto", *BACKENDS):
        raise MaskwatchError(f"unknown backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")
    threads = threads or max(1, (os.cpu_count() or 1) - 1)
    if is_onnx:
        if backend == "torch":
            raise MaskwatchError(f"{name}: an ONNX model runs with --backend onnx, not torch")
        resolve_device(device)  # a one-line error for --device cuda without CUDA, whichever backend
        return _onnx_predictor(name, device, imgsz, threads, name)
    detector = load_detector(model, device)
    if backend == "auto":
        exportable = isinstance(detector, MaskFaceDetector) and detector.device.type == "cpu"
        backend = "onnx" if exportable else "torch"
    if backend == "onnx":
        from maskwatch.models.onnx_backend import export_onnx_bytes

        log.info("exporting %s to ONNX in memory (save it once with `maskwatch export` to skip this)", name)
        data = export_onnx_bytes(detector, imgsz or detector.imgsz)
        return _onnx_predictor(data, device, imgsz, threads, name)
    torch.set_num_threads(threads)
    if isinstance(detector, MaskFaceDetector):
        return TorchPredictor(detector, imgsz, name)
    return DetectorPredictor(detector, imgsz, name)


def _onnx_predictor(model: str | bytes, device: str, imgsz: int | None, threads: int, name: str) -> Predictor:
    from maskwatch.models.onnx_backend import OnnxPredictor

    return OnnxPredictor(model, device=device, imgsz=imgsz, threads=threads, name=name)
