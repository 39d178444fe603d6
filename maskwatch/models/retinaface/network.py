"""The ``maskface-mnet`` network: MobileNet-0.25, FPN, SSH context modules and per-level heads.

Layer names match biubug6's RetinaFace so the WIDER FACE face detector loads into it (``weights.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from maskwatch.models.retinaface.anchors import LEVELS


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
    """Returns box offsets (N, A, 4) and class logits (N, A, 1 + num_classes) for all anchors.

    ``num_styles`` > 1 adds one box head per extra *box style*: learning bases draw faces differently
    (Kaggle's loose boxes, ILC's tight eyebrows-to-chin ones), so each style gets its own 1x1 box regressor
    over the shared features and class head. ``style`` picks the head :meth:`forward` (and so inference and
    the ONNX export) uses; training computes every style's offsets with :meth:`forward_styles`. Style 0 keeps
    the name ``BboxHead``, so single-style checkpoints load unchanged.
    """

    def __init__(self, num_classes: int, channels: int = 64, num_styles: int = 1) -> None:
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
        self.StyleBboxHead = nn.ModuleList(
            [nn.ModuleList([_Head(channels, a * 4) for _ in LEVELS]) for _ in range(num_styles - 1)]
        )
        self.style = 0

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.fpn(self.body(x))
        return [self.ssh1(feats[0]), self.ssh2(feats[1]), self.ssh3(feats[2])]

    def _box_heads(self, style: int) -> nn.ModuleList:
        return self.BboxHead if style == 0 else self.StyleBboxHead[style - 1]  # type: ignore[return-value]

    def _offsets(self, feats: list[torch.Tensor], style: int) -> torch.Tensor:
        n = feats[0].shape[0]
        heads = self._box_heads(style)
        return torch.cat(
            [h(f).permute(0, 2, 3, 1).reshape(n, -1, 4) for h, f in zip(heads, feats, strict=True)], 1
        )

    def _logits(self, feats: list[torch.Tensor]) -> torch.Tensor:
        n = feats[0].shape[0]
        return torch.cat(
            [
                h(f).permute(0, 2, 3, 1).reshape(n, -1, 1 + self.num_classes)
                for h, f in zip(self.ClassHead, feats, strict=True)
            ],
            1,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self._features(x)
        return self._offsets(feats, self.style), self._logits(feats)

    def forward_styles(self, x: torch.Tensor, styles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Offsets from each image's own style head (``styles``: (N,) style indices) and class logits."""
        feats = self._features(x)
        loc = self._offsets(feats, 0)
        for s in styles.unique().tolist():
            if s:
                pick = styles == s
                loc = torch.where(pick[:, None, None], self._offsets(feats, int(s)), loc)
        return loc, self._logits(feats)
