"""Format detection and the one entry point to read or write a learning base in any format.

Every reader returns a :class:`Dataset` and every writer takes one, so any format converts to any other
through it. Output goes to a temporary folder renamed into place when complete (``atomic_dir``); split
files travel as ``splits/{train,val,test}.txt`` (image stems) in every written folder, and that is where
:func:`load_dataset` looks for them (YOLO's ``data.yaml`` splits are read natively too).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from maskwatch.data.classmap import apply_merge, parse_merge
from maskwatch.data.coco import find_coco_json, read_coco, write_coco, write_coco_file
from maskwatch.data.createml import find_createml_json, read_createml, write_createml
from maskwatch.data.layout import (
    SIDECAR,
    SPLIT_DIR,
    attach_splits,
    check_unique_stems,
    json_top,
    read_sidecar,
    write_sidecar,
    write_splits,
)
from maskwatch.data.record import Dataset, classes_in_order
from maskwatch.data.voc import read_voc, voc_xml_files, write_voc
from maskwatch.data.yolo import is_yolo_dir, read_yolo, write_yolo
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_dir, check_replaceable

log = logging.getLogger("maskwatch")

FORMATS = ("voc", "yolo", "coco", "createml")

READERS: dict[str, Callable[[Path], Dataset]] = {
    "voc": read_voc,
    "yolo": read_yolo,
    "coco": read_coco,
    "createml": read_createml,
}
WRITERS: dict[str, Callable[[Dataset, Path, bool], None]] = {
    "voc": write_voc,
    "yolo": write_yolo,
    "coco": write_coco,
    "createml": write_createml,
}


def detect_format(path: Path) -> str:
    """Guess the annotation format of a file or folder (a maskwatch sidecar settles it)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() in (".yaml", ".yml"):
            return "yolo"
        if path.suffix.lower() == ".json":
            return {"{": "coco", "[": "createml"}.get(json_top(path), "unknown")
    elif path.is_dir():
        meta = read_sidecar(path)
        if meta and meta.get("format") in FORMATS:
            return str(meta["format"])
        if voc_xml_files(path):
            return "voc"
        if is_yolo_dir(path):
            return "yolo"
        if find_coco_json(path):
            return "coco"
        if find_createml_json(path):
            return "createml"
    raise MaskwatchError(f"{path}: cannot tell the annotation format; pass --format {'|'.join(FORMATS)}")


def load_dataset(
    path: str | Path,
    format: str = "auto",
    merge: Sequence[str] | None = None,
    split: str | Path | None = None,
    require_images: bool = True,
) -> Dataset:
    """Read a learning base, its splits (``split`` folder or file, else ``PATH/splits``) and apply
    ``--merge``. ``require_images=False`` lets a COCO file that states image sizes load without the images
    (scoring a results file needs boxes and sizes only)."""
    path = Path(path)
    mapping = parse_merge(merge)  # a bad --merge fails before a long read
    if not path.exists():
        raise MaskwatchError(f"{path}: no such file or directory")
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in READERS:
        raise MaskwatchError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    ds = read_coco(path, require_images=False) if fmt == "coco" and not require_images else READERS[fmt](path)
    meta = read_sidecar(path) if path.is_dir() else None
    if meta:
        if fmt in ("voc", "createml"):  # formats without a class list: keep the recorded order
            ds.classes = classes_in_order(ds.records, meta["classes"])
        ds.merge = ds.merge or dict(meta["merge"])
    if split is not None:
        attach_splits(ds, Path(split), required=True)
    elif not ds.splits:
        attach_splits(ds, (path if path.is_dir() else path.parent) / SPLIT_DIR, required=False)
    return apply_merge(ds, mapping)


def check_destination(ds: Dataset, dst: Path) -> None:
    """Refuse to replace what is not ours: a folder holding the source, or one maskwatch did not write
    (the one rule of :func:`~maskwatch.io.check_replaceable`; the sidecar is a data folder's marker)."""
    if dst.is_file():
        raise MaskwatchError(f"{dst}: exists and is a file; give a folder")
    inside = os.path.abspath(dst) + os.sep
    for r in ds:
        if os.path.abspath(r.image).startswith(inside):
            raise MaskwatchError(f"{dst}: holds the source image {r.image}; write to another folder")
    check_replaceable(dst, marker=SIDECAR)


def save_dataset(ds: Dataset, dst: str | Path, format: str, copy_images: bool = False) -> Path:
    """Write ``ds`` as ``format`` to the folder ``dst`` (or, for COCO, to a ``.json`` file that references
    the images where they are). Nothing is left behind on failure."""
    dst = Path(dst)
    if format not in WRITERS:
        raise MaskwatchError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    check_unique_stems(ds)
    if dst.suffix.lower() == ".json":
        if format != "coco":
            raise MaskwatchError(f"{dst}: a single .json output is COCO only; give a folder for {format}")
        write_coco_file(ds, dst)
        if ds.splits:
            log.warning("%s: one JSON holds no split; write to a folder to keep the split files", dst)
        return dst
    check_destination(ds, dst)
    with atomic_dir(dst) as tmp:
        if format == "yolo":
            write_yolo(ds, tmp, copy_images, final=dst.absolute())
        else:
            WRITERS[format](ds, tmp, copy_images)
        write_splits(tmp, ds)
        write_sidecar(tmp, ds, format)
    return dst
