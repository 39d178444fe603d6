"""The ``Predictor`` interface: preprocessing separable from the network run, for the video pipeline.

A video pipeline wants preprocessing (letterbox, mean subtraction, padding) to run in the decoding thread
so the model thread does nothing but run the network; ``Detector.predict`` does everything in one call.
A ``Predictor`` splits the two: ``prepare`` (any thread) and ``infer`` (the model thread). Torch-free:
the ONNX Runtime path imports nothing from torch.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from maskwatch.detections import Detections
from maskwatch.models.letterbox import image_detections, network_input

if TYPE_CHECKING:
    from maskwatch.predict.classify import CropClassifier


@dataclass
class Prepared:
    """One image made ready for the network, remembering how to map boxes back to its pixels.

    ``tensor`` is the (3, H, W) float32 network input; ``image`` is kept instead by predictors whose
    detector prepares its own input (architectures without an inference module).
    """

    tensor: np.ndarray | None
    scale: float
    shape: tuple[int, int]
    image: np.ndarray | None = None


class Predictor(abc.ABC):
    """Images in, :class:`Detections` out, with preprocessing separable from the network run."""

    backend: str
    name: str
    class_names: tuple[str, ...]
    imgsz: int
    box_style: str = "default"  # the box style it draws (a model trained on several label sets has several)
    box_styles: tuple[str, ...] = ("default",)  # every style of its model
    #: The model's second stage, if it has one; ``load_predictor`` puts it behind this predictor.
    crop_classifier: CropClassifier | None = None

    @abc.abstractmethod
    def prepare(self, image: np.ndarray) -> Prepared:
        """Preprocess one RGB ``uint8`` image; safe to call from another thread than :meth:`infer`."""

    @abc.abstractmethod
    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        """Run the network and the post-processing on prepared images."""

    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        """``Detector.predict``'s contract: prepare and infer in one call."""
        return self.infer([self.prepare(im) for im in images], conf, iou, agnostic)


class ImagePredictor(Predictor):
    """A predictor that prepares its own input inside :meth:`predict` (a detector's own ``predict``, test-time
    augmentation): ``prepare`` keeps the image, ``infer`` hands the images to ``predict``."""

    def prepare(self, image: np.ndarray) -> Prepared:
        return Prepared(None, 1.0, (image.shape[0], image.shape[1]), image)

    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        images = [p.image for p in batch if p.image is not None]
        if len(images) != len(batch):
            raise ValueError("infer() needs images made by this predictor's prepare()")
        return self.predict(images, conf, iou, agnostic)

    @abc.abstractmethod
    def predict(
        self, images: Sequence[np.ndarray], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        """Preprocess, run and post-process in one call."""


class Wrapper:
    """A predictor around another model (``wrapped``): its input size is the wrapped model's, read and set
    through it, since test-time augmentation changes it look by look."""

    wrapped: Any

    @property
    def imgsz(self) -> int:
        return int(self.wrapped.imgsz)

    @imgsz.setter
    def imgsz(self, value: int) -> None:
        self.wrapped.imgsz = value


class GraphPredictor(Predictor):
    """A decoded graph (torch module or ONNX model) between the shared letterbox and post-processing."""

    #: Fixed (height, width) network input of a static ONNX export; None pads to a multiple of 32.
    static_size: tuple[int, int] | None = None

    def prepare(self, image: np.ndarray) -> Prepared:
        tensor, scale = network_input(image, self.imgsz, self.static_size)
        return Prepared(tensor, scale, (image.shape[0], image.shape[1]))

    @abc.abstractmethod
    def run_network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Batch (N, 3, H, W) float32 -> boxes (N, A, 4) xyxy network pixels, probs (N, A, C)."""

    def infer(
        self, batch: Sequence[Prepared], conf: float = 0.25, iou: float = 0.45, agnostic: bool = True
    ) -> list[Detections]:
        tensors = [p.tensor for p in batch]
        if any(t is None for t in tensors):
            raise ValueError("infer() needs images made by this predictor's prepare()")
        out: list[Detections] = []
        # Frames of one video share a shape and run as one batch; mixed image sizes run one by one.
        shapes = {t.shape for t in tensors if t is not None}
        groups = [list(batch)] if len(shapes) <= 1 else [[p] for p in batch]
        for group in groups:
            if not group:
                continue
            boxes, probs = self.run_network(np.stack([p.tensor for p in group if p.tensor is not None]))
            out.extend(
                image_detections(boxes[i], probs[i], p.scale, p.shape, conf, iou, agnostic, self.class_names)
                for i, p in enumerate(group)
            )
        return out
