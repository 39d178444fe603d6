"""``maskface-mnet``: a RetinaFace-style single-stage detector (MobileNet-0.25, FPN, SSH context modules,
anchor heads) whose class head says background / with_mask / no_mask.

The layer names match biubug6's RetinaFace so the WIDER FACE face detector in
``../shared/weights/retinaface-mobilenet0.25`` loads into it: its backbone, FPN and box head already find
faces, and only the mask decision has to be learned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.models.base import Detector

# Anchor layout of the released face detector: (stride, square anchor sizes in px).
LEVELS: tuple[tuple[int, tuple[int, ...]], ...] = ((8, (10, 20)), (16, (32, 64)), (32, (128, 256)))
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)
PAD_MULTIPLE = 32


def _conv_bn(inp: int, out: int, stride: int = 1, k: int = 3, relu: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(inp, out, k, stride, k // 2, bias=False), nn.BatchNorm2d(out)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(inp: int, out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.ReLU(inplace=True),
        nn.Conv2d(inp, out, 1, 1, 0, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU(inplace=True),
    )


class MobileNetV1x025(nn.Module):
    """MobileNet-0.25 returning the stride 8, 16 and 32 feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            _conv_bn(3, 8, 2),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        c5 = self.stage3(c4)
        return [c3, c4, c5]


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], out: int) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out, k=1)
        self.output2 = _conv_bn(in_channels[1], out, k=1)
        self.output3 = _conv_bn(in_channels[2], out, k=1)
        self.merge1 = _conv_bn(out, out)
        self.merge2 = _conv_bn(out, out)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        o1, o2, o3 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return [o1, o2, o3]


class SSH(nn.Module):
    """Context module: 3x3, 5x5 and 7x7 receptive-field branches, concatenated, then one ReLU."""

    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.conv3X3 = _conv_bn(inp, out // 2, relu=False)
        self.conv5X5_1 = _conv_bn(inp, out // 4)
        self.conv5X5_2 = _conv_bn(out // 4, out // 4, relu=False)
        self.conv7X7_2 = _conv_bn(out // 4, out // 4)
        self.conv7x7_3 = _conv_bn(out // 4, out // 4, relu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c3 = self.conv3X3(x)
        c5_1 = self.conv5X5_1(x)
        c5 = self.conv5X5_2(c5_1)
        c7 = self.conv7x7_3(self.conv7X7_2(c5_1))
        return F.relu(torch.cat([c3, c5, c7], dim=1))


class _Head(nn.Module):
    def __init__(self, inp: int, out: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(inp, out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x)


class RetinaFaceNet(nn.Module):
    """Returns box offsets (N, A, 4) and class logits (N, A, 1 + num_classes) for all anchors."""

    def __init__(self, num_classes: int, channels: int = 64) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.anchors_per_loc = len(LEVELS[0][1])
        self.body = MobileNetV1x025()
        self.fpn = FPN((64, 128, 256), channels)
        self.ssh1, self.ssh2, self.ssh3 = (
            SSH(channels, channels),
            SSH(channels, channels),
            SSH(channels, channels),
        )
        a = self.anchors_per_loc
        self.ClassHead = nn.ModuleList([_Head(channels, a * (1 + num_classes)) for _ in LEVELS])
        self.BboxHead = nn.ModuleList([_Head(channels, a * 4) for _ in LEVELS])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.fpn(self.body(x))
        feats = [self.ssh1(feats[0]), self.ssh2(feats[1]), self.ssh3(feats[2])]
        n = x.shape[0]
        loc = torch.cat(
            [h(f).permute(0, 2, 3, 1).reshape(n, -1, 4) for h, f in zip(self.BboxHead, feats, strict=True)], 1
        )
        cls = torch.cat(
            [
                h(f).permute(0, 2, 3, 1).reshape(n, -1, 1 + self.num_classes)
                for h, f in zip(self.ClassHead, feats, strict=True)
            ],
            1,
        )
        return loc, cls


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


def anchors_xyxy(anchors: torch.Tensor) -> torch.Tensor:
    return torch.cat([anchors[:, :2] - anchors[:, 2:] / 2, anchors[:, :2] + anchors[:, 2:] / 2], 1)


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
    cls = gt_labels[best_gt] + 1  # an ignore region (label -1) becomes -1: neither object nor background
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
    return {"box": loss_box * 2.0, "cls": loss_cls}


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

    Returns the (h, w, 3) array and the scale from original to network pixels.
    """
    image, scale = resize_long_side(image, imgsz)
    bgr = image[..., ::-1].astype(np.float32) - np.array(BGR_MEAN, dtype=np.float32)
    return bgr, scale


def batch_tensor(arrays: Sequence[np.ndarray], multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Stack (h, w, 3) float arrays into one zero-padded (N, 3, H, W) tensor, H and W multiples of 32."""
    hh = max(a.shape[0] for a in arrays)
    ww = max(a.shape[1] for a in arrays)
    hh, ww = -(-hh // multiple) * multiple, -(-ww // multiple) * multiple
    out = np.zeros((len(arrays), hh, ww, 3), dtype=np.float32)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def postprocess(
    boxes: torch.Tensor,
    probs: torch.Tensor,
    conf: float,
    iou: float,
    agnostic: bool,
    max_det: int = 300,
    pre_nms: int = 3000,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Threshold and NMS for one image: boxes (A, 4), probs (A, C) over object classes only.

    ``agnostic`` keeps one label per face (what a camera wants); otherwise each class is kept separately,
    which lets an evaluation credit a second guess on an ambiguous face, as Detectron2 does.
    """
    if agnostic:
        scores, labels = probs.max(1)
        idx = torch.nonzero(scores >= conf).squeeze(1)
        scores, labels = scores[idx], labels[idx]
    else:
        idx, labels = torch.nonzero(probs >= conf, as_tuple=True)
        scores = probs[idx, labels]
    b = boxes[idx]
    if len(scores) > pre_nms:
        top = scores.topk(pre_nms).indices
        b, scores, labels = b[top], scores[top], labels[top]
    keep = batched_nms(b, scores, torch.zeros_like(labels) if agnostic else labels, iou)[:max_det]
    return b[keep], scores[keep], labels[keep]


def image_detections(
    boxes: torch.Tensor,
    probs: torch.Tensor,
    scale: float,
    shape: tuple[int, int],
    conf: float,
    iou: float,
    agnostic: bool,
    class_names: tuple[str, ...],
) -> Detections:
    """Threshold + NMS one image's decoded boxes (network pixels), mapped back to its (h, w) pixels.

    Shared by ``MaskFaceDetector.predict`` and the video predictors, so both backends agree exactly.
    """
    b, s, lab = postprocess(boxes, probs, conf, iou, agnostic)
    b = (b / scale).cpu().numpy()
    h, w = shape
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
    return Detections(b, s.cpu().numpy(), lab.cpu().numpy(), class_names)


class MaskFaceDetector(Detector):
    """The RetinaFace-style mask detector behind the :class:`Detector` interface."""

    arch = "maskface-mnet"

    def __init__(
        self, class_names: Sequence[str], imgsz: int = 640, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__(class_names, imgsz, device)
        self._anchor_cache: dict[tuple[int, int], torch.Tensor] = {}
        self.focal_gamma = 0.0

    def build_model(self) -> RetinaFaceNet:
        return RetinaFaceNet(len(self.class_names))

    def checkpoint_meta(self) -> dict[str, Any]:
        return {"input": "BGR minus mean", "mean": list(BGR_MEAN), "levels": [list(lv) for lv in LEVELS]}

    def anchors(self, height: int, width: int) -> torch.Tensor:
        key = (height, width)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = make_anchors(height, width).to(self.device)
        return self._anchor_cache[key]

    def load_face_weights(self, path: str | Path) -> None:
        """Initialise from the WIDER FACE RetinaFace checkpoint: every layer but the class head loads as is;
        each object class starts from the face logit, so training only has to split faces by mask."""
        try:
            sd = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as e:
            raise MaskwatchError(f"{path}: cannot read face weights ({type(e).__name__})") from None
        sd = {k.removeprefix("module."): v for k, v in sd.items() if not k.startswith("LandmarkHead")}
        own = self.model.state_dict()
        a, c = self.model.anchors_per_loc, 1 + len(self.class_names)
        for key in [k for k in sd if k.startswith("ClassHead")]:
            face = sd.pop(key)  # (a*2, ...) = [bg, face] per anchor
            face = face.reshape(a, 2, *face.shape[1:])
            new = torch.cat([face[:, :1], face[:, 1:2].expand(-1, c - 1, *face.shape[2:])], 1)
            own[key] = new.reshape(a * c, *face.shape[2:])
        missing = [k for k in own if k not in sd and not k.startswith("ClassHead")]
        if missing:
            raise MaskwatchError(f"{path}: not a RetinaFace MobileNet-0.25 state dict (missing {missing[0]})")
        own.update({k: v for k, v in sd.items() if k in own})
        self.model.load_state_dict(own)

    def loss(
        self, images: Sequence[np.ndarray], boxes: Sequence[np.ndarray], labels: Sequence[np.ndarray]
    ) -> dict[str, torch.Tensor]:
        x = batch_tensor([letterbox(im, max(im.shape[:2]))[0] for im in images]).to(self.device)
        anchors = self.anchors(x.shape[2], x.shape[3]).cpu()
        t_cls, t_loc = zip(
            *(
                match(torch.as_tensor(b, dtype=torch.float32), torch.as_tensor(lab), anchors)
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
            focal_gamma=self.focal_gamma,
        )

    @torch.inference_mode()
    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        if not images:
            return []
        prepared = [letterbox(im, self.imgsz) for im in images]
        x = batch_tensor([p[0] for p in prepared]).to(self.device)
        loc, logits = self.model(x)
        boxes = decode(loc, self.anchors(x.shape[2], x.shape[3]))
        probs = logits.softmax(-1)[..., 1:]
        return [
            image_detections(boxes[i], probs[i], scale, im.shape[:2], conf, iou, agnostic, self.class_names)
            for i, (im, (_, scale)) in enumerate(zip(images, prepared, strict=True))
        ]
