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
from maskwatch.errors import MaskwatchError
from maskwatch.models.base import Detector
from maskwatch.models.letterbox import BGR_MEAN, image_detections, letterbox, stack_padded
from maskwatch.models.registry import register_detector
from maskwatch.models.retinaface.anchors import LEVELS, make_anchors
from maskwatch.models.retinaface.coding import DecodedRetinaFace
from maskwatch.models.retinaface.loss import detection_loss, match
from maskwatch.models.retinaface.network import RetinaFaceNet
from maskwatch.models.retinaface.weights import load_face_weights, with_style_heads


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
        # One box regressor per label set's box style; the first is the main learning base's (and the
        # default at inference), each extra source names its own (``extra[i].box_style``).
        "box_styles": ["default"],
    }
    focal_gamma: float
    neg_pos_ratio: int
    match_iou: float
    box_weight: float
    box_styles: list[str]
    model: RetinaFaceNet

    def build_model(self) -> RetinaFaceNet:
        styles = self.box_styles
        if not styles or not all(isinstance(s, str) and s for s in styles) or len(set(styles)) < len(styles):
            raise MaskwatchError(f"{self.arch}: box_styles must be distinct non-empty names, got {styles!r}")
        return RetinaFaceNet(len(self.class_names), num_styles=len(styles))

    def checkpoint_meta(self) -> dict[str, Any]:
        return {
            "input": "BGR minus mean",
            "mean": list(BGR_MEAN),
            "levels": [list(lv) for lv in LEVELS],
            "box_styles": list(self.box_styles),
        }

    def box_style_names(self) -> list[str]:
        return list(self.box_styles)

    @property
    def box_style(self) -> str:
        return self.box_styles[self.model.style]

    def use_box_style(self, name: str) -> None:
        super().use_box_style(name)
        self.model.style = self.box_styles.index(name)

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Also starts a model with more box styles from one with fewer (each new style's head copies the
        first's) and drops the heads of styles this model does not have."""
        own = self.model.state_dict()
        sd = {
            k: v
            for k, v in with_style_heads(state_dict, own).items()
            if not k.startswith("StyleBbox") or k in own
        }
        self.model.load_state_dict(sd)

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
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        styles: Sequence[int] | None = None,
        negatives: Sequence[bool] | None = None,
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
        targets = torch.stack(t_cls)
        if negatives is not None:  # such an image's background anchors become ignored, not negatives
            no_bg = torch.as_tensor([not n for n in negatives])[:, None] & (targets == 0)
            targets = targets.masked_fill(no_bg, -1)
        style_ids = torch.as_tensor(list(styles) if styles is not None else [0] * len(images))
        loc, logits = self.model.forward_styles(x, style_ids.to(self.device))
        return detection_loss(
            loc,
            logits,
            targets.to(self.device),
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
