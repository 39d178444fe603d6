"""Anchor layout of the released face detector, built with traceable shape arithmetic (ONNX)."""

from __future__ import annotations

import torch

# (stride, square anchor sizes in px) per pyramid level.
LEVELS: tuple[tuple[int, tuple[int, ...]], ...] = ((8, (10, 20)), (16, (32, 64)), (32, (128, 256)))


def make_anchors(height: int, width: int) -> torch.Tensor:
    """Anchors (A, 4) as (cx, cy, w, h) pixels, in the order the heads emit them.

    Only integer arithmetic and ``arange`` on the sizes, so an ONNX trace with dynamic height and width
    computes the anchors inside the graph instead of freezing the traced size's.
    """
    out = []
    for stride, sizes in LEVELS:
        fh, fw = -(-height // stride), -(-width // stride)  # ceil division
        ys = (torch.arange(fh, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(fw, dtype=torch.float32) + 0.5) * stride
        cy = ys.view(-1, 1, 1).expand(-1, fw, len(sizes))
        cx = xs.view(1, -1, 1).expand(fh, -1, len(sizes))
        s = torch.tensor(sizes, dtype=torch.float32).view(1, 1, -1).expand(fh, fw, -1)
        out.append(torch.stack([cx, cy, s, s], dim=-1).reshape(-1, 4))
    return torch.cat(out)


def anchors_xyxy(anchors: torch.Tensor) -> torch.Tensor:
    return torch.cat([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1)
