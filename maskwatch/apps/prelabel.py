"""Pre-labelling: run a model over unlabelled images (e.g. frames from ``maskwatch data frames``) and write
its detections as a learning base, so a person corrects boxes in LabelImg instead of drawing them all.

Boxes are written as plain labels (no scores: annotation formats have no place for them); a higher
``conf`` means fewer false boxes to delete, a lower one fewer faces to draw by hand.
"""

from __future__ import annotations

import glob
from pathlib import Path

from tqdm import tqdm

from maskwatch.data.layout import image_files
from maskwatch.data.record import Annotation, Dataset
from maskwatch.defaults import CONF
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image
from maskwatch.models.base import Detector


def find_images(source: str | Path) -> list[Path]:
    """Images of a folder, a glob pattern, or a single file."""
    path = Path(source)
    if path.is_dir():
        files = image_files(path)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(str(source)))
    if not files:
        raise MaskwatchError(f"{source}: no images found")
    return files


def prelabel(
    images: list[Path], detector: Detector, conf: float = CONF, min_face: float = 0.0, batch: int = 4
) -> Dataset:
    """A learning base whose boxes are the detector's predictions on ``images``."""
    records = []
    with tqdm(total=len(images), desc="pre-labelling", unit="img") as bar:
        for i in range(0, len(images), batch):
            chunk = images[i : i + batch]
            pixels = [load_image(p) for p in chunk]
            for path, im, det in zip(chunk, pixels, detector.predict(pixels, conf=conf), strict=True):
                det = det.filter(conf=conf, min_size=min_face)
                records.append(Annotation(path, im.shape[1], im.shape[0], det.xyxy, det.label_names))
            bar.update(len(chunk))
    return Dataset(records, list(detector.class_names))
