"""PASCAL VOC XML, as LabelImg and the Kaggle "Face Mask Detection" set write it.

Layouts accepted: ``ROOT/annotations/*.xml`` + ``ROOT/images/*``, or XML files beside their images.
Coordinates are taken as written; the image size comes from the XML, or from the image header when the
XML has none.

Written as the Kaggle layout, ``annotations/<stem>.xml`` + ``images/<name>``, or (``beside=True``) as
LabelImg itself saves, each ``<stem>.xml`` beside its image: VOC names an image by file name only, so the
images must sit in the folder (hard-linked, not re-encoded). VOC has no class list; the ``maskwatch.json``
sidecar keeps the class order and the merge map. Coordinates are written as whole pixels: VOC readers
(LabelImg, many training scripts) parse them with ``int()`` and reject ``695.787``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from maskwatch.data.layout import known_size
from maskwatch.data.record import Annotation, Dataset, classes_in_order, finalize_records
from maskwatch.errors import MaskwatchError
from maskwatch.io import IMAGE_EXTENSIONS, atomic_write, link_or_copy, progress


def voc_xml_files(root: Path) -> list[Path]:
    ann = root / "annotations" if (root / "annotations").is_dir() else root
    if (root / "Annotations").is_dir():
        ann = root / "Annotations"
    return sorted(ann.glob("*.xml"))


def _find_image(xml_path: Path, root: Path, filename: str | None, path_field: str | None) -> Path:
    stem = Path(filename).stem if filename else xml_path.stem
    names = [filename] if filename else []
    names += [stem + ext for ext in IMAGE_EXTENSIONS]
    dirs = [root / "images", root / "JPEGImages", xml_path.parent, xml_path.parent.parent / "images"]
    for d in dirs:
        for n in names:
            if (d / n).is_file():
                return d / n
    if path_field and Path(path_field).is_file():
        return Path(path_field)
    raise MaskwatchError(f"{xml_path}: image {filename or stem!r} not found")


def _number(node: ET.Element, tag: str, xml_path: Path) -> float:
    text = node.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MaskwatchError(f"{xml_path}: <{tag}> is missing or not a number ({text!r})") from None


def read_voc_file(xml_path: Path, root: Path) -> Annotation:
    """Parse one LabelImg/VOC XML file."""
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as e:
        raise MaskwatchError(f"{xml_path}: malformed XML ({e})") from None
    node = tree.getroot()
    image = _find_image(xml_path, root, node.findtext("filename"), node.findtext("path"))
    w, h = known_size(image, node.findtext("size/width"), node.findtext("size/height"))
    boxes, labels = [], []
    for obj in node.iter("object"):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if not name or bb is None:
            raise MaskwatchError(f"{xml_path}: <object> without <name> or <bndbox>")
        boxes.append([_number(bb, t, xml_path) for t in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(name)
    return Annotation(image, w, h, np.array(boxes, dtype=np.float64).reshape(-1, 4), labels)


def read_voc(root: Path) -> Dataset:
    """Read every XML file of a VOC folder."""
    files = voc_xml_files(root)
    if not files:
        raise MaskwatchError(f"{root}: no VOC .xml annotation files found")
    records = finalize_records([read_voc_file(p, root) for p in progress(files, "reading VOC")], str(root))
    return Dataset(records, classes_in_order(records), root)


def integer_box(box: np.ndarray, width: int, height: int) -> list[int]:
    """Round a box to whole pixels inside the image, keeping at least one pixel of width and height (a
    sub-pixel box must not round to an empty one that readers drop)."""
    x1, y1, x2, y2 = (round(float(v)) for v in box)
    x1, x2 = min(max(x1, 0), width - 1), min(max(x2, 0), width)
    y1, y2 = min(max(y1, 0), height - 1), min(max(y2, 0), height)
    return [x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)]


def voc_xml(rec: Annotation, image_name: str, folder: str = "images") -> str:
    """The LabelImg-style XML text for one record (integer coordinates, as LabelImg writes them)."""
    ann = ET.Element("annotation")
    ET.SubElement(ann, "folder").text = folder
    ET.SubElement(ann, "filename").text = image_name
    source = ET.SubElement(ann, "source")
    ET.SubElement(source, "database").text = "Unknown"
    size = ET.SubElement(ann, "size")
    for tag, v in (("width", rec.width), ("height", rec.height), ("depth", 3)):
        ET.SubElement(size, tag).text = str(v)
    ET.SubElement(ann, "segmented").text = "0"
    for box, label in zip(rec.boxes, rec.labels, strict=True):
        obj = ET.SubElement(ann, "object")
        ET.SubElement(obj, "name").text = label
        for tag, text in (("pose", "Unspecified"), ("truncated", "0"), ("difficult", "0")):
            ET.SubElement(obj, tag).text = text
        bb = ET.SubElement(obj, "bndbox")
        for tag, v in zip(
            ("xmin", "ymin", "xmax", "ymax"), integer_box(box, rec.width, rec.height), strict=True
        ):
            ET.SubElement(bb, tag).text = str(v)
    ET.indent(ann)
    return ET.tostring(ann, encoding="unicode") + "\n"


def write_voc_file(rec: Annotation, path: Path, image_name: str) -> None:
    with atomic_write(path) as f:
        f.write(voc_xml(rec, image_name))


def write_voc(
    ds: Dataset, out: Path, copy_images: bool = False, beside: bool = False, folder: str | None = None
) -> None:
    """Write ``ds`` into the (new, empty) folder ``out``: the Kaggle layout, or with ``beside`` the one
    LabelImg opens directly (``labelImg DIR DIR/classes.txt DIR``): XML beside each image, ``classes.txt``.

    ``folder`` is the name recorded in ``<folder>`` (``out`` is usually a staging folder renamed later).
    """
    images = out if beside else out / "images"
    annotations = out if beside else out / "annotations"
    annotations.mkdir(parents=True, exist_ok=True)
    for r in progress(ds.records, "writing VOC"):
        link_or_copy(r.image, images / r.name, copy_images)
        xml = voc_xml(r, r.name, folder=folder or ("images" if not beside else out.name))
        (annotations / f"{r.stem}.xml").write_text(xml, encoding="utf-8")
    if beside:
        (out / "classes.txt").write_text("".join(f"{c}\n" for c in ds.classes), encoding="utf-8")
