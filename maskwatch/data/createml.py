"""Apple Create ML JSON, LabelImg's third format: a list of
``{"image": name, "annotations": [{"label": l, "coordinates": {"x": cx, "y": cy, "width": w, "height": h}}]}``
with the box centre and size in pixels.

Create ML wants the images in the folder of the JSON, so that is the written layout: ``annotations.json``
beside the images (hard-linked, never re-encoded). The reader also finds images in ``images/`` beside the
JSON (LabelImg's layout) and accepts Roboflow's ``_annotations.createml.json``. The format stores no image
size (read from headers) and no class list (the ``maskwatch.json`` sidecar keeps order and merge map).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from maskwatch.data.layout import find_image, find_json
from maskwatch.data.record import Annotation, Dataset, classes_in_order, finalize_records
from maskwatch.errors import MaskwatchError
from maskwatch.io import image_size, link_or_copy, progress, read_json, write_json

ANNOTATIONS = "annotations.json"
COORDS = ("x", "y", "width", "height")


def find_createml_json(path: Path) -> Path | None:
    return find_json(path, (ANNOTATIONS, "_annotations.createml.json"), "[")


def _entry(item: Any, json_path: Path, roots: list[Path]) -> Annotation:
    if not isinstance(item, dict) or not isinstance(item.get("image"), str):
        raise MaskwatchError(f"{json_path}: every entry needs an 'image' name, got {str(item)[:60]!r}")
    name = item["image"]
    anns = item.get("annotations") or []
    rows, labels = [], []
    for ann in anns if isinstance(anns, list) else [None]:
        coords = ann.get("coordinates") if isinstance(ann, dict) else None
        try:
            rows.append([float(coords[k]) for k in COORDS])  # type: ignore[index]
            label = ann["label"]  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            raise MaskwatchError(
                f"{json_path}: image {name!r}: each annotation needs a 'label' and 'coordinates' "
                "{x, y, width, height}"
            ) from None
        labels.append(str(label))
    image = find_image(name, roots, json_path)
    w, h = image_size(image)
    return Annotation(image, w, h, cxcywh_to_xyxy(np.array(rows).reshape(-1, 4)), labels)


def read_createml(path: Path) -> Dataset:
    """Read a Create ML JSON (or the folder holding it)."""
    json_path = find_createml_json(path)
    if json_path is None:
        raise MaskwatchError(f"{path}: no Create ML annotation JSON found")
    data = read_json(json_path)
    if not isinstance(data, list):
        raise MaskwatchError(f"{json_path}: not a Create ML file (expected a JSON list of images)")
    roots = [json_path.parent, json_path.parent / "images"]
    records = finalize_records(
        [_entry(item, json_path, roots) for item in progress(data, "reading Create ML")], str(json_path)
    )
    return Dataset(records, classes_in_order(records), json_path.parent)


def createml_list(ds: Dataset) -> list[dict[str, Any]]:
    return [
        {
            "image": r.name,
            "annotations": [
                {"label": lab, "coordinates": dict(zip(COORDS, box, strict=True))}
                for box, lab in zip(xyxy_to_cxcywh(r.boxes).tolist(), r.labels, strict=True)
            ],
        }
        for r in ds
    ]


def write_createml(ds: Dataset, out: Path, copy_images: bool = False) -> None:
    """Write ``ds`` into the new folder ``out``: ``annotations.json`` beside the images."""
    for r in progress(ds.records, "writing Create ML"):
        link_or_copy(r.image, out / r.name, copy_images)
    write_json(out / ANNOTATIONS, createml_list(ds), indent=None)
