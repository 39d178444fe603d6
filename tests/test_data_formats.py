"""Readers and writers of the four formats on small synthetic bases written the way the real tools write
them: same pixels in every format, clipping and dropping as documented, class order and class map kept."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO

from maskwatch.data.formats import FORMATS, detect_format, load_dataset, save_dataset
from maskwatch.data.record import Dataset
from maskwatch.data.yolo import label_path
from maskwatch.errors import MaskwatchError
from tests.data_synth import (
    BOXES,
    CLASSES_IN_ORDER,
    as_boxes,
    assert_same_boxes,
    expected_boxes,
    make_coco,
    make_createml,
    make_voc,
    make_yolo_labelimg,
    write_image,
)

SOURCE_ORDER = ["without_mask", "mask_weared_incorrect", "with_mask"]  # deliberately not alphabetical


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_voc(tmp_path_factory.mktemp("voc"))


def test_voc_reader_clips_drops_and_warns_once(voc: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="maskwatch"):
        ds = load_dataset(voc)
    assert_same_boxes(as_boxes(ds), expected_boxes(), tol=0)  # VOC coordinates as written, no 1-px shift
    assert ds.classes == CLASSES_IN_ORDER
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "dropped 1 degenerate box(es)" in warnings[0]
    sizes = {r.stem: (r.width, r.height) for r in ds}
    assert sizes == {Path(n).stem: (w, h) for n, w, h, _ in BOXES}


def test_yolo_labelimg_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = make_yolo_labelimg(tmp_path / "y", SOURCE_ORDER)
    assert detect_format(root) == "yolo"
    with caplog.at_level(logging.WARNING, logger="maskwatch"):
        ds = load_dataset(root)
    assert ds.classes == SOURCE_ORDER, "class order is the source's (classes.txt)"
    assert_same_boxes(as_boxes(ds), expected_boxes(), tol=1e-3)
    assert "dropped 1 degenerate" in caplog.text


def test_ultralytics_layout_with_splits_dict_names_and_polygons(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    for split, name, w, h in (
        ("train", "a.jpg", 100, 50),
        ("train", "b.png", 60, 60),
        ("val", "c.jpg", 40, 80),
    ):
        write_image(root / "images" / split / name, w, h, seed=len(name) + w)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.2 0.2\n")
    (root / "labels" / "val" / "c.txt").write_text("0 0.25 0.25 0.75 0.25 0.75 0.5 0.25 0.5\n")  # a polygon
    (root / "data.yaml").write_text(
        yaml.safe_dump(
            {
                "path": "ds-moved-away",
                "train": "images/train",
                "val": "images/val",
                "names": {0: "no_mask", 1: "mask"},
            }
        )
    )
    ds = load_dataset(root)
    assert ds.classes == ["no_mask", "mask"]
    assert ds.splits == {"train": ["a", "b"], "val": ["c"]}
    got = as_boxes(ds)
    assert got["a"] == [("mask", [40.0, 15.0, 60.0, 35.0]), ("no_mask", [0.0, 0.0, 20.0, 10.0])]
    assert got["b"] == []
    assert got["c"] == [("no_mask", [10.0, 20.0, 30.0, 40.0])]
    assert load_dataset(root / "data.yaml").splits == ds.splits, "the YAML itself is a valid PATH"


def test_coco_reader_keeps_category_order_and_finds_image_root(tmp_path: Path, caplog) -> None:
    root = make_coco(tmp_path / "c", SOURCE_ORDER)
    data = json.loads((root / "annotations" / "instances.json").read_text())
    data["annotations"].append(dict(data["annotations"][0], id=999, iscrowd=1))
    (root / "annotations" / "instances.json").write_text(json.dumps(data))
    assert detect_format(root) == "coco"
    with caplog.at_level(logging.WARNING, logger="maskwatch"):
        ds = load_dataset(root)
    assert ds.classes == SOURCE_ORDER
    assert_same_boxes(as_boxes(ds), expected_boxes(), tol=1e-9)
    assert "skipped 1 crowd region" in caplog.text and "dropped 1 degenerate" in caplog.text
    assert all(r.image.parent == root / "images" for r in ds)


def test_createml_reader(tmp_path: Path) -> None:
    root = make_createml(tmp_path / "m")
    assert detect_format(root) == "createml" and detect_format(root / "annotations.json") == "createml"
    ds = load_dataset(root)
    assert ds.classes == CLASSES_IN_ORDER
    assert_same_boxes(as_boxes(ds), expected_boxes(), tol=1e-9)
    assert [(r.width, r.height) for r in ds] == [(w, h) for _, w, h, _ in BOXES], "sizes from image headers"


def _with_split(ds: Dataset) -> Dataset:
    stems = [r.stem for r in ds]
    ds.splits = {"train": stems[:3], "val": stems[3:5], "test": stems[5:]}
    return ds


@pytest.mark.parametrize("first", FORMATS)
@pytest.mark.parametrize("second", FORMATS)
def test_round_trip_every_pair(first: str, second: str, voc: Path, tmp_path: Path) -> None:
    original = _with_split(load_dataset(voc, merge=["mask_weared_incorrect=without_mask"]))
    save_dataset(original, tmp_path / "a", first)
    a = load_dataset(tmp_path / "a")
    save_dataset(a, tmp_path / "b", second)
    b = load_dataset(tmp_path / "b")
    for ds, formats in ((a, {first}), (b, {first, second})):
        # VOC holds whole pixels (LabelImg and int()-parsing readers reject 10.5): one rounding, then exact
        assert_same_boxes(as_boxes(ds), as_boxes(original), tol=0.5 if "voc" in formats else 1e-3)
        assert ds.classes == original.classes == ["with_mask", "without_mask"]
        assert ds.splits == original.splits
        assert ds.merge == {"mask_weared_incorrect": "without_mask"}
        assert {r.stem: (r.width, r.height) for r in ds} == {r.stem: (r.width, r.height) for r in original}
    for r, o in zip(sorted(b, key=lambda r: r.stem), sorted(original, key=lambda r: r.stem), strict=True):
        assert r.image.read_bytes() == o.image.read_bytes(), "images are linked or copied, never re-encoded"


def test_written_files_record_the_class_map(voc: Path, tmp_path: Path) -> None:
    ds = load_dataset(voc, merge=["without_mask,mask_weared_incorrect=no_mask"])
    merge = {"without_mask": "no_mask", "mask_weared_incorrect": "no_mask"}
    for fmt in FORMATS:
        save_dataset(ds, tmp_path / fmt, fmt)
        sidecar = json.loads((tmp_path / fmt / "maskwatch.json").read_text())
        assert sidecar["classes"] == ["with_mask", "no_mask"] and sidecar["merge"] == merge
        assert sidecar["format"] == fmt
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "with_mask"), (2, "no_mask")]
    assert coco["info"]["maskwatch"]["merge"] == merge
    assert (tmp_path / "yolo" / "classes.txt").read_text() == "with_mask\nno_mask\n"
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["names"] == {0: "with_mask", 1: "no_mask"} and data["maskwatch"]["merge"] == merge
    assert data["train"] == data["val"] == "images" and Path(data["path"]) == (tmp_path / "yolo").absolute()


def test_yolo_output_is_what_ultralytics_and_labelimg_read(voc: Path, tmp_path: Path) -> None:
    ds = _with_split(load_dataset(voc))
    save_dataset(ds, tmp_path / "y", "yolo")
    data = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert (data["train"], data["val"], data["test"]) == ("images/train", "images/val", "images/test")
    for split, stems in ds.splits.items():
        for stem in stems:
            (image,) = (tmp_path / "y" / "images" / split).glob(f"{stem}.*")
            assert label_path(image) == tmp_path / "y" / "labels" / split / f"{stem}.txt"
            assert label_path(image).is_file()
    line = (tmp_path / "y" / "labels" / "train" / "img1.txt").read_text().splitlines()[0]
    assert line == "0 0.171875 0.343750 0.281250 0.562500", "class cx cy w h normalised, 6 decimals"


def test_coco_output_loads_in_pycocotools(voc: Path, tmp_path: Path) -> None:
    ds = _with_split(load_dataset(voc))
    save_dataset(ds, tmp_path / "c", "coco")
    coco = COCO(str(tmp_path / "c" / "annotations.json"))
    assert len(coco.getImgIds()) == len(ds) and len(coco.getAnnIds()) == ds.num_boxes
    img = coco.loadImgs(coco.getImgIds())[0]
    assert (tmp_path / "c" / "images" / img["file_name"]).is_file(), "file_name is relative to images/"
    for split, stems in ds.splits.items():
        part = json.loads((tmp_path / "c" / f"instances_{split}.json").read_text())
        assert sorted(Path(i["file_name"]).stem for i in part["images"]) == sorted(stems)


def test_coco_single_file_references_images_in_place(voc: Path, tmp_path: Path) -> None:
    ds = load_dataset(voc)
    out = tmp_path / "sub" / "faces.json"
    save_dataset(ds, out, "coco")
    assert [p.name for p in out.parent.iterdir()] == ["faces.json"], "no image copied"
    names = [i["file_name"] for i in json.loads(out.read_text())["images"]]
    assert all(n.startswith("../../") for n in names)
    again = load_dataset(out)
    assert [r.image.resolve() for r in again] == [r.image.resolve() for r in ds]
    assert_same_boxes(as_boxes(again), as_boxes(ds), tol=0)
    with pytest.raises(MaskwatchError, match="COCO only"):
        save_dataset(ds, tmp_path / "x.json", "yolo")


def test_empty_class_survives_formats_without_class_list(tmp_path: Path) -> None:
    root = make_coco(tmp_path / "c", [*SOURCE_ORDER, "face_shield"])  # declared, never used
    for fmt in ("voc", "createml"):
        save_dataset(load_dataset(root), tmp_path / fmt, fmt)
        assert load_dataset(tmp_path / fmt).classes == [*SOURCE_ORDER, "face_shield"]


def test_destination_guards(voc: Path, tmp_path: Path) -> None:
    ds = load_dataset(voc)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(MaskwatchError, match="not written by maskwatch"):
        save_dataset(ds, foreign, "voc")
    assert (foreign / "notes.txt").read_text() == "keep me"
    with pytest.raises(MaskwatchError, match="holds the source image"):
        save_dataset(ds, voc.parent, "voc")
    save_dataset(ds, tmp_path / "out", "voc")
    save_dataset(ds, tmp_path / "out", "coco")  # a maskwatch output may be replaced
    assert detect_format(tmp_path / "out") == "coco" and not (tmp_path / "out" / "annotations").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "out"], "no temporary folder left"


def test_clashing_image_stems_are_refused_on_write(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        write_image(tmp_path / "images" / sub / "x.jpg", 10, 10)
    images = [{"id": i, "file_name": f"{s}/x.jpg", "width": 10, "height": 10} for i, s in enumerate("ab")]
    (tmp_path / "ann.json").write_text(json.dumps({"images": images, "annotations": [], "categories": []}))
    ds = load_dataset(tmp_path / "ann.json")
    assert len(ds) == 2
    with pytest.raises(MaskwatchError, match=r"two images named 'x'.*maskwatch data merge"):
        save_dataset(ds, tmp_path / "out", "voc")
    assert not (tmp_path / "out").exists()


def test_voc_written_as_labelimg_does(voc: Path, tmp_path: Path) -> None:
    save_dataset(load_dataset(voc), tmp_path / "v", "voc")
    xml = (tmp_path / "v" / "annotations" / "img2.xml").read_text()
    assert "<filename>img2.png</filename>" in xml and "<xmax>80</xmax>" in xml, (
        "clipped, integers stay integers"
    )
    assert "<width>80</width>" in xml
    im = Image.open(tmp_path / "v" / "images" / "img2.png")
    assert im.format == "PNG"
    assert np.array_equal(np.asarray(im), np.asarray(Image.open(voc / "images" / "img2.png")))
