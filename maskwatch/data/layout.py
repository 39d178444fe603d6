"""What every on-disk learning-base layout shares: image placement, the ``maskwatch.json`` sidecar, split
files and centre-based box conversion.

Format modules use these helpers and never each other, so a format can change without touching another.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskwatch import __version__
from maskwatch.data.record import Dataset
from maskwatch.data.split import read_split_dir, read_split_file, write_split
from maskwatch.errors import MaskwatchError
from maskwatch.io import IMAGE_EXTENSIONS, image_size, read_json, write_json

SIDECAR = "maskwatch.json"
SPLIT_DIR = "splits"


def is_image(path: Path) -> bool:
    """The one image-discovery rule (data, ``prelabel``, ``detect``): a known image extension, any case,
    and not a hidden file (editors, macOS ``._x.jpg`` resource forks and atomic writes leave those)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def image_files(directory: Path, recursive: bool = False) -> list[Path]:
    """Image files in a folder (:func:`is_image`), sorted."""
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if is_image(p) and p.is_file())


def find_images(source: str | Path) -> list[Path]:
    """Images of a folder, a glob pattern, or a single file (named explicitly, so taken whatever its name)."""
    path = Path(source)
    if path.is_dir():
        files = image_files(path)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(
            p for p in map(Path, glob.glob(str(source), recursive=True)) if is_image(p) and p.is_file()
        )
    if not files:
        raise MaskwatchError(f"{source}: no images found")
    return files


def find_image(name: str, directories: Sequence[Path], source: Path) -> Path:
    """The first ``directory/name`` that exists; the error names the annotation file that wanted it."""
    for d in directories:
        candidate = d / name
        if candidate.is_file():
            return candidate
    where = ", ".join(str(d) for d in dict.fromkeys(directories))
    raise MaskwatchError(f"{source}: image {name!r} not found (looked in {where})")


def known_size(image: Path, width: Any, height: Any) -> tuple[int, int]:
    """The size the annotation states, or the image header's when it states none (pixels are not read)."""
    try:
        w, h = int(float(width)), int(float(height))
    except (TypeError, ValueError):
        w = h = 0
    return (w, h) if w > 0 and h > 0 else image_size(image)


def check_unique_stems(ds: Dataset) -> None:
    """Writers name label files and split entries by stem, so two images with one stem would collide."""
    seen: dict[str, Path] = {}
    for r in ds:
        key = r.stem.lower()  # case-insensitive filesystems would collide too
        if key in seen:
            raise MaskwatchError(
                f"two images named {r.stem!r} ({seen[key]}, {r.image}): rename one, or combine the sources "
                "with 'maskwatch data merge', which renames clashing images"
            )
        seen[key] = r.image


def json_top(path: Path) -> str:
    """The first significant character of a JSON file: ``{`` for COCO, ``[`` for CreateML."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as e:
        raise MaskwatchError(f"{path}: cannot read ({e.strerror})") from None
    return head[:1].decode("ascii", "replace")


def find_json(root: Path, preferred: Sequence[str], top: str) -> Path | None:
    """The annotation JSON of a folder: a preferred name, else the only JSON (in ``root`` or
    ``root/annotations``) whose top level is ``top``. Several candidates is an error, not a guess."""
    if root.is_file():
        return root
    for name in preferred:
        if (root / name).is_file() and json_top(root / name) == top:
            return root / name
    folders = [root, root / "annotations"]
    found = [
        p
        for d in folders
        if d.is_dir()
        for p in sorted(d.glob("*.json"))
        if p.name != SIDECAR and not p.name.startswith(".") and json_top(p) == top
    ]
    if len(found) > 1:
        names = ", ".join(p.name for p in found[:4])
        raise MaskwatchError(f"{root}: several annotation JSON files ({names}); pass the one to read")
    return found[0] if found else None


def write_sidecar(out: Path, ds: Dataset, fmt: str) -> None:
    """Record the class map in the folder, so a reader can tell which classes were merged into which."""
    write_json(
        out / SIDECAR,
        {
            "maskwatch": __version__,
            "format": fmt,
            "classes": list(ds.classes),
            "merge": dict(ds.merge),
            "images": len(ds),
            "boxes": ds.num_boxes,
            "splits": {name: len(stems) for name, stems in ds.splits.items()},
        },
    )


def read_sidecar(root: Path) -> dict[str, Any] | None:
    """The sidecar of a folder written by maskwatch, or None for any other folder."""
    path = root / SIDECAR
    if not path.is_file():
        return None
    meta = read_json(path)
    classes = meta.get("classes") if isinstance(meta, dict) else None
    merge = meta.get("merge", {}) if isinstance(meta, dict) else None
    if not (
        isinstance(classes, list) and all(isinstance(c, str) for c in classes) and isinstance(merge, dict)
    ):
        raise MaskwatchError(f"{path}: not a maskwatch sidecar (needs a 'classes' list and a 'merge' map)")
    return meta


def write_splits(out: Path, ds: Dataset) -> None:
    if ds.splits:
        write_split(ds.splits, out / SPLIT_DIR)


def read_splits(path: Path) -> dict[str, list[str]]:
    """The one reading of a ``--split`` argument (``data stats/convert``, ``train``, ``eval``): a folder of
    ``train.txt``/``val.txt``/``test.txt``, or one stems file, which is a split named after the file."""
    if path.is_dir():
        return read_split_dir(path)
    if not path.is_file():
        raise MaskwatchError(f"{path}: split folder not found (nor a split file)")
    return {path.stem: read_split_file(path)}


def select_split(path: Path, name: str = "test") -> list[str]:
    """The stems ``--split`` names when one split is wanted: the file itself, or ``name``.txt in a folder."""
    if path.is_dir():
        splits = read_split_dir(path)
        if name not in splits:
            raise MaskwatchError(f"{path}: no {name}.txt (give the split file itself)")
        return splits[name]
    return read_split_file(path)


def attach_splits(ds: Dataset, directory: Path, required: bool) -> None:
    """Read split files (a folder or one file) into ``ds.splits``; names the split that lists images the
    set lacks."""
    if not required and not directory.is_dir():
        return
    splits = read_splits(directory)
    stems = {r.stem for r in ds}
    for name, listed in splits.items():
        missing = [s for s in listed if s not in stems]
        if missing:
            path = directory / f"{name}.txt" if directory.is_dir() else directory
            raise MaskwatchError(f"{path}: {len(missing)} image(s) not in the dataset, e.g. {missing[0]!r}")
    ds.splits = splits


def split_membership(ds: Dataset) -> dict[str, list[str]]:
    """Split names per image stem (an image may be listed in several splits)."""
    member: dict[str, list[str]] = {}
    for name, stems in ds.splits.items():
        for s in stems:
            member.setdefault(s, []).append(name)
    return member


def relative_posix(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` with forward slashes, as JSON and YAML files store paths."""
    return Path(os.path.relpath(path, start)).as_posix()
