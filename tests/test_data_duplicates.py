"""``maskwatch data duplicates``: near-duplicate images and how their labels agree, on a synthetic base
whose copies and label differences are known by construction, and on the Kaggle set."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.boxes import box_iou, match_boxes
from maskwatch.cli import main
from maskwatch.data.duplicates import find_duplicates, format_duplicates
from maskwatch.data.formats import load_dataset
from tests.data_synth import voc_xml

FACES = [
    ("with_mask", 40, 40, 100, 120),
    ("without_mask", 200, 50, 260, 130),
    ("with_mask", 150, 150, 180, 190),
]


def smooth_image(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """Coarse random shapes blown up: structure the difference hash sees, unlike pixel noise."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)


def add(
    root: Path, name: str, image: Image.Image, boxes: list[tuple[str, float, float, float, float]]
) -> None:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    image.save(root / "images" / name, quality=92)
    w, h = image.size
    (root / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, w, h, boxes))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``a`` labelled three ways: ``a_small`` is ``a`` at half size with its first face 2 px (4 px in
    ``a``'s pixels) to the right, its second face given the other class and its third not boxed;
    ``a_crop`` is ``a`` with 8 columns cut off (framed differently); ``b`` is another picture."""
    root = tmp_path_factory.mktemp("dups")
    a = smooth_image(0)
    add(root, "a.jpg", a, FACES)
    half = [("with_mask", 22, 20, 52, 60), ("with_mask", 100, 25, 130, 65)]
    add(root, "a_small.jpg", a.resize((160, 120), Image.Resampling.BILINEAR), half)
    add(
        root,
        "a_crop.jpg",
        a.crop((8, 0, 320, 240)),
        [(lab, x1 - 8, y1, x2 - 8, y2) for lab, x1, y1, x2, y2 in FACES],
    )
    add(root, "b.jpg", smooth_image(1), [("with_mask", 10, 10, 50, 60)])
    return root


def test_match_boxes_is_the_best_one_to_one_pairing() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        xy = rng.uniform(0, 60, (9, 2))
        wh = rng.uniform(10, 30, (9, 2))
        boxes = np.concatenate([xy, xy + wh], axis=1)
        a, b = boxes[:4], boxes[4:]
        rows, cols, ious = match_boxes(a, b, 0.1)
        iou = box_iou(a, b)
        assert np.allclose(ious, iou[rows, cols]) and (ious >= 0.1).all()
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
        best = max(
            sum(iou[i, j] for i, j in zip(range(4), perm, strict=False) if iou[i, j] >= 0.1)
            for perm in itertools.permutations(range(5), 4)
        )
        assert ious.sum() == pytest.approx(best)
    assert [len(x) for x in match_boxes(np.zeros((0, 4)), b, 0.1)] == [0, 0, 0]


def test_copies_compared_face_by_face(base: Path) -> None:
    ds = load_dataset(base)
    report = find_duplicates(ds)
    stems = [ds.records[i].stem for i in report.groups[0]]
    assert len(report.groups) == 1 and sorted(stems) == ["a", "a_crop", "a_small"]
    assert report.reframed == 2 and len(report.copies) == 1
    pair = report.copies[0]
    assert {pair.stem_a, pair.stem_b} == {"a", "a_small"}
    ious = sorted(f.iou for f in pair.faces)
    assert ious == pytest.approx([56 * 80 / (2 * 60 * 80 - 56 * 80), 1.0])  # 4 px shift of a 60x80 face
    assert pair.class_differs == 1 and len(pair.only_a) + len(pair.only_b) == 1 and pair.disagrees
    s = report.summary()
    assert (
        s["faces_drawn_twice"] == 2
        and s["copied_labels"] == 0
        and s["class_differs"] == 1
        and s["one_copy_only"] == 1
    )
    assert s["iou_mean"] == pytest.approx(np.mean(ious))
    assert s["iou_at_least"] == {"0.5": 1.0, "0.75": 1.0, "0.9": 0.5}
    # the shifted face moved 4 px of 60 on both sides, the other not at all: sd of (4/60, 0) over sqrt(2)
    spread = s["side_spread"]
    assert spread["left"] == pytest.approx(np.std([4 / 60, 0], ddof=1) / np.sqrt(2))
    assert spread["top"] == pytest.approx(0.0, abs=1e-9)


def test_cli_table_json_and_sheet(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    js, png = tmp_path / "d.json", tmp_path / "d.png"
    assert main(["data", "duplicates", str(base), "--json", str(js), "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert "1 groups of near-duplicates (3 images)\n1 pairs are one picture up to scale" in out
    assert "class differs: 1 face; boxed on one copy only: 1 face" in out
    assert "a_small" in out and "IoU 1.00, 0.88" in out
    data = json.loads(js.read_text())
    assert [sorted(g) for g in data["near_duplicate_groups"]] == [["a.jpg", "a_crop.jpg", "a_small.jpg"]]
    faces = data["pairs"][0]["faces"]
    assert sorted(f["label_a"] != f["label_b"] for f in faces) == [False, True]
    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3)
    assert Image.open(png).width == 256
    for colour in ((0, 220, 0), (255, 0, 255)):  # both labellings drawn
        assert (np.abs(pixels.astype(int) - colour).sum(axis=1) < 60).sum() > 50


def test_cli_bad_options(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for argv, message in [
        (["data", "duplicates", str(tmp_path / "nothing")], "nothing"),
        (["data", "duplicates", str(base), "--out", str(tmp_path / "x.txt")], "give a .jpg or .png file"),
        (["data", "duplicates", str(base), "--max-distance", "65"], "between 0 and 64"),
        (["data", "duplicates", str(base), "--json", str(base / "annotations" / "a.xml")], "a.xml"),
    ]:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert (base / "annotations" / "a.xml").read_text().startswith("<annotation>")


@pytest.mark.usefixtures("kaggle")
def test_kaggle_copies_agree_as_measured(kaggle: Path) -> None:
    """The shared Kaggle images hold near-duplicate pairs (its README: 14); their labels mostly agree."""
    ds = load_dataset(kaggle, merge=["without_mask,mask_weared_incorrect=no_mask"])
    s = find_duplicates(ds).summary()
    assert s["groups"] >= 14 and s["copies_compared"] >= 10
    assert s["faces_drawn_twice"] >= 100 and s["iou_median"] > 0.75 and s["class_differs"] <= 2


def test_copied_labels_are_not_counted_as_drawn_twice(tmp_path: Path) -> None:
    image = smooth_image(2)
    add(tmp_path, "c.jpg", image, FACES)
    add(tmp_path, "c_again.jpg", image.resize((640, 480)), [(lab, *(2 * v for v in b)) for lab, *b in FACES])
    report = find_duplicates(load_dataset(tmp_path))
    s = report.summary()
    assert len(report.copies) == 1 and report.copies[0].copied and not report.copies[0].disagrees
    assert s["copied_labels"] == 1 and s["faces_drawn_twice"] == 0 and s["iou_mean"] is None
    assert "1 pairs carry the same boxes" in format_duplicates(report, "x")
