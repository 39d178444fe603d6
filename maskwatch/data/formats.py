"""Format detection and the one entry point to read or write a learning base in any format."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from maskwatch.data.classmap import apply_merge, parse_merge
from maskwatch.data.record import Dataset
from maskwatch.data.voc import read_voc, voc_xml_files
from maskwatch.errors import MaskwatchError

FORMATS = ("voc", "yolo", "coco", "createml")


def detect_format(path: Path) -> str:
    """Guess the annotation format of a file or folder."""
    if path.is_dir() and voc_xml_files(path):
        return "voc"
    raise MaskwatchError(f"{path}: cannot tell the annotation format; pass --format {'|'.join(FORMATS)}")


def load_dataset(path: str | Path, format: str = "auto", merge: Sequence[str] | None = None) -> Dataset:
    """Read a learning base and apply ``--merge`` specs."""
    path = Path(path)
    if not path.exists():
        raise MaskwatchError(f"{path}: no such file or directory")
    fmt = detect_format(path) if format == "auto" else format
    if fmt == "voc":
        ds = read_voc(path)
    else:
        raise MaskwatchError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    return apply_merge(ds, parse_merge(merge))
