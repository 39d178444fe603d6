"""Small, honest synthetic learning bases for the data tests: real image files written with Pillow and
annotation files written as the tools that produce them write them (LabelImg XML, YOLO text, COCO and
Create ML JSON), independently of maskwatch's own writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# name, width, height, boxes (label, x1, y1, x2, y2) — as written in the source files
BOXES: list[tuple[str, int, int, list[tuple[str, float, float, float, float]]]] = [
    ("img1.jpg", 64, 48, [("with_mask", 2, 3, 20, 30), ("without_mask", 30, 4, 62, 40)]),
    (
        "img2.png",
        80,
        60,
        [("mask_weared_incorrect", 10, 10, 50, 50), ("with_mask", 60, 5, 81, 30)],
    ),  # past the edge
    ("img3.jpg", 50, 50, [("with_mask", 5, 5, 5, 20), ("with_mask", 1, 1, 49, 49)]),  # one degenerate
    ("img4.jpg", 40, 30, []),  # no boxes
    ("img5.jpg", 120, 100, [("without_mask", 0, 0, 120, 100), ("with_mask", 10.5, 20.25, 30.5, 40.75)]),
    ("img6.jpg", 64, 64, [("with_mask", 8, 8, 40, 40)]),
]
CLASSES_IN_ORDER = ["with_mask", "without_mask", "mask_weared_incorrect"]  # VOC: first appearance


def write_image(path: Path, width: int, height: int, seed: int = 0, mode: str = "RGB") -> Path:
    """A noise image (distinct per seed, so perceptual hashes differ), saved by its extension."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).convert(mode).save(path)
    return path


def voc_xml(name: str, width: int, height: int, boxes: list[tuple[str, float, float, float, float]]) -> str:
    objects = "".join(
        f"<object><name>{lab}</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for lab, x1, y1, x2, y2 in boxes
    )
    return (
        f"<annotation><folder>images</folder><filename>{name}</filename>"
        f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>{objects}</annotation>"
    )


def make_voc(root: Path, spec=BOXES) -> Path:
    """Kaggle layout: images/ + annotations/."""
    for i, (name, w, h, boxes) in enumerate(spec):
        write_image(root / "images" / name, w, h, seed=i)
        xml = root / "annotations" / f"{Path(name).stem}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        xml.write_text(voc_xml(name, w, h, boxes))
    return root


def expected_boxes(spec=BOXES) -> dict[str, list[tuple[str, list[float]]]]:
    """What a correct reader returns: boxes clipped to the image, degenerate ones dropped."""
    out = {}
    for name, w, h, boxes in spec:
        kept = []
        for lab, x1, y1, x2, y2 in boxes:
            b = [min(max(x1, 0), w), min(max(y1, 0), h), min(max(x2, 0), w), min(max(y2, 0), h)]
            if b[2] > b[0] and b[3] > b[1]:
                kept.append((lab, b))
        out[Path(name).stem] = kept
    return out


def make_yolo_labelimg(root: Path, classes: list[str], spec=BOXES) -> Path:
    """LabelImg's YOLO layout: images and .txt side by side, classes.txt."""
    (root).mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in classes))
    for i, (name, w, h, boxes) in enumerate(spec):
        write_image(root / name, w, h, seed=i)
        lines = [
            f"{classes.index(lab)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
            f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            for lab, x1, y1, x2, y2 in boxes
        ]
        (root / f"{Path(name).stem}.txt").write_text("".join(f"{line}\n" for line in lines))
    return root


def make_coco(root: Path, classes: list[str], spec=BOXES) -> Path:
    """Detectron2 layout: annotations/instances.json + images/ (file_name relative to images/)."""
    images, annotations = [], []
    for i, (name, w, h, boxes) in enumerate(spec):
        write_image(root / "images" / name, w, h, seed=i)
        images.append({"id": 100 + i, "file_name": name, "width": w, "height": h})
        for lab, x1, y1, x2, y2 in boxes:
            annotations.append(
                {
                    "id": len(annotations) + 7,
                    "image_id": 100 + i,
                    "category_id": 10 + classes.index(lab),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": 10 + i, "name": c} for i, c in enumerate(classes)]
    path = root / "annotations" / "instances.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


def make_createml(root: Path, spec=BOXES) -> Path:
    """Create ML layout: the JSON list beside the images, centre-based pixel boxes."""
    items = []
    for i, (name, w, h, boxes) in enumerate(spec):
        write_image(root / name, w, h, seed=i)
        anns = [
            {
                "label": lab,
                "coordinates": {"x": (x1 + x2) / 2, "y": (y1 + y2) / 2, "width": x2 - x1, "height": y2 - y1},
            }
            for lab, x1, y1, x2, y2 in boxes
        ]
        items.append({"image": name, "verified": True, "annotations": anns})
    (root / "annotations.json").write_text(json.dumps(items))
    return root


def as_boxes(ds) -> dict[str, list[tuple[str, list[float]]]]:
    """A dataset's boxes per image stem, comparable with :func:`expected_boxes`."""
    return {
        r.stem: [(lab, list(map(float, b))) for lab, b in zip(r.labels, r.boxes, strict=True)] for r in ds
    }


def assert_same_boxes(got, expected, tol: float = 1e-3) -> None:
    assert set(got) == set(expected)
    for stem, boxes in expected.items():
        assert [lab for lab, _ in got[stem]] == [lab for lab, _ in boxes], stem
        for (_, g), (_, e) in zip(got[stem], boxes, strict=True):
            assert np.allclose(g, e, atol=tol), (stem, g, e)
