"""``maskface-mnet`` behind the :class:`~maskwatch.models.base.Detector` interface."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from maskwatch.detections import Detections
from maskwatch.models.base import Detector
from maskwatch.models.letterbox import BGR_MEAN, image_detections, letterbox, stack_padded
from maskwatch.models.registry import register_detector
from maskwatch.models.retinaface.anchors import LEVELS, make_anchors
from maskwatch.models.retinaface.coding import DecodedRetinaFace
from maskwatch.models.retinaface.loss import detection_loss, match
from maskwatch.models.retinaface.network import RetinaFaceNet
from maskwatch.models.retinaface.weights import load_face_weights


def batch_tensor(arrays: Sequence[np.ndarray]) -> torch.Tensor:
    """Stack (h, w, 3) float arrays into one zero-padded (N, 3, H, W) tensor, H and W multiples of 32."""
    return torch.from_numpy(stack_padded(arrays))


@functools.lru_cache(maxsize=32)
def _anchors_for(height: int, width: int) -> torch.Tensor:
    """Anchors of one input size, made once: training sees a handful of sizes, inference one."""
    return make_anchors(height, width)


@register_detector("maskface-mnet")
class MaskFaceDetector(Detector):
    """The RetinaFace-style mask detector: background / with_mask / no_mask over RetinaFace anchors."""

    arch = "maskface-mnet"
    options: ClassVar[dict[str, Any]] = {
        "focal_gamma": 0.0,  # > 0: softmax focal loss instead of hard-negative mining
        "neg_pos_ratio": 7,  # negatives per positive in hard-negative mining
        "match_iou": 0.35,  # an anchor is a positive at this IoU with a face (RetinaFace's value)
        "box_weight": 2.0,  # weight of the box loss against the class loss
    }
    focal_gamma: float
    neg_pos_ratio: int
    match_iou: float
    box_weight: float
    model: RetinaFaceNet

    def build_model(self) -> RetinaFaceNet:
        return RetinaFaceNet(len(self.class_names))

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"input": "BGR minus mean", "mean": list(BGR_MEAN), "levels": [list(lv) for lv in LEVELS]}

    def anchors(self, height: int, width: int) -> torch.Tensor:
        return _anchors_for(height, width).to(self.device)  # a no-op copy on the CPU

    def init_weights(self, source: str | Path) -> None:
        """Start from the WIDER FACE RetinaFace checkpoint (``../shared/weights/retinaface-*``)."""
        load_face_weights(self.model, source)

    def load_face_weights(self, path: str | Path) -> None:
        """Kept for existing callers: :meth:`init_weights`."""
        self.init_weights(path)

    def inference_module(self) -> nn.Module:
        return DecodedRetinaFace(self.model)

    def loss(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray]
    ) -> dict[str, torch.Tensor]:
        x = batch_tensor([letterbox(im, max(im.shape[:2]))[0] for im in images]).to(self.device)
        anchors = self.anchors(x.shape[2], x.shape[3]).cpu()
        t_cls, t_loc = zip(
            *(
                match(torch.as_tensor(b, dtype=torch.float32), torch.as_tensor(lab), anchors, self.match_iou)
                for b, lab in zip(boxes, labels, strict=True)
            ),
            strict=True,
        )
        loc, logits = self.model(x)
        return detection_loss(
            loc,
            logits,
            torch.stack(t_cls).to(self.device),
            torch.stack(t_loc).to(self.device),
            neg_pos_ratio=self.neg_pos_ratio,
            focal_gamma=self.focal_gamma,
            box_weight=self.box_weight,
        )

    @torch.inference_mode()
    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        if not images:
            return []
        prepared = [letterbox(im, self.imgsz) for im in images]
        x = batch_tensor([p[0] for p in prepared]).to(self.device)
        boxes, probs = DecodedRetinaFace(self.model)(x)
        boxes, probs = boxes.cpu().numpy(), probs.cpu().numpy()
        return [
            image_detections(boxes[i], probs[i], scale, im.shape[:2], conf, iou, agnostic, self.class_names)
            for i, (im, (_, scale)) in enumerate(zip(images, prepared, strict=True))
        ]
