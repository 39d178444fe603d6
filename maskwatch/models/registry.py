"""Built-in model names, and loading a detector from a name or a checkpoint path."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import torch

from maskwatch.errors import MaskwatchError
from maskwatch.models.base import Detector, read_checkpoint, resolve_device
from maskwatch.models.names import DEFAULT_MODEL, MODEL_NAMES
from maskwatch.models.retinaface import MaskFaceDetector
from maskwatch.models.torchvision_models import FasterRCNNX101, RetinaNetR50

# Each architecture: a builder taking (class_names, imgsz, device) and its default input size.
ARCHITECTURES: dict[str, tuple[Callable[..., Detector], int]] = {
    "maskface-mnet": (MaskFaceDetector, 640),
    "faster-rcnn-x101-fpn": (FasterRCNNX101, 640),
    "retinanet-r50-fpn": (RetinaNetR50, 640),
}
assert tuple(ARCHITECTURES) == MODEL_NAMES, "keep models/names.py in step with the registry"


def packaged_weights(name: str) -> Path:
    """Path of the weights file shipped inside the package for a built-in model name."""
    return Path(str(resources.files("maskwatch.models") / "weights" / f"{name}.pt"))


def build_detector(
    arch: str, class_names: Sequence[str], imgsz: int | None = None, device: str | torch.device = "cpu"
) -> Detector:
    """A freshly initialised detector of a registered architecture."""
    if arch not in ARCHITECTURES:
        raise MaskwatchError(f"unknown model {arch!r} (choose from {', '.join(ARCHITECTURES)})")
    builder, default_size = ARCHITECTURES[arch]
    return builder(class_names, imgsz or default_size, resolve_device(device))


def load_detector(model: str | Path | None = None, device: str | torch.device = "cpu") -> Detector:
    """Load a built-in model by name (default: ``maskface-mnet``) or any maskwatch checkpoint path."""
    model = str(model or DEFAULT_MODEL)
    path = Path(model)
    if not path.is_file() and model in ARCHITECTURES:
        path = packaged_weights(model)
        if not path.is_file():
            raise MaskwatchError(f"model {model!r} has no packaged weights; pass a checkpoint path")
    elif not path.is_file():
        raise MaskwatchError(
            f"model {model!r}: no such checkpoint file or built-in name ({', '.join(ARCHITECTURES)})"
        )
    ckpt = read_checkpoint(path)
    det = build_detector(ckpt["arch"], ckpt["class_names"], ckpt["imgsz"], device)
    det.model.load_state_dict(ckpt["state_dict"])
    det.model.eval()
    return det
