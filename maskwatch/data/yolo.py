"""YOLO text labels: one ``.txt`` per image, a line ``class cx cy w h`` normalised to [0, 1].

Two layouts, both read and both written at once:

- LabelImg: ``classes.txt`` (one name a line) beside the label files, which sit beside their images or in
  ``labels/`` mirroring ``images/``.
- Ultralytics: ``data.yaml`` with ``names`` (list or ``{id: name}``), optional ``path`` (the root) and
  ``train``/``val``/``test`` (folders of images, ``.txt`` lists of images, or lists of those); labels
  are found by replacing the last ``/images/`` of an image path with ``/labels/``.

Written layout: ``images/[<split>/]<name>`` (hard-linked, never re-encoded: YOLO finds labels from image
paths, so the images must be in the tree), ``labels/[<split>/]<stem>.txt``, ``classes.txt`` and
``data.yaml``. Without splits ``train`` and ``val`` both name ``images`` (Ultralytics requires both keys),
so ``data.yaml`` also lists the real splits under ``maskwatch:``; a foreign YAML whose ``train`` and ``val``
name the same images is read as a base without a split. Images outside every split go to
``images/unsplit``.
Coordinates are written with 6 decimals (LabelImg's and Ultralytics' precision: under 0.01 px up to
10 000 px images). Polygon lines (Ultralytics segments) are read as their bounding box.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from maskwatch.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from maskwatch.data.layout import SIDECAR, image_files, split_membership
from maskwatch.data.record import Annotation, Dataset, finalize_records
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, image_size, link_or_copy, progress

log = logging.getLogger("maskwatch")

YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
SPLIT_KEYS = ("train", "val", "test")
UNSPLIT = "unsplit"


def find_yaml(root: Path) -> Path | None:
    """The Ultralytics dataset YAML of a folder: a usual name, else the only ``*.yaml`` with ``names``."""
    if root.is_file():
        return root
    for name in YAML_NAMES:
        if (root / name).is_file():
            return root / name
    found = [p for p in sorted(root.glob("*.y*ml")) if "names" in _load_yaml(p, quiet=True)]
    return found[0] if len(found) == 1 else None


def is_yolo_dir(root: Path) -> bool:
    return find_yaml(root) is not None or _classes_txt(root) is not None


def _classes_txt(root: Path) -> Path | None:
    for p in (root / "classes.txt", root / "labels" / "classes.txt"):
        if p.is_file():
            return p
    return None


def _load_yaml(path: Path, quiet: bool = False) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        if quiet:
            return {}
        raise MaskwatchError(f"{path}: malformed YAML ({' '.join(str(e).split())})") from None
    if not isinstance(data, dict):
        if quiet:
            return {}
        raise MaskwatchError(f"{path}: malformed YAML (expected a mapping with 'names')")
    return data


def _names(value: Any, source: Path) -> list[str]:
    """Ultralytics accepts ``names`` as a list or as ``{0: a, 1: b}``; ids must be 0..n-1."""
    if isinstance(value, dict):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            ids = []
        if ids != list(range(len(value))):
            raise MaskwatchError(f"{source}: 'names' ids must be 0..{len(value) - 1}")
        value = [value[k] if k in value else value[str(k)] for k in ids]
    if not isinstance(value, list) or not value or not all(isinstance(v, (str, int)) for v in value):
        raise MaskwatchError(f"{source}: 'names' must be a non-empty list of class names")
    return [str(v) for v in value]


def label_path(image: Path) -> Path:
    """Ultralytics' rule: the last ``/images/`` becomes ``/labels/``; else the label sits beside the image."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def _parse_labels(path: Path, names: list[str], width: int, height: int) -> tuple[np.ndarray, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return np.zeros((0, 4)), []  # an image without a label file has no boxes (Ultralytics' rule)
    except (OSError, UnicodeDecodeError) as e:
        raise MaskwatchError(f"{path}: unreadable label file ({e})") from None
    rows, labels = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            values = [float(v) for v in parts]
        except ValueError:
            values = []
        if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0) or not values[0].is_integer():
            raise MaskwatchError(
                f"{path}:{lineno}: expected 'class cx cy w h' (normalised), got {line.strip()!r}"
            )
        cls = int(values[0])
        if not 0 <= cls < len(names):
            raise MaskwatchError(f"{path}:{lineno}: class index {cls} out of range ({len(names)} classes)")
        if len(values) == 5:
            rows.append(cxcywh_to_xyxy(np.array(values[1:]))[0])
        else:  # a polygon: its bounding box
            xs, ys = values[1::2], values[2::2]
            rows.append([min(xs), min(ys), max(xs), max(ys)])
        labels.append(names[cls])
    boxes = np.array(rows, dtype=np.float64).reshape(-1, 4) * [width, height, width, height]
    return boxes, labels


def _check_orphans(image_dir: Path, images: list[Path]) -> None:
    """A label file whose image is gone is a missing image, not an image without boxes."""
    labels_dir = label_path(image_dir / "x.jpg").parent
    if labels_dir == image_dir or not labels_dir.is_dir():
        return  # labels beside images: any other .txt (a README) would look like an orphan
    expected = {label_path(p) for p in images}
    orphans = sorted(
        p
        for p in labels_dir.rglob("*.txt")
        if p not in expected and p.name != "classes.txt" and p.name[0] != "."
    )
    if orphans:
        raise MaskwatchError(f"{orphans[0]}: no image for this label file (looked in {image_dir})")


def _images_in(entry: Any, root: Path, source: Path, key: str) -> list[Path]:
    """Images named by one ``train``/``val``/``test`` entry: folders, ``.txt`` lists, or lists of those."""
    items = entry if isinstance(entry, list) else [entry]
    out: list[Path] = []
    for item in items:
        if not isinstance(item, str):
            raise MaskwatchError(f"{source}: '{key}' must be a path or a list of paths")
        p = Path(item) if Path(item).is_absolute() else root / item
        if p.is_dir():
            found = image_files(p, recursive=True)
            _check_orphans(p, found)
            out += found
        elif p.is_file() and p.suffix == ".txt":
            for line in p.read_text(encoding="utf-8").splitlines():
                name = line.strip().removeprefix("./")
                if name:
                    img = Path(name) if Path(name).is_absolute() else p.parent / name
                    out.append(img if img.is_file() else root / name)
        else:
            raise MaskwatchError(
                f"{source}: '{key}' names {p}, which is neither a folder nor a .txt image list"
            )
    return out


def _read_records(images: list[Path], names: list[str], beside: bool = False) -> list[Annotation]:
    """``beside``: LabelImg's flat folder, where labels sit next to the images whatever the folder's path
    (``/data/images/set/a.jpg`` must not look for ``/data/labels/set/a.txt``)."""
    records = []
    for img in progress(images, "reading YOLO"):
        w, h = image_size(img)  # YOLO stores no size: the header has it
        boxes, labels = _parse_labels(img.with_suffix(".txt") if beside else label_path(img), names, w, h)
        records.append(Annotation(img, w, h, boxes, labels))
    return records


def _read_ultralytics(yaml_path: Path) -> Dataset:
    data = _load_yaml(yaml_path)
    if "names" not in data:
        raise MaskwatchError(f"{yaml_path}: no 'names' (the class list)")
    names = _names(data["names"], yaml_path)
    root = yaml_path.parent
    if isinstance(data.get("path"), str):
        declared = Path(data["path"]) if Path(data["path"]).is_absolute() else root / data["path"]
        root = declared if declared.is_dir() else root  # a moved folder still reads from where it is
    entries = {k: data[k] for k in SPLIT_KEYS if data.get(k)}
    # A YAML written by maskwatch lists its real splits: train and val may both name all images only
    # because Ultralytics requires both keys. For any other YAML, identical train and val mean no split.
    ours = data.get("maskwatch")
    if not isinstance(ours, dict):
        ours = {}
    declared_splits = ours.get("splits") if isinstance(ours.get("splits"), list) else None
    entries.update(ours.get("extra_splits") or {})
    if ours.get(UNSPLIT):
        entries[UNSPLIT] = ours[UNSPLIT]
    by_image: dict[Path, None] = {}
    found: dict[str, list[str]] = {}
    for key, entry in entries.items():
        images = _images_in(entry, root, yaml_path, key)
        missing = [p for p in images if not p.is_file()]
        if missing:
            raise MaskwatchError(f"{yaml_path}: {key} image {missing[0]} not found")
        by_image.update(dict.fromkeys(images))
        found[key] = list(dict.fromkeys(p.stem for p in images))
    if not by_image:
        raise MaskwatchError(f"{yaml_path}: no images under train/val/test")
    if declared_splits is not None:
        splits = {k: found[k] for k in declared_splits if k in found}
    elif len(found) > 1 and len({frozenset(v) for v in found.values()}) == 1:
        splits = {}
    else:
        splits = found
    records = _dedupe(_read_records(list(by_image), names))
    return Dataset(finalize_records(records, str(yaml_path)), names, root, splits)


def _dedupe(records: list[Annotation]) -> list[Annotation]:
    """One record per stem: an image listed in two splits is one image in two lists."""
    by_stem: dict[str, Annotation] = {}
    for r in records:
        by_stem.setdefault(r.stem, r)
    if len(by_stem) < len(records):
        log.warning(
            "%d image name(s) appear in more than one split folder; each is read once",
            len(records) - len(by_stem),
        )
    return list(by_stem.values())


def _read_labelimg(root: Path) -> Dataset:
    classes_file = _classes_txt(root)
    if classes_file is None:
        raise MaskwatchError(
            f"{root}: no classes.txt or data.yaml with 'names' (YOLO labels need the class list)"
        )
    names = [line.strip() for line in classes_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise MaskwatchError(f"{classes_file}: empty class list")
    flat = not (root / "images").is_dir()
    image_dir = root if flat else root / "images"
    images = image_files(image_dir, recursive=not flat)
    if not images:
        raise MaskwatchError(f"{image_dir}: no images")
    if not flat:
        _check_orphans(image_dir, images)
    records = _dedupe(_read_records(images, names, beside=flat))
    return Dataset(finalize_records(records, str(root)), names, root)


def read_yolo(path: Path) -> Dataset:
    """Read a YOLO base from a folder or its ``data.yaml``."""
    yaml_path = find_yaml(path)
    if yaml_path is not None:
        return _read_ultralytics(yaml_path)
    if path.is_file():
        raise MaskwatchError(f"{path}: expected a folder or a data.yaml")
    return _read_labelimg(path)


def label_lines(rec: Annotation, index: dict[str, int]) -> str:
    """The label file text: ``class cx cy w h`` normalised, 6 decimals."""
    norm = xyxy_to_cxcywh(rec.boxes) / [rec.width, rec.height, rec.width, rec.height]
    return "".join(
        f"{index[lab]} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f}\n"
        for b, lab in zip(norm, rec.labels, strict=True)
    )


def write_yolo(ds: Dataset, out: Path, copy_images: bool = False, final: Path | None = None) -> None:
    """Write ``ds`` into the new folder ``out`` in both YOLO layouts; ``final`` is where ``out`` will be
    renamed to, recorded as ``path`` so Ultralytics and YOLOv5 find it from any working directory."""
    index = {c: i for i, c in enumerate(ds.classes)}
    member = split_membership(ds)
    used: set[str] = set()
    for r in progress(ds.records, "writing YOLO"):
        subdirs = member.get(r.stem, [UNSPLIT] if ds.splits else [""])
        used.update(subdirs)
        text = label_lines(r, index)
        for sub in subdirs:
            link_or_copy(r.image, out / "images" / sub / r.name, copy_images)
            lab = out / "labels" / sub / f"{r.stem}.txt"
            lab.parent.mkdir(parents=True, exist_ok=True)
            lab.write_text(text, encoding="utf-8")
    with atomic_write(out / "classes.txt") as f:
        f.write("".join(f"{c}\n" for c in ds.classes))
    standard = [k for k in ds.splits if k in SPLIT_KEYS]
    config: dict[str, Any] = {"path": str(final or out)}
    config.update({k: f"images/{k}" for k in standard})
    config.setdefault("train", "images" if not standard else config[standard[0]])
    config.setdefault("val", config["train"])  # Ultralytics requires both keys
    config["nc"] = len(ds.classes)
    config["names"] = dict(enumerate(ds.classes))
    ours: dict[str, Any] = {"classes": list(ds.classes), "merge": dict(ds.merge), "splits": list(ds.splits)}
    extra = {k: f"images/{k}" for k in ds.splits if k not in SPLIT_KEYS}
    if extra:
        ours["extra_splits"] = extra
    if UNSPLIT in used and ds.splits:
        ours[UNSPLIT] = f"images/{UNSPLIT}"
    config["maskwatch"] = ours
    with atomic_write(out / "data.yaml") as f:
        f.write(f"# written by maskwatch; the class map is also in {SIDECAR}\n")
        yaml.safe_dump(config, f, sort_keys=False, allow_unicode=True)
