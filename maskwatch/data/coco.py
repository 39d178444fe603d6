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
from collections.abc import Hashable, Sequence
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

ImageId = Hashable  # a COCO image id: an int in files maskwatch writes, anything hashable in others'


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


def _stated_size(img: dict[str, Any]) -> tuple[int, int] | None:
    try:
        w, h = int(img["width"]), int(img["height"])
    except (KeyError, TypeError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 else None


def read_coco(path: Path, require_images: bool = True) -> Dataset:
    """Read a COCO instances file (or the folder holding ``annotations.json``).

    Without ``require_images``, an image that is not found but whose width and height the file states is
    kept (at the path it would have beside the JSON): scoring a results file needs only the boxes and sizes.
    """
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
        try:
            image = find_image(name, roots, json_path)
            found = Path(*image.parts[: len(image.parts) - len(Path(name).parts)])
            if found != roots[0]:  # one root serves every image: try it first (one stat per image)
                roots = [found, *(r for r in roots if r != found)]
            w, h = known_size(image, img.get("width"), img.get("height"))
        except MaskwatchError:
            stated = _stated_size(img)
            if require_images or stated is None:
                raise
            image, (w, h) = roots[0] / name, stated
        key = img.get("id")
        records.append(Annotation(image, w, h, np.array(boxes.get(key, [])), labels.get(key, [])))
    ds = Dataset(finalize_records(records, str(json_path)), list(cat_name.values()), json_path.parent)
    info = data.get("info")
    ours = info.get("maskwatch") if isinstance(info, dict) else None
    if isinstance(ours, dict) and isinstance(ours.get("merge"), dict):
        ds.merge = {str(k): str(v) for k, v in ours["merge"].items()}
    return ds


def category_ids(class_names: Sequence[str]) -> dict[str, int]:
    """Category id of each class name: its 1-based position (0 is background in many tools)."""
    return {name: i + 1 for i, name in enumerate(class_names)}


def coco_dict(
    ds: Dataset,
    file_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    image_ids: Sequence[ImageId] | None = None,
    min_size: float = 0.0,
) -> dict[str, Any]:
    """The dataset as a COCO instances dict: the one builder behind ``data convert --to coco`` and the
    ground truth ``maskwatch eval`` scores against.

    ``file_names[i]`` is record i's path from the image root (default: its name in the base); category ids
    are 1-based positions in ``class_names`` (default: the dataset's classes) and image ids default to
    1-based record positions, so the file is deterministic for a dataset. With ``min_size`` (the range of
    interest of an evaluation), faces whose shorter side is smaller get ``"ignore": 1`` and a copy in every
    category, so a detection of any class on them counts for nothing (see :mod:`maskwatch.engine.evaluate`);
    so do boxes labelled ``ignore`` when that is not one of ``class_names``.
    """
    class_names = list(ds.classes if class_names is None else class_names)
    names = [r.name for r in ds] if file_names is None else list(file_names)
    ids = list(range(1, len(ds) + 1)) if image_ids is None else list(image_ids)
    if not len(names) == len(ids) == len(ds):
        raise ValueError(f"{len(names)} file names and {len(ids)} image ids for {len(ds)} images")
    cat_id = category_ids(class_names)
    all_cats = list(cat_id.values())
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for img_id, r, name in zip(ids, ds.records, names, strict=True):
        images.append({"id": img_id, "file_name": name, "width": r.width, "height": r.height})
        ks, ignored = r.scored(class_names, min_size)
        for (x1, y1, x2, y2), k, ignore in zip(r.boxes.tolist(), ks.tolist(), ignored.tolist(), strict=True):
            for cat in all_cats if ignore else (k + 1,):
                ann = {
                    "id": len(annotations) + 1,
                    "image_id": img_id,
                    "category_id": cat,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
                if ignore:
                    ann["ignore"] = 1
                annotations.append(ann)
    return {
        "info": {
            "description": "written by maskwatch",
            "version": __version__,
            "maskwatch": {"classes": class_names, "merge": dict(ds.merge)},
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
