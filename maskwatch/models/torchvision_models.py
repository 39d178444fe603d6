"""torchvision detectors behind the :class:`Detector` interface.

``faster-rcnn-x101-fpn`` is the reference design's model (Faster R-CNN, ResNeXt-101 32x8d FPN);
``retinanet-r50-fpn`` is the focal-loss alternative it names for class imbalance. Pretrained weights come
through torchvision's weights API where the network allows (``--weights imagenet`` / ``--weights coco``)
or from a local file (``--weights FILE``: a torchvision state dict of the whole detector or its backbone).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models import ResNet50_Weights, ResNeXt101_32X8D_Weights
from torchvision.models.detection import FasterRCNN, RetinaNet, retinanet_resnet50_fpn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.retinanet import RetinaNet_ResNet50_FPN_Weights

from maskwatch.boxes import batched_nms
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.models.base import Detector
from maskwatch.models.registry import register_detector


def _faster_rcnn_x101(num_classes: int, imgsz: int, backbone_weights: Any = None) -> FasterRCNN:
    backbone = resnet_fpn_backbone(
        backbone_name="resnext101_32x8d",
        weights=backbone_weights,
        trainable_layers=3 if backbone_weights else 5,
    )
    return FasterRCNN(backbone, num_classes=num_classes, min_size=imgsz, max_size=imgsz)


def _retinanet_r50(num_classes: int, imgsz: int, backbone_weights: Any = None) -> RetinaNet:
    return retinanet_resnet50_fpn(
        weights=None,
        weights_backbone=backbone_weights,
        num_classes=num_classes,
        min_size=imgsz,
        max_size=imgsz,
    )


class TorchvisionDetector(Detector):
    """A torchvision detection model; label 0 is background, object classes are 1..C."""

    builder: Callable[..., nn.Module]
    imagenet_weights: Any
    coco_weights: Any = None

    def build_model(self) -> nn.Module:
        return type(self).builder(len(self.class_names) + 1, self.imgsz)

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"input": "RGB in [0, 1], torchvision normalisation inside the model"}

    def init_weights(self, source: str | Path) -> None:
        """``imagenet``/``coco`` through torchvision's weights API, or a local state-dict file.

        Tensors whose shape does not fit (the class-specific heads) are left as initialised.
        """
        weights = source
        name = str(weights).lower()
        if name in ("imagenet", "coco"):
            enum = self.imagenet_weights if name == "imagenet" else self.coco_weights
            if enum is None:
                raise MaskwatchError(f"{self.arch}: no {name} weights in torchvision; pass --weights FILE")
            try:
                sd = enum.get_state_dict(progress=True)
            except Exception as e:  # no network, proxy errors, ...
                msg = f"cannot download {name} weights for {self.arch} ({type(e).__name__})"
                raise MaskwatchError(f"{msg}; pass --weights FILE") from None
            if name == "imagenet":
                sd = {f"backbone.body.{k}": v for k, v in sd.items()}
        else:
            try:
                sd = torch.load(weights, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                raise MaskwatchError(f"{weights}: weights file not found") from None
            except Exception as e:
                raise MaskwatchError(f"{weights}: not a readable state dict ({type(e).__name__})") from None
            sd = sd.get("model", sd.get("state_dict", sd))
            own_keys = self.model.state_dict().keys()
            if not any(k in own_keys for k in sd):  # a bare backbone (ImageNet classifier) file
                sd = {f"backbone.body.{k}": v for k, v in sd.items()}
        own = self.model.state_dict()
        fitting = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
        if not fitting:
            raise MaskwatchError(f"{weights}: no tensor fits {self.arch}")
        own.update(fitting)
        self.model.load_state_dict(own)

    def _tensors(self, images: Sequence[np.ndarray]) -> list[torch.Tensor]:
        return [torch.tensor(im, device=self.device).permute(2, 0, 1).float().div(255) for im in images]

    def loss(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        styles: Sequence[int] | None = None,  # one box style: ignored
        negatives: Sequence[bool] | None = None,  # torchvision's samplers decide: ignored
    ) -> dict[str, torch.Tensor]:
        targets = []
        for b, lab in zip(boxes, labels, strict=True):
            keep = lab >= 0  # torchvision has no ignore regions: cut faces are left out
            targets.append(
                {
                    "boxes": torch.as_tensor(b[keep], dtype=torch.float32, device=self.device).reshape(-1, 4),
                    "labels": torch.as_tensor(lab[keep] + 1, dtype=torch.int64, device=self.device),
                }
            )
        return self.model(self._tensors(images), targets)

    @abc.abstractmethod
    def _set_thresholds(self, conf: float, iou: float) -> None:
        """torchvision keeps score and NMS thresholds on the model; set them before each call."""

    @torch.inference_mode()
    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        if not images:
            return []
        self._set_thresholds(conf, iou)
        outs = self.model(self._tensors(images))
        result = []
        for o in outs:
            b, s, lab = o["boxes"].cpu().numpy(), o["scores"].cpu().numpy(), o["labels"].cpu().numpy() - 1
            if agnostic:
                keep = batched_nms(b, s, np.zeros_like(lab), iou)
                b, s, lab = b[keep], s[keep], lab[keep]
            result.append(Detections(b, s, lab, self.class_names))
        return result


@register_detector("faster-rcnn-x101-fpn")
class FasterRCNNX101(TorchvisionDetector):
    arch = "faster-rcnn-x101-fpn"
    builder = staticmethod(_faster_rcnn_x101)
    imagenet_weights = ResNeXt101_32X8D_Weights.IMAGENET1K_V2

    def _set_thresholds(self, conf: float, iou: float) -> None:
        heads: Any = self.model.roi_heads
        heads.score_thresh, heads.nms_thresh = conf, iou


@register_detector("retinanet-r50-fpn")
class RetinaNetR50(TorchvisionDetector):
    arch = "retinanet-r50-fpn"
    builder = staticmethod(_retinanet_r50)
    imagenet_weights = ResNet50_Weights.IMAGENET1K_V2
    coco_weights = RetinaNet_ResNet50_FPN_Weights.COCO_V1

    def _set_thresholds(self, conf: float, iou: float) -> None:
        model: Any = self.model
        model.score_thresh, model.nms_thresh = conf, iou
