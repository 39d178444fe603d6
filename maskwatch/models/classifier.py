"""The crop classifier: the optional second stage that re-decides the class of each face a detector finds
from a square crop of it (:mod:`maskwatch.models.crops` makes the crops and combines the scores).

It rides inside the detector's checkpoint (``"classifier"``) and ONNX export (a small ONNX model of its own
in the metadata), so a model stays one file. Backbones (``arch``):

- ``mnet``: the detector's own MobileNet-0.25 body (0.2 M parameters, under 1 MB), started from the
  trained detector's body or the WIDER FACE RetinaFace file: face features, MIT-licensed weights.
- ``mobilenet_v2``: torchvision's MobileNetV2 (2.2 M parameters), started from its ImageNet weights.
- ``mobilenet_v2_14``: its first 14 blocks (0.5 M parameters), the same start.

The network takes RGB 0-255 crops and normalises them in its graph, the way its backbone was trained,
so every runtime feeds it the same thing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskwatch.errors import MaskwatchError
from maskwatch.models.base import torch_load
from maskwatch.models.crops import CLASSIFIER_ARCHS, CONTEXT
from maskwatch.models.letterbox import BGR_MEAN
from maskwatch.models.retinaface.network import MobileNetV1x025

_BOX_CHANNELS = 32  # the box head's squeeze: as good as reading all 256 channels, 1/6 of the weights
_IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
_IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class _LastMap(nn.Module):
    """MobileNet-0.25's stride-32 map (its body returns three)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MobileNetV1x025()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)[-1]


def _backbone(arch: str) -> tuple[nn.Module, int]:
    if arch == "mnet":
        return _LastMap(), 256
    if arch in ("mobilenet_v2", "mobilenet_v2_14"):
        import torchvision

        features = torchvision.models.mobilenet_v2().features
        if arch == "mobilenet_v2_14":
            return features[:14], 96
        return features, 1280
    raise MaskwatchError(f"unknown classifier arch {arch!r} (choose from {', '.join(CLASSIFIER_ARCHS)})")


class CropClassifierNet(nn.Module):
    """(M, 3, S, S) float32 RGB 0-255 crops -> class logits (M, C); with ``box_styles`` also a box per
    crop and style (:meth:`forward_all`): (M, box_styles, 4) deltas
    (:func:`maskwatch.models.crops.box_deltas`)."""

    def __init__(self, arch: str, num_classes: int, size: int = 96, box_styles: int = 0) -> None:
        super().__init__()
        self.features, channels = _backbone(arch)
        bgr = arch == "mnet"  # RetinaFace's convention: BGR minus mean; torchvision's: RGB, ImageNet mean/std
        mean = BGR_MEAN[::-1] if bgr else _IMAGENET_MEAN
        std = (1.0, 1.0, 1.0) if bgr else _IMAGENET_STD
        self.bgr = bgr
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(channels, num_classes))
        self.box_head: nn.Module | None = None
        self.box_styles = box_styles
        if box_styles:
            # where the face sits is in the map's layout, which the class head's mean throws away: the map
            # is squeezed to a few channels and read whole (3x3 cells at 96 px)
            self.features.eval()
            with torch.no_grad():
                cells = self.features(torch.zeros(1, 3, size, size))[0, 0].numel()
            self.box_head = nn.Sequential(
                nn.Conv2d(channels, _BOX_CHANNELS, 1),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(_BOX_CHANNELS * cells, 128),
                nn.ReLU(),
                nn.Linear(128, 4 * box_styles),
            )

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class logits and, with a box head, the (M, styles, 4) box deltas."""
        x = (x - self.mean) / self.std
        if self.bgr:
            x = x.flip(1)
        f = self.features(x)
        logits = self.head(f.mean((2, 3), keepdim=True))
        if self.box_head is None:
            return logits, None
        return logits, self.box_head(f).view(-1, self.box_styles, 4)  # -1: the number of crops stays dynamic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


class Softmaxed(nn.Module):
    """The network with the softmax in the graph: what the predictors and the ONNX export run (class
    probabilities, then the box deltas if it has a box head)."""

    def __init__(self, net: CropClassifierNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        logits, deltas = self.net.forward_all(x)
        return logits.softmax(-1) if deltas is None else (logits.softmax(-1), deltas)


class FaceClassifier:
    """A trained crop classifier and how to use it: crop ``size`` and ``context``, and ``alpha``, its
    weight against the detector's own class scores. With ``background`` it has one more output, after the
    classes, learned from the detector's mistakes, and ``beta`` weighs it in each face's score
    (:func:`maskwatch.models.crops.decide`)."""

    def __init__(
        self,
        arch: str,
        class_names: tuple[str, ...] | list[str],
        size: int = 96,
        alpha: float = 0.7,
        context: float = CONTEXT,
        device: str | torch.device = "cpu",
        background: bool = False,
        beta: float = 0.0,
        box_styles: tuple[str, ...] | list[str] = (),
        refine: float = 0.0,
    ) -> None:
        if size < 32:
            raise MaskwatchError(f"classifier size {size}: at least 32 pixels")
        if not 0.0 <= alpha <= 1.0:
            raise MaskwatchError(f"classifier alpha {alpha}: between 0 and 1")
        if not 0.0 <= beta < 1.0:
            raise MaskwatchError(f"classifier beta {beta}: in [0, 1)")
        if not 0.0 <= refine <= 1.0:
            raise MaskwatchError(f"classifier refine {refine}: between 0 and 1")
        self.arch, self.class_names = arch, tuple(class_names)
        self.size, self.alpha, self.context = int(size), float(alpha), float(context)
        self.background, self.beta = bool(background), float(beta) if background else 0.0
        self.box_styles = tuple(box_styles)
        self.refine = float(refine) if self.box_styles else 0.0
        self.device = torch.device(device)
        outputs = len(self.class_names) + self.background
        self.net = CropClassifierNet(arch, outputs, self.size, len(self.box_styles)).to(self.device).eval()

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores under ``"classifier"``."""
        return {
            "arch": self.arch,
            "class_names": list(self.class_names),
            "size": self.size,
            "alpha": self.alpha,
            "context": self.context,
            "background": self.background,
            "beta": self.beta,
            "box_styles": list(self.box_styles),
            "refine": self.refine,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], device: str | torch.device = "cpu") -> FaceClassifier:
        clf = cls(
            state["arch"],
            state["class_names"],
            state["size"],
            state["alpha"],
            state["context"],
            device,
            state.get("background", False),  # a classifier saved before backgrounds existed has none
            state.get("beta", 0.0),
            state.get("box_styles", ()),  # nor, before box heads existed, a box head
            state.get("refine", 0.0),
        )
        clf.net.load_state_dict(state["state_dict"])
        return clf

    @torch.inference_mode()
    def run(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Class probabilities of a crop batch (:func:`maskwatch.models.crops.face_crops`), then the
        background's if it has one; and the (M, styles, 4) box deltas if it has a box head."""
        self.net.eval()
        logits, deltas = self.net.forward_all(crops.to(self.device))
        return logits.softmax(-1), deltas

    def probs(self, crops: torch.Tensor) -> torch.Tensor:
        """:meth:`run`'s probabilities alone."""
        return self.run(crops)[0]

    def init_backbone(self, source: str | Path | dict[str, torch.Tensor]) -> None:
        """Start the backbone from pretrained weights: a state dict, or a file holding one (a maskwatch
        checkpoint, the WIDER FACE RetinaFace file, torchvision's ImageNet MobileNetV2).

        ``mnet`` takes the ``body.*`` weights of a RetinaFace-style network; the MobileNetV2s take
        torchvision's ``features.*``. Anything else is a one-line error, never a silent random start.
        """
        sd = _read_state_dict(source) if not isinstance(source, dict) else source
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        own = self.net.features.state_dict()
        if self.arch == "mnet":
            picked = {k: v for k, v in sd.items() if k.startswith("body.")}
        else:
            picked = {k.removeprefix("features."): v for k, v in sd.items() if k.startswith("features.")}
        picked = {k: v for k, v in picked.items() if k in own}
        missing = [k for k in own if k not in picked or picked[k].shape != own[k].shape]
        if missing:
            raise MaskwatchError(
                f"{_label(source)}: no {self.arch} backbone weights in it (lacks {missing[0]})"
            )
        self.net.features.load_state_dict(picked)


def _label(source: object) -> str:
    return "<state dict>" if isinstance(source, dict) else str(source)


def _read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    sd = torch_load(path, "classifier weights not found", "cannot read classifier weights")
    if isinstance(sd, dict) and "maskwatch_checkpoint" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise MaskwatchError(f"{path}: not a state dict")
    return sd
