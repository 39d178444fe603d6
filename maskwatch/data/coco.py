"""COCO instances JSON, as Detectron2's ``register_coco_instances`` and pycocotools read it.

``bbox`` is ``[x, y, w, h]`` in pixels from the top-left corner; ``file_name`` is relative to an image
root that the JSON does not name. The reader looks for it beside the JSON, in ``images/`` there, and one
level up (``annotations/x.json`` + ``images/``). Category order is the file's. Crowd regions
(``iscrowd: 1``) mark areas to ignore, not faces, so they are skipped with one warning.

Two ways to write, chosen by the destination:

- a folder: ``annotations.json`` (every image) + ``images/<name>`` (hard-linked, never re-encoded), and
  per split ``instances_<split>.json`` to register each split in Detectron2 with ``images/`` as root;
- a ``.json`` file: that file only, the images referenced where they are (``file_name`` relative to the
  JSON's folder, the image root to give Detectron2).

The class map is recorded in ``categories`` and, with the merge map, in ``info.maskwatch``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch import __version__
from maskwatch.data.layout import find_image, find_json, known_size, relative_posix
from maskwatch.data.record import Annotation, Dataset, finalize_records
from maskwatch.errors import MaskwatchError
from maskwatch.io import link_or_copy, progress, read_json, write_json

log = logging.getLogger("maskwatch")

ANNOTATIONS = "annotations.json"


def find_coco_json(path: Path) -> Path | None:
    return find_json(path, (ANNOTATIONS,), "{")


def _image_roots(json_path: Path) -> list[Path]:
    d = json_path.parent
    return [d, d / "images", d.parent, d.parent / "images"]


def _as_list(data: dict[str, Any], key: str, path: Path) -> list[dict[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise MaskwatchError(f"{path}: '{key}' must be a list of objects")
    return value


def _bbox(ann: dict[str, Any], path: Path) -> list[float]:
    bbox = ann.get("bbox")
    try:
        x, y, w, h = (float(v) for v in bbox)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise MaskwatchError(
            f"{path}: annotation {ann.get('id')!r}: bbox must be [x, y, w, h], got {bbox!r}"
        ) from None
    return [x, y, x + w, y + h]


def read_coco(path: Path) -> Dataset:
    """Read a COCO instances file (or the folder holding ``annotations.json``)."""
    json_path = find_coco_json(path)
    if json_path is None:
        raise MaskwatchError(f"{path}: no COCO annotation JSON found")
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise MaskwatchError(f"{json_path}: not a COCO instances file (no 'images' list)")
    images, annotations = _as_list(data, "images", json_path), _as_list(data, "annotations", json_path)
    categories = _as_list(data, "categories", json_path)
    try:
        cat_name = {c["id"]: str(c["name"]) for c in categories}
    except KeyError as e:
        raise MaskwatchError(f"{json_path}: a category has no {e}") from None
    if len(set(cat_name.values())) < len(cat_name):
        raise MaskwatchError(f"{json_path}: two categories share a name")
    boxes: dict[Any, list[list[float]]] = {}
    labels: dict[Any, list[str]] = {}
    crowd = 0
    for ann in annotations:
        if ann.get("iscrowd"):
            crowd += 1
            continue
        if ann.get("category_id") not in cat_name:
            cat = ann.get("category_id")
            raise MaskwatchError(f"{json_path}: annotation {ann.get('id')!r} has unknown category_id {cat!r}")
        boxes.setdefault(ann.get("image_id"), []).append(_bbox(ann, json_path))
        labels.setdefault(ann.get("image_id"), []).append(cat_name[ann["category_id"]])
    if crowd:
        log.warning("%s: skipped %d crowd region(s) (iscrowd=1)", json_path, crowd)
    ids = {img.get("id") for img in images}
    orphans = [k for k in boxes if k not in ids]
    if orphans:
        raise MaskwatchError(
            f"{json_path}: annotations name image_id {orphans[0]!r}, which is not in 'images'"
        )
    roots = _image_roots(json_path)
    records = []
    for img in progress(images, "reading COCO"):
        name = img.get("file_name")
        if not isinstance(name, str) or not name:
            raise MaskwatchError(f"{json_path}: image {img.get('id')!r} has no file_name")
        image = find_image(name, roots, json_path)
        found = Path(*image.parts[: len(image.parts) - len(Path(name).parts)])
        if found != roots[0]:  # one root serves every image: try it first (one stat per image)
            roots = [found, *(r for r in roots if r != found)]
        w, h = known_size(image, img.get("width"), img.get("height"))
        box_list = np.asarray(boxes.get(img.get("id"), []), dtype=np.float64)
        records.append(Annotation(image, w, h, box_list, labels.get(img.get("id"), [])))
    ds = Dataset(finalize_records(records, str(json_path)), list(cat_name.values()), json_path.parent)
    info = data.get("info")
    ours = info.get("maskwatch") if isinstance(info, dict) else None
    if isinstance(ours, dict) and isinstance(ours.get("merge"), dict):
        ds.merge = {str(k): str(v) for k, v in ours["merge"].items()}
    return ds


def coco_dict(ds: Dataset, file_names: Sequence[str]) -> dict[str, Any]:
    """The dataset as a COCO instances dict; ``file_names[i]`` is record i's path from the image root.

    Image ids are 1-based record positions and category ids 1-based class positions, so the file is
    deterministic for a dataset.
    """
    cat_id = {name: i for i, name in enumerate(ds.classes, start=1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for img_id, (r, name) in enumerate(zip(ds.records, file_names, strict=True), start=1):
        images.append({"id": img_id, "file_name": name, "width": r.width, "height": r.height})
        for (x1, y1, x2, y2), lab in zip(r.boxes.tolist(), r.labels, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": cat_id[lab],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    return {
        "info": {
            "description": "written by maskwatch",
            "version": __version__,
            "maskwatch": {"classes": list(ds.classes), "merge": dict(ds.merge)},
        },
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "face"} for n, i in cat_id.items()],
    }


def write_coco(ds: Dataset, out: Path, copy_images: bool = False) -> None:
    """Write ``ds`` into the new folder ``out``: ``annotations.json``, ``images/`` and per-split files."""
    for r in progress(ds.records, "writing COCO"):
        link_or_copy(r.image, out / "images" / r.name, copy_images)
    write_json(out / ANNOTATIONS, coco_dict(ds, [r.name for r in ds]), indent=None)
    for split, stems in ds.splits.items():
        part = ds.subset(stems)
        write_json(out / f"instances_{split}.json", coco_dict(part, [r.name for r in part]), indent=None)


def write_coco_file(ds: Dataset, path: Path) -> None:
    """Write one JSON that references the images where they are (relative to the JSON's folder)."""
    root = path.absolute().parent
    write_json(path, coco_dict(ds, [relative_posix(r.image.absolute(), root) for r in ds]), indent=None)
