"""Training targets (anchor matching) and the detection loss of ``maskface-mnet``.

Matching stays in torch with torchvision's ``box_iou``: it runs inside the training step only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from maskwatch.models.retinaface.anchors import anchors_xyxy
from maskwatch.models.retinaface.coding import encode


def match(
    gt_boxes: torch.Tensor, gt_labels: torch.Tensor, anchors: torch.Tensor, threshold: float = 0.35
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign each anchor a class (0 = background) and a regression target, as RetinaFace does:
    IoU >= threshold is positive, and every face keeps at least its best anchor."""
    num = anchors.shape[0]
    if gt_boxes.numel() == 0:
        return torch.zeros(num, dtype=torch.long), torch.zeros(num, 4)
    iou = box_iou(gt_boxes, anchors_xyxy(anchors))  # (G, A)
    best_gt_iou, best_gt = iou.max(0)
    best_anchor = iou.argmax(1)
    best_gt_iou[best_anchor] = 2.0
    best_gt[best_anchor] = torch.arange(len(gt_boxes))
    matched = gt_labels[best_gt]
    # An ignore region (label -1) is matched like a face of unknown class: its anchors become -1, neither
    # object nor background (``matched + 1`` alone would make them background, teaching a face as none).
    cls = torch.where(matched < 0, matched, matched + 1)
    cls[best_gt_iou < threshold] = 0
    return cls, encode(gt_boxes[best_gt], anchors)


def detection_loss(
    loc: torch.Tensor,
    logits: torch.Tensor,
    targets_cls: torch.Tensor,
    targets_loc: torch.Tensor,
    neg_pos_ratio: int = 7,
    focal_gamma: float = 0.0,
    class_weights: torch.Tensor | None = None,
    box_weight: float = 2.0,
) -> dict[str, torch.Tensor]:
    """Smooth-L1 box loss on positives plus a class loss.

    The class loss is cross-entropy with hard-negative mining (``neg_pos_ratio`` negatives per positive,
    RetinaFace's choice), or, with ``focal_gamma > 0``, a softmax focal loss over every anchor, which
    down-weights easy examples instead of sampling them (the imbalance remedy the reference design names).
    """
    pos = targets_cls > 0
    valid = targets_cls >= 0
    num_pos = pos.sum().clamp(min=1).float()
    loss_box = F.smooth_l1_loss(loc[pos], targets_loc[pos], reduction="sum") / num_pos
    safe_t = targets_cls.clamp(min=0)
    if focal_gamma > 0:
        logp = F.log_softmax(logits, -1).gather(-1, safe_t[..., None]).squeeze(-1)
        w = 1.0 if class_weights is None else class_weights[safe_t]
        loss_cls = (-w * (1 - logp.exp()) ** focal_gamma * logp)[valid].sum() / num_pos
    else:
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), safe_t.reshape(-1), weight=class_weights, reduction="none"
        ).view_as(targets_cls)
        with torch.no_grad():
            mining = ce.clone()
            mining[~valid | pos] = 0
            rank = mining.argsort(1, descending=True).argsort(1)
            num_neg = (neg_pos_ratio * pos.sum(1, keepdim=True)).clamp(max=pos.shape[1] - 1)
            neg = (rank < num_neg) & valid & ~pos
        loss_cls = ce[pos | neg].sum() / num_pos
    return {"box": loss_box * box_weight, "cls": loss_cls}
