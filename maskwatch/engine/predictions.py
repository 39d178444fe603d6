"""Scoring other tools' detections: COCO results files such as Detectron2's ``coco_instances_results.json``.

A results file is a JSON list of ``{"image_id" | "file_name", "category_id" | "label", "bbox": [x, y, w, h],
"score"}``. What its ids mean is fixed by an :class:`ImageIndex`:

- image ids: when the dataset is a COCO JSON file, that file's own image ids (Detectron2 run on that file
  writes exactly those); otherwise the 1-based position of the image in the dataset as loaded, before any
  ``--split`` (so ids stay the same whether or not a split is evaluated). ``file_name`` (the image's name,
  or its path relative to the dataset) works for any dataset and is the safest choice for new tools;
- category ids: the COCO file's categories, matched by name; otherwise 1-based positions in the evaluated
  class list (the ``categories`` of the ``ground_truth.json`` that ``maskwatch eval --out`` writes).
  ``label`` (a class name) needs no numbering at all. ``--merge`` renames prediction classes too.

Detections on images of the dataset that a ``--split`` leaves out are skipped; an image or category the
dataset does not have, a NaN box or malformed JSON is a one-line error naming the file and the entry.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from maskwatch.boxes import xywh_to_xyxy
from maskwatch.data.coco import ImageId, category_ids, find_coco_json
from maskwatch.data.formats import detect_format
from maskwatch.data.record import Dataset
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import read_json

log = logging.getLogger("maskwatch")


def _parts(name: str | Path) -> tuple[str, ...]:
    return tuple(p for p in PurePath(str(name).replace("\\", "/")).parts if p not in ("/", "."))


@dataclass
class ImageIndex:
    """The id of every image of a dataset as loaded, and the category numbering of results files for it."""

    ids: dict[Path, ImageId]
    categories: dict[Any, str] | None = None  # category id → class name; None: 1-based evaluated classes
    source: str = "1-based positions in the dataset"
    names: dict[Path, str] = field(default_factory=dict)  # an image's name in the base, where renamed

    def __post_init__(self) -> None:
        self._by_name: dict[str, list[tuple[tuple[str, ...], Path]]] = {}
        for p in self.ids:
            for parts in dict.fromkeys([_parts(p), _parts(self.names.get(p, p.name))]):
                self._by_name.setdefault(parts[-1], []).append((parts, p))

    def image_of_file_name(self, name: str) -> Path | None:
        """The one image whose path ends with ``name`` (a bare name or a relative path); None if not one."""
        parts = _parts(name)
        candidates = self._by_name.get(parts[-1] if parts else "", [])
        found = {p for full, p in candidates if full[-len(parts) :] == parts}
        return found.pop() if len(found) == 1 else None

    def ids_for(self, ds: Dataset) -> list[ImageId]:
        """Ids of the records of ``ds`` (the whole dataset or a split of it)."""
        try:
            return [self.ids[r.image] for r in ds.records]
        except KeyError as e:
            raise MaskwatchError(f"image {e.args[0]} has no id in {self.source}") from None

    def describe(self) -> str:
        ids = list(self.ids.values())
        if ids == list(range(1, len(ids) + 1)):
            return f"{self.source}: 1..{len(ids)}"
        return f"{self.source}: {len(ids)} ids"


def image_index(data_path: str | Path, ds: Dataset, format: str = "auto") -> ImageIndex:
    """Image and category ids for results files on ``ds`` (the dataset as loaded from ``data_path``).

    For a COCO dataset the file is read again for its ids, which the :class:`Dataset` does not carry;
    images are matched to records by ``file_name``, so the order of either does not matter.
    """
    path = Path(data_path)
    names = {r.image: r.name for r in ds.records}
    positions = ImageIndex({r.image: i for i, r in enumerate(ds.records, start=1)}, names=names)
    fmt = detect_format(path) if format == "auto" else format
    json_path = find_coco_json(path) if fmt == "coco" else None
    coco = read_json(json_path) if json_path else None
    if not (isinstance(coco, dict) and isinstance(coco.get("images"), list)):
        return positions
    ids: dict[Path, ImageId] = {}
    for im in coco["images"]:
        if isinstance(im, dict) and "file_name" in im and "id" in im:
            image = positions.image_of_file_name(str(im["file_name"]))
            if image is not None:
                ids[image] = im["id"]
    cats = {c["id"]: str(c["name"]) for c in coco.get("categories", []) if isinstance(c, dict) and "id" in c}
    return ImageIndex(ids, cats, f"the image ids of {json_path}", names)


def _scalar_id(value: Any) -> ImageId | None:
    """An id as JSON gives it: int or str (3.0 is 3); None for anything else (bool, list, null)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, (int, str)) else None


def _numbers(values: list[Any], width: int, path: Path, rows: list[int], what: str) -> np.ndarray:
    """Validate and stack numbers in one vectorised step; only a failure looks at entries one by one."""
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(len(values), width)
    except (TypeError, ValueError):
        for row, v in zip(rows, values, strict=True):
            try:
                np.asarray(v, dtype=np.float64).reshape(width)
            except (TypeError, ValueError):
                raise MaskwatchError(f"{path}: entry {row}: {what} {v!r} is not {width} number(s)") from None
        raise
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise MaskwatchError(f"{path}: entry {rows[i]}: {what} {values[i]!r} is not finite (NaN or infinity)")
    return arr


def read_predictions(
    path: str | Path,
    ds: Dataset,
    class_names: Sequence[str],
    index: ImageIndex,
    merge: Mapping[str, str] | None = None,
) -> list[Detections]:
    """One :class:`Detections` per record of ``ds`` from a COCO results file (see the module docstring)."""
    path = Path(path)
    entries = read_json(path)
    if not isinstance(entries, list):
        raise MaskwatchError(
            f"{path}: expected a JSON list of detections (COCO results), got {type(entries).__name__}"
        )
    merge = merge or {}
    class_index = {n: i for i, n in enumerate(class_names)}
    categories: dict[Any, str] = (
        index.categories
        if index.categories is not None
        else {v: k for k, v in category_ids(class_names).items()}
    )
    known = set(index.ids.values())
    position = {img_id: i for i, img_id in enumerate(index.ids_for(ds))}
    rows: list[int] = []
    where: list[int] = []
    labels: list[int] = []
    bboxes: list[Any] = []
    scores: list[Any] = []
    skipped = 0
    for n, e in enumerate(entries):
        if not isinstance(e, dict):
            raise MaskwatchError(f"{path}: entry {n}: expected an object, got {type(e).__name__}")
        if "image_id" in e:
            img_id = _scalar_id(e["image_id"])
            if img_id is None or img_id not in known:
                raise MaskwatchError(
                    f"{path}: entry {n}: image_id {e['image_id']!r} is not in the dataset "
                    f"({index.describe()})"
                )
        elif "file_name" in e:
            image = index.image_of_file_name(str(e["file_name"]))
            if image is None or image not in index.ids:
                raise MaskwatchError(
                    f"{path}: entry {n}: file_name {e['file_name']!r} is not one image of the dataset"
                )
            img_id = index.ids[image]
        else:
            raise MaskwatchError(f"{path}: entry {n}: needs 'image_id' or 'file_name'")
        if img_id not in position:
            skipped += 1
            continue
        if "label" in e:
            name = e["label"]
        elif "category_id" in e:
            name = categories.get(_scalar_id(e["category_id"]))
            if name is None:
                numbering = ", ".join(f"{k}={v}" for k, v in categories.items())
                raise MaskwatchError(
                    f"{path}: entry {n}: unknown category_id {e['category_id']!r} ({numbering})"
                )
        else:
            raise MaskwatchError(f"{path}: entry {n}: needs 'category_id' or 'label'")
        name = merge.get(name, name) if isinstance(name, str) else repr(name)
        if name not in class_index:
            raise MaskwatchError(
                f"{path}: entry {n}: unknown category {name!r} "
                f"(classes: {', '.join(class_names)}; map it with --merge)"
            )
        rows.append(n)
        where.append(position[img_id])
        labels.append(class_index[name])
        bboxes.append(e.get("bbox"))
        scores.append(e.get("score"))
    if skipped:
        log.info("%s: skipped %d detection(s) on images outside the evaluated split", path, skipped)
    xywh = _numbers(bboxes, 4, path, rows, "bbox")
    score = _numbers(scores, 1, path, rows, "score")[:, 0]
    negative = (xywh[:, 2] < 0) | (xywh[:, 3] < 0)
    if negative.any():
        i = int(np.argmax(negative))
        raise MaskwatchError(f"{path}: entry {rows[i]}: bbox {bboxes[i]!r} has a negative width or height")
    boxes = xywh_to_xyxy(xywh)
    owner = np.asarray(where, dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(len(ds) + 1))
    lab = np.asarray(labels, dtype=np.int64)
    names = tuple(class_names)
    return [
        Detections(boxes[sel], score[sel], lab[sel], names)
        for sel in (order[a:b] for a, b in itertools.pairwise(bounds))
    ]
