"""The enrichment loop on real frames: pre-labels LabelImg opens (integer VOC beside each image,
classes.txt), a deterministic selection that never picks near-identical frames twice, unreadable images
skipped like ``detect`` does, and the review sheet rendered in a real headless Chromium."""

from __future__ import annotations

import csv
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from maskwatch.apps.select import NEAR_DUPLICATE_BITS, select
from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.data.split import dhash, popcount
from maskwatch.data.voc import read_voc_file
from maskwatch.models.registry import build_detector
from tests.media import screenshot

VIDEO = "group-mask-960x506.mp4"


@pytest.fixture(scope="module")
def face_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face detector checkpoint: the WIDER FACE weights in maskface-mnet (mask class not learned)."""
    det = build_detector("maskface-mnet", ["with_mask", "no_mask"])
    det.load_face_weights(shared / "weights/retinaface-mobilenet0.25/mobilenet0.25_Final.pth")
    path = tmp_path_factory.mktemp("model") / "faces.pt"
    det.save(path)
    return path


@pytest.fixture(scope="module")
def frames(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One frame a second of a real group video (15 frames, many near-identical: people barely move)."""
    out = tmp_path_factory.mktemp("frames") / "frames"
    assert main(["data", "frames", str(shared / "videos" / VIDEO), "--out", str(out), "--every", "1"]) == 0
    return out


@pytest.fixture(scope="module")
def selected(frames: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pl") / "selected"
    assert main(["data", "prelabel", str(frames), "--out", str(out), "--select", "4", "--by", "mixed"]) == 0
    return out


def _selection(folder: Path) -> list[dict[str, str]]:
    with open(folder / "selection.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_prelabel_writes_boxes_on_the_faces(kaggle: Path, face_model: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    stems = sorted(p.stem for p in sorted((kaggle / "images").glob("*.jpg"))[:3])
    for s in stems:
        shutil.copy(kaggle / "images" / f"{s}.jpg", frames)
    out = tmp_path / "labels"
    argv = ["data", "prelabel", str(frames), "--out", str(out), "--model", str(face_model), "--conf", "0.2"]
    assert main(argv) == 0
    ds = load_dataset(out)
    assert sorted(r.stem for r in ds) == stems
    assert set(ds.classes) <= {"with_mask", "no_mask"}
    truth = read_voc_file(kaggle / "annotations" / f"{stems[0]}.xml", kaggle)
    pred = next(r for r in ds if r.stem == stems[0])
    iou = box_iou(torch.as_tensor(truth.boxes), torch.as_tensor(pred.boxes))
    assert (iou.max(1).values > 0.5).all(), "every labelled face got a pre-label box"
    assert np.all(pred.boxes[:, 2] <= truth.width) and np.all(pred.boxes[:, 3] <= truth.height)


def test_prelabel_draws_the_chosen_box_style(tmp_path: Path) -> None:
    """``--box-style ilc`` pre-labels the same faces as the default style, in the tight style's boxes: the
    boxes the labeller would otherwise nudge. The detector gives both styles the same classes; the crop
    classifier, whose crop follows the drawn box, may decide a borderline face differently, so the classes
    are compared without it."""
    from maskwatch.assets import sample_dir
    from maskwatch.models.registry import load_detector

    outs = {}
    for style in ("kaggle", "ilc"):
        out = tmp_path / style
        args = ["data", "prelabel", str(sample_dir()), "--out", str(out), "--box-style", style]
        assert main([*args, "--no-classifier"]) == 0
        outs[style] = {r.stem: r for r in load_dataset(out)}
    assert (
        main(["data", "prelabel", str(sample_dir()), "--out", str(tmp_path / "two"), "--box-style", "ilc"])
        == 0
    )
    ilc, kaggle = load_detector(box_style="ilc"), load_detector(box_style="kaggle")
    # both stages: the classifier's background output re-ranks the faces, so those over the threshold may
    # differ from the detector's alone, and its box head moves each box half way to the one it draws in
    # the same style: every box is near one the ilc-style detector drew, nearer than to the kaggle style's
    for stem, r in {r.stem: r for r in load_dataset(tmp_path / "two")}.items():
        image = np.asarray(Image.open(sample_dir() / f"{stem}.jpg").convert("RGB"))
        near = {}
        for name, det in (("ilc", ilc), ("kaggle", kaggle)):
            drawn = det.predict([image], conf=0.005, iou=0.4, agnostic=False)[0]
            overlap = box_iou(
                torch.as_tensor(r.boxes, dtype=torch.float64), torch.as_tensor(drawn.xyxy).double()
            )
            near[name] = overlap.max(1).values
        assert len(r.boxes) > 0 and bool((near["ilc"] > 0.75).all()), near
        assert bool((near["ilc"] > near["kaggle"]).all()), near
    for stem, loose in outs["kaggle"].items():
        tight = outs["ilc"][stem]
        assert len(tight.boxes) == len(loose.boxes) > 0 and tight.labels == loose.labels
        assert not np.array_equal(tight.boxes, loose.boxes)
        image = np.asarray(Image.open(sample_dir() / f"{stem}.jpg").convert("RGB"))
        expected = ilc.predict([image], conf=0.3, iou=0.4)[0]
        order = np.argsort(expected.xyxy[:, 0])
        got = tight.boxes[np.argsort(tight.boxes[:, 0])]
        assert np.abs(got - np.round(expected.xyxy[order])).max() <= 1, "integer VOC of the ilc-style boxes"


def test_prelabel_with_tta_writes_the_fused_boxes(tmp_path: Path) -> None:
    """``--tta`` pre-labels with the test-time-augmented model (then its crop classifier): the boxes are its
    fused ones, in VOC."""
    from maskwatch.assets import sample_dir
    from maskwatch.models.registry import load_detector
    from maskwatch.predict import with_stages

    out = tmp_path / "tta"
    assert main(["data", "prelabel", str(sample_dir()), "--out", str(out), "--tta"]) == 0
    tta = with_stages(load_detector(), tta=True, classifier=True)
    for rec in load_dataset(out):
        image = np.asarray(Image.open(sample_dir() / f"{rec.stem}.jpg").convert("RGB"))
        expected = tta.predict([image], conf=0.3)[0]
        assert len(rec.boxes) == len(expected) > 0
        order = np.argsort(expected.xyxy[:, 0])
        got = rec.boxes[np.argsort(rec.boxes[:, 0])]
        assert np.abs(got - np.round(expected.xyxy[order])).max() <= 1


@pytest.mark.slow
def test_prelabel_output_is_what_labelimg_opens(selected: Path) -> None:
    """LabelImg's own layout (``labelImg DIR DIR/classes.txt DIR``) and whole-pixel coordinates that an
    ``int()``-parsing VOC reader (LabelImg's, most training scripts') accepts."""
    assert not (selected / "annotations").exists() and not (selected / "images").exists()
    assert (selected / "classes.txt").read_text().split() == ["with_mask", "no_mask"]
    xmls = sorted(selected.glob("*.xml"))
    assert len(xmls) == 4
    boxes = 0
    for xml in xmls:
        root = ET.parse(xml).getroot()
        image = selected / root.findtext("filename", "")
        assert image.is_file() and image.stem == xml.stem, "each XML sits beside its image"
        with Image.open(image) as im:
            assert (int(root.findtext("size/width", "")), int(root.findtext("size/height", ""))) == im.size
        for bb in root.iter("bndbox"):
            values = [bb.findtext(t, "") for t in ("xmin", "ymin", "xmax", "ymax")]
            assert all(re.fullmatch(r"\d+", v) for v in values), values
            x1, y1, x2, y2 = map(int, values)
            assert 0 <= x1 < x2 <= im.size[0] and 0 <= y1 < y2 <= im.size[1]
            boxes += 1
    assert boxes >= 8, "a group video: several faces per frame"


@pytest.mark.slow
def test_selection_is_deterministic_and_skips_near_duplicates(
    frames: Path, selected: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    assert main(["data", "prelabel", str(frames), "--out", str(again), "--select", "4", "--by", "mixed"]) == 0
    assert (again / "selection.csv").read_bytes() == (selected / "selection.csv").read_bytes()
    rows = _selection(selected)
    assert len(rows) == len(list(frames.glob("*.jpg"))), "every candidate has a row with its scores"
    picked = [r for r in rows if r["rank"]]
    assert [int(r["rank"]) for r in picked] == [1, 2, 3, 4]
    assert {r["image"] for r in picked} == {p.name for p in selected.glob("*.jpg")}
    hashes = np.array([dhash(frames / r["image"]) for r in picked], dtype=np.uint64)
    for i in range(len(hashes)):
        assert popcount(np.bitwise_xor(hashes[i + 1 :], hashes[i])).min(initial=64) > NEAR_DUPLICATE_BITS
    assert all(r["reason"] for r in rows)
    assert any(r["reason"].startswith("near-duplicate of") for r in rows if not r["rank"])
    # the unmasked man: the frames where the model sees no_mask rank high on rare-class
    rare = [float(r["rare"]) for r in picked]
    assert max(rare) > 0.9


def test_select_strategies_on_known_scores() -> None:
    """Hashes chosen by hand: 0 and 1 differ in 2 bits (near-identical frames); 2 and 3 are 20 and 30 bits
    from 0, and 10 bits from each other."""
    hashes = [0, 0b11, (1 << 20) - 1, (1 << 30) - 1]
    unc, rare = [0.9, 0.95, 0.1, 0.2], [0.0, 0.1, 0.8, 0.3]
    by_unc = select(unc, rare, hashes, 2, "uncertainty")
    assert [p.index for p in sorted(by_unc, key=lambda p: p.rank or 9) if p.rank] == [1, 3]
    assert by_unc[0].reason.startswith("near-duplicate of 1"), "never both of two near-identical frames"
    by_rare = select(unc, rare, hashes, 1, "rare-class")
    assert next(p.index for p in by_rare if p.rank == 1) == 2
    # diversity: with the base holding hash 0, image 3 (30 bits away) beats 2 (20 bits away)
    by_div = select(unc, rare, hashes, 1, "diversity", base_hashes=[0])
    assert next(p.index for p in by_div if p.rank == 1) == 3
    assert by_div[0].reason == "near-duplicate of the learning base (0 bits)"
    mixed = select(unc, rare, hashes, 4, "mixed")
    assert sum(p.rank is not None for p in mixed) == 3, "the 4th is a near-duplicate: fewer than asked"
    assert [p.rank for p in mixed] == [p.rank for p in select(unc, rare, hashes, 4, "mixed")]


@pytest.mark.slow
def test_unreadable_image_is_skipped_in_a_folder_and_an_error_by_name(
    frames: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(frames.glob("*.jpg"))[:2]:
        shutil.copy(p, folder)
    (folder / "zero.jpg").write_bytes(b"")
    out = tmp_path / "out"
    assert main(["data", "prelabel", str(folder), "--out", str(out)]) == 0
    assert "pre-labelled 2 of 3 images, 1 unreadable skipped" in capsys.readouterr().out
    assert main(["data", "prelabel", str(folder / "zero.jpg"), "--out", str(tmp_path / "o2")]) == 1
    assert "zero.jpg: unreadable image" in capsys.readouterr().err
    assert not (tmp_path / "o2").exists()


def test_prelabel_bad_input(tmp_path: Path, face_model: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["data", "prelabel", str(tmp_path / "nothing*.jpg"), "--out", str(tmp_path / "o")]
    assert main([*argv, "--model", str(face_model)]) == 1
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    (tmp_path / "a.jpg").write_bytes(b"")
    assert main(["data", "prelabel", str(tmp_path), "--out", str(tmp_path / "o"), "--select", "0"]) == 1
    assert "--select 0" in capsys.readouterr().err
    assert main(["data", "prelabel", str(tmp_path), "--out", str(tmp_path / "o"), "--min-face", "-2"]) == 1
    assert "--min-face -2" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["data", "prelabel", str(tmp_path / "a.jpg"), "--out", str(mine)]) == 1
    assert "was not written by maskwatch" in capsys.readouterr().err
    assert (mine / "notes.txt").read_text() == "keep me"


def _pixels_like(image: np.ndarray, hex_colour: str, tol: int = 40) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image - rgb).sum(axis=2) < tol).sum())


@pytest.mark.slow
def test_review_sheet_renders_in_chromium(frames: Path, tmp_path: Path) -> None:
    """At --conf 0.95 the masked faces (scored ~1.0) are sure and the painting's (~0.97) is near the
    threshold: its card must be outlined orange; with_mask green and no_mask red boxes must show."""
    pl = tmp_path / "pl"
    assert main(["data", "prelabel", str(frames), "--out", str(pl), "--select", "3", "--conf", "0.95"]) == 0
    assert main(["data", "review", str(pl), "--out", str(tmp_path / "sheet.html")]) == 0
    html = (tmp_path / "sheet.html").read_text()
    assert (
        html.count('class="card') == 3
        and "src=" not in html
        and "http" not in html.replace("http://www.w3.org/2000/svg", "")
    ), "self-contained: images embedded, nothing fetched"
    shot = screenshot(tmp_path / "sheet.html", tmp_path / "sheet.png", "1400,1000").astype(int)
    assert _pixels_like(shot, "#ff9800") > 500, "an uncertain card is outlined in orange"
    assert _pixels_like(shot, "#2e9d4f") > 200, "with_mask boxes are drawn"
    assert _pixels_like(shot, "#d7263d") > 50, "the unmasked man's no_mask box is drawn"
    # a corrected box (class flipped by hand) is shown as edited, not with the model's score
    xml = next(x for x in sorted(pl.glob("*.xml")) if "<name>with_mask</name>" in x.read_text())
    xml.write_text(xml.read_text().replace("<name>with_mask</name>", "<name>no_mask</name>", 1))
    assert main(["data", "review", str(pl)]) == 0
    assert "no_mask (edited)" in (pl / "review.html").read_text()
