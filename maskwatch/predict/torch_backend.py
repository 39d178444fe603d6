"""Torch predictors: the fused fast path for architectures with an inference module, and a fallback
that runs any other :class:`~maskwatch.models.base.Detector` through its own ``predict``."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from maskwatch.detections import Detections
from maskwatch.models.base import Detector
from maskwatch.predict.base import GraphPredictor, ImagePredictor, Wrapper
from maskwatch.predict.classify import crop_classifier_of


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


class TorchPredictor(GraphPredictor):
    """A detector's inference module in PyTorch, made cheaper: Conv+BN fused, ``inference_mode``."""

    backend = "torch"

    def __init__(self, detector: Detector, imgsz: int | None = None, name: str = "") -> None:
        module = detector.inference_module()
        if module is None:
            raise ValueError(f"{detector.arch} has no inference module; use DetectorPredictor")
        self.name = name or detector.arch
        self.class_names = detector.class_names
        self.imgsz = imgsz or detector.imgsz
        self.box_style, self.box_styles = detector.box_style, tuple(detector.box_style_names())
        self.device = detector.device
        self.module = fuse_conv_bn(copy.deepcopy(module).eval()).to(self.device)
        self.crop_classifier = crop_classifier_of(detector)

    @torch.inference_mode()
    def run_network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, probs = self.module(torch.from_numpy(x).to(self.device))
        return boxes.cpu().numpy(), probs.cpu().numpy()


class DetectorPredictor(Wrapper, ImagePredictor):
    """Any other :class:`Detector` (e.g. the torchvision models): its own ``predict`` does everything."""

    backend = "torch"

    def __init__(self, detector: Detector, imgsz: int | None = None, name: str = "") -> None:
        self.detector = self.wrapped = detector
        self.name = name or detector.arch
        self.class_names = detector.class_names
        if imgsz:
            detector.imgsz = imgsz
        self.box_style, self.box_styles = detector.box_style, tuple(detector.box_style_names())
        self.crop_classifier = crop_classifier_of(detector)

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        return self.detector.predict(images, conf=conf, iou=iou, agnostic=agnostic)
