"""Pre-labelling: run a model over unlabelled images (e.g. frames from ``maskwatch data frames``) and write
its detections as a learning base, so a person corrects boxes in LabelImg instead of drawing them all.

Boxes are written as plain labels (no scores: annotation formats have no place for them); a higher
``conf`` means fewer false boxes to delete, a lower one fewer faces to draw by hand.
"""

from __future__ import annotations

from pathlib import Path

from maskwatch.data.layout import find_images  # noqa: F401  (the one image-discovery rule; cli imports it here)
from maskwatch.data.record import Annotation, Dataset
from maskwatch.engine.predict import predict_images
from maskwatch.models.base import Detector


def prelabel(
    images: list[Path], detector: Detector, conf: float = 0.5, min_face: float = 0.0, batch: int = 4
) -> Dataset:
    """A learning base whose boxes are the detector's predictions on ``images``."""
    records = []
    for p in predict_images(detector, images, batch, conf=conf, desc="pre-labelling"):
        det = p.detections.filter(conf=conf, min_size=min_face)
        records.append(Annotation(p.image, p.width, p.height, det.xyxy, det.label_names))
    return Dataset(records, list(detector.class_names))
