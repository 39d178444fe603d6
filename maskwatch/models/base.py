"""The small interface every architecture sits behind, and the checkpoint file format.

A checkpoint is one ``torch.save`` dict holding the weights and everything needed to use them
(architecture, class names, input size, normalisation, class map, dataset hash, metrics), so a ``.pt``
file alone is enough to run, evaluate or export a model.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from maskwatch.defaults import CONF, IOU
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write
from maskwatch.models.names import check_box_style

if TYPE_CHECKING:
    from maskwatch.models.classifier import FaceClassifier

CHECKPOINT_VERSION = 1


class Detector(abc.ABC):
    """A trained detector: RGB ``uint8`` images in, one :class:`Detections` per image out.

    Besides the abstract methods, an architecture may offer optional capabilities that callers use
    without knowing its class: construction ``options`` (loss settings), :meth:`init_weights` (start a
    training run from external weights) and :meth:`inference_module` (a decoded graph that the fast
    predictors and the ONNX export run).
    """

    arch: str
    class_names: tuple[str, ...]
    imgsz: int
    model: torch.nn.Module
    device: torch.device
    #: Settings accepted at construction (``build_detector(..., **options)``) and their defaults.
    options: ClassVar[dict[str, Any]] = {}
    #: The second stage, if the model has one: re-decides each face's class from a crop of it. Not used
    #: by :meth:`predict` (the first stage); the predictors put it behind (``load_predictor``).
    classifier: FaceClassifier | None = None

    def __init__(
        self,
        class_names: Sequence[str],
        imgsz: int = 640,
        device: str | torch.device = "cpu",
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise MaskwatchError(f"{self.arch}: unknown option {unknown[0]!r} (accepted: {known})")
        for key, default in self.options.items():
            value = options.get(key, default)
            try:
                setattr(self, key, type(default)(value))
            except (TypeError, ValueError):
                raise MaskwatchError(
                    f"{self.arch}: option {key}={value!r} is not a {type(default).__name__}"
                ) from None
        self.class_names = tuple(class_names)
        self.imgsz = imgsz
        self.device = torch.device(device)
        self.model = self.build_model().to(self.device).eval()

    def init_weights(self, source: str | Path) -> None:
        """Initialise from weights that are not a maskwatch checkpoint (architecture-specific)."""
        raise MaskwatchError(f"{source}: {self.arch} can only start from a maskwatch checkpoint")

    def inference_module(self) -> torch.nn.Module | None:
        """A module taking the :func:`~maskwatch.models.letterbox.network_input` batch (N, 3, H, W) and
        returning boxes (N, A, 4) xyxy network pixels and per-class probabilities (N, A, C), or ``None``.

        Architectures that have one get the fast torch predictor and ONNX export; the others are run
        through their own :meth:`predict`.
        """
        return None

    def box_style_names(self) -> list[str]:
        """The box styles this model can draw (see :meth:`use_box_style`); one unless it learned several."""
        return ["default"]

    @property
    def box_style(self) -> str:
        """The box style :meth:`predict` draws now."""
        return self.box_style_names()[0]

    def use_box_style(self, name: str) -> None:
        """Draw boxes in the style of the learning base called ``name`` (a model trained on several label
        sets keeps one box regressor per style); an unknown name is a one-line error."""
        check_box_style(name, self.box_style_names(), self.arch)

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load trained weights (architectures may adapt another layout, e.g. a new box style)."""
        self.model.load_state_dict(state_dict)

    @abc.abstractmethod
    def build_model(self) -> torch.nn.Module:
        """The freshly initialised network for ``self.class_names`` and ``self.imgsz``."""

    @abc.abstractmethod
    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        """Detect faces in a batch of RGB images of any sizes.

        ``agnostic`` NMS keeps one label per face; evaluation turns it off to score every class guess.
        """

    @abc.abstractmethod
    def checkpoint_meta(self) -> dict[str, Any]:
        """Architecture-specific settings a checkpoint must carry to rebuild this detector."""

    @abc.abstractmethod
    def loss(
        self,
        images: Sequence[np.ndarray],
        boxes: Sequence[np.ndarray],
        labels: Sequence[np.ndarray],
        styles: Sequence[int] | None = None,
        negatives: Sequence[bool] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Training losses for augmented RGB images with xyxy boxes and label indices (-1 = ignore region).

        ``styles`` gives each image's box style (an index into :meth:`box_style_names`; ``None``: all 0);
        an image whose ``negatives`` flag is False teaches no background (only its boxed faces count).
        Each architecture batches and normalises its own input, so the training loop stays generic.
        """

    def __call__(self, image: np.ndarray, conf: float = CONF, iou: float = IOU) -> Detections:
        return self.predict([image], conf=conf, iou=iou)[0]

    def save(self, path: str | Path, **extra: Any) -> None:
        """Write a self-contained checkpoint atomically."""
        ckpt = {
            "maskwatch_checkpoint": CHECKPOINT_VERSION,
            "arch": self.arch,
            "class_names": list(self.class_names),
            "imgsz": self.imgsz,
            "meta": self.checkpoint_meta(),
            "options": {key: getattr(self, key) for key in self.options},
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            **({"classifier": self.classifier.state()} if self.classifier is not None else {}),
            **extra,
        }
        write_checkpoint(path, ckpt)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a maskwatch checkpoint dict, with a one-line error for anything else."""
    ckpt = torch_load(path, "checkpoint not found", "not a readable checkpoint")
    if not isinstance(ckpt, dict) or "maskwatch_checkpoint" not in ckpt:
        raise MaskwatchError(f"{path}: not a maskwatch checkpoint (no 'maskwatch_checkpoint' key)")
    return ckpt


def torch_load(path: str | Path, missing: str, unreadable: str) -> Any:
    """``torch.load`` on the CPU, with one-line errors (``"{path}: {missing}"`` and ``"{path}:
    {unreadable} (ExceptionType)"``) for a missing or unreadable file instead of torch's tracebacks."""
    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"{path}: {missing}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # torch raises many types for a bad file
        raise MaskwatchError(f"{path}: {unreadable} ({type(e).__name__})") from None


def update_checkpoint(path: str | Path, **items: Any) -> None:
    """Add or replace top-level entries of a checkpoint file, atomically (e.g. the crop classifier trained
    after the detector's epochs)."""
    ckpt = read_checkpoint(path)
    ckpt.update(items)
    write_checkpoint(path, ckpt)


def write_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> None:
    """Write a checkpoint dict to a temporary name and rename it, so that a stopped run or a full disk
    never leaves a half-written checkpoint where a good one was."""
    with atomic_write(path, "wb") as f:
        torch.save(ckpt, f)


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MaskwatchError("--device cuda: no CUDA device is available on this machine")
    return dev
