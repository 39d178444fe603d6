"""Box coding between anchors and boxes (RetinaFace's variances), and the decoded inference graph."""

from __future__ import annotations

import torch
from torch import nn

from maskwatch.models.retinaface.anchors import make_anchors
from maskwatch.models.retinaface.network import RetinaFaceNet

VARIANCES = (0.1, 0.2)


def decode(loc: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Offsets (..., A, 4) + anchors (A, 4) cxcywh -> boxes (..., A, 4) xyxy pixels."""
    c = anchors[..., :2] + loc[..., :2] * VARIANCES[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    return torch.cat([c - wh / 2, c + wh / 2], dim=-1)


class DecodedRetinaFace(nn.Module):
    """The network plus anchor decoding and softmax: an input batch in, boxes (N, A, 4) xyxy in network
    pixels and object-class probabilities (N, A, C) out.

    The ONNX export and the fast torch inference path both run this module, so the two backends share one
    definition of the decoding and only thresholding/NMS stays outside the graph.
    """

    def __init__(self, net: RetinaFaceNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc, logits = self.net(x)
        boxes = decode(loc, make_anchors(x.shape[2], x.shape[3]).to(loc.device))
        return boxes, logits.softmax(-1)[..., 1:]


def encode(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`decode` for matched ground-truth boxes (A, 4) xyxy."""
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    wh = (boxes[:, 2:] - boxes[:, :2]).clamp(min=1e-3)
    return torch.cat(
        [
            (c - anchors[:, :2]) / (VARIANCES[0] * anchors[:, 2:]),
            torch.log(wh / anchors[:, 2:]) / VARIANCES[1],
        ],
        dim=1,
    )
