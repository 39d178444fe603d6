"""``maskwatch eval`` end to end through ``maskwatch.cli.main``: a small VOC learning base written to disk
(plain images, real LabelImg-style XML), predictions files, a freshly initialised checkpoint, the real
Kaggle data where present."""

from __future__ import annotations

import json
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.data.record import Annotation, Dataset
from maskwatch.data.split import read_split_file
from maskwatch.data.voc import write_voc_file
from maskwatch.engine.predictions import image_index, read_predictions
from maskwatch.models.registry import DEFAULT_MODEL, packaged_weights
from tests.media import screenshot

MERGE = "without_mask,mask_weared_incorrect=no_mask"
# stem → faces (xyxy, Kaggle class name); image 2 has a face smaller than 16 px.
FACES = {
    "a": [([20, 20, 80, 90], "with_mask"), ([100, 30, 150, 90], "without_mask")],
    "b": [([10, 10, 70, 70], "mask_weared_incorrect")],
    "c": [([40, 40, 100, 110], "with_mask"), ([130, 20, 140, 32], "with_mask")],
    "d": [],
}


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("voc")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    for stem, faces in FACES.items():
        path = root / "images" / f"{stem}.jpg"
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(path)
        rec = Annotation(path, 160, 120, [b for b, _ in faces], [lab for _, lab in faces])
        write_voc_file(rec, root / "annotations" / f"{stem}.xml", path.name)
    return root


def perfect(merge: bool = True, key: str = "label") -> list[dict]:
    """Predictions equal to the ground truth, referring to images by 1-based position (sorted XML order)."""
    names = {"without_mask": "no_mask", "mask_weared_incorrect": "no_mask"} if merge else {}
    out = []
    for i, faces in enumerate(FACES.values(), start=1):
        for (x1, y1, x2, y2), lab in faces:
            out.append(
                {"image_id": i, key: names.get(lab, lab), "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.9}
            )
    return out


def run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


def eval_args(voc: Path, preds: Path, *extra: str | Path) -> list[str | Path]:
    return ["eval", "--data", voc, "--merge", MERGE, "--predictions", preds, *extra]


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_predictions_file_scores_100_and_writes_json(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    preds = write(tmp_path / "p.json", perfect())
    assert run(*eval_args(voc, preds, "--json", tmp_path / "m.json", "--min-size", "16")) == 0
    out = capsys.readouterr().out
    assert out.count("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]") == 2
    assert "| faces     |   AP  |  AP50 |  AP75 |  APs  |  APm  | APl |" in out
    assert "| all faces | 100.0 | 100.0 | 100.0 |" in out and "| >= 16 px  | 100.0 |" in out
    assert "| with_mask |" in out and "| no_mask   |" in out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["AP"] == 100.0 and m["per_class"]["no_mask"] == {"AP": 100.0, "AP50": 100.0}
    assert m["images"] == 4 and m["boxes"] == 5 and m["seconds"] >= 0
    assert m["roi"]["min_size"] == 16 and m["roi"]["boxes"] == 4 and m["roi"]["AP"] == 100.0


def test_file_names_and_category_ids_work_too(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    entries = perfect(key="category_id")
    for e in entries:  # dataset classes after --merge: with_mask, no_mask (first appearance in a.xml)
        e["category_id"] = {"with_mask": 1, "no_mask": 2}[e["category_id"]]
        e["file_name"] = "abcd"[e.pop("image_id") - 1] + ".jpg"
    assert run(*eval_args(voc, write(tmp_path / "p.json", entries), "--json", tmp_path / "m.json")) == 0
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == 100.0


def test_merge_applies_to_prediction_labels(voc: Path, tmp_path: Path) -> None:
    preds = write(tmp_path / "p.json", perfect(merge=False))
    assert run(*eval_args(voc, preds, "--json", tmp_path / "m.json")) == 0
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == 100.0


def test_split_keeps_ids_and_skips_other_images(voc: Path, tmp_path: Path) -> None:
    split = tmp_path / "test.txt"
    split.write_text("c\na\n")
    preds = write(tmp_path / "p.json", perfect())
    assert run(*eval_args(voc, preds, "--split", split, "--json", tmp_path / "m.json")) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert (m["images"], m["boxes"], m["AP"]) == (2, 4, 100.0)


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.captions: list[str] = []
        self._in_caption = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a["src"] or "")
        elif tag == "a":
            self.links.append(a["href"] or "")
        self._in_caption = tag == "figcaption"

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self.captions.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._in_caption = False


def test_out_folder_has_coco_files_plots_and_a_gallery(voc: Path, tmp_path: Path) -> None:
    entries = perfect()
    entries[0]["label"] = "no_mask"  # a class swap in a.jpg
    del entries[2]  # b.jpg's face missed
    entries.append({"image_id": 4, "label": "with_mask", "bbox": [5, 5, 40, 40], "score": 0.8})  # false alarm
    entries.append(
        {"image_id": 4, "label": "with_mask", "bbox": [90, 60, 40, 40], "score": 0.1}
    )  # below --conf
    out = tmp_path / "out"
    args = eval_args(
        voc, write(tmp_path / "p.json", entries), "--out", out, "--min-size", "16", "--gallery", "2"
    )
    assert run(*args) == 0

    results = json.loads((out / "coco_instances_results.json").read_text())
    assert len(results) == len(entries)
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score", "label"}
    gt = json.loads((out / "ground_truth.json").read_text())
    assert [im["id"] for im in gt["images"]] == [1, 2, 3, 4] and len(gt["annotations"]) == 5
    assert {c["id"]: c["name"] for c in gt["categories"]} == {1: "with_mask", 2: "no_mask"}

    m = json.loads((out / "metrics.json").read_text())
    op = m["operating_point"]
    assert op["truth"] == ["with_mask", "no_mask", "none"] and op["conf"] == 0.5
    # a: with_mask→no_mask swap, no_mask hit; b: no_mask missed; c: with_mask hit (small one ignored); d: FA
    assert op["matrix"] == [[1, 1, 0], [0, 1, 1], [1, 0, 0]]
    assert op["per_class"]["no_mask"] == {
        "precision": 50.0,
        "recall": 50.0,
        "f1": 50.0,
        "tp": 1,
        "fp": 1,
        "fn": 1,
    }
    assert m["roi"]["ignored"] == 1 and m["AP"] < 100

    for name in [*m["files"]["pr_curves"], m["files"]["confusion_matrix"]]:
        with Image.open(out / name) as im:
            assert im.format == "PNG" and im.width > 200
    # each gallery PNG carries its own colour legend below the picture (160 × 120 scaled 2×: 320 × 240)
    with Image.open(out / "gallery" / "001_a.png") as im:
        assert im.width == 320 and im.height > 240
        strip = np.asarray(im.convert("RGB"))[240:].reshape(-1, 3)
    for colour in ((0, 200, 0), (255, 230, 0), (30, 144, 255), (255, 140, 0), (230, 0, 0), (150, 150, 150)):
        assert (strip == colour).all(axis=1).any(), colour

    page = (out / "gallery" / "index.html").read_text()
    parser = _Links()
    parser.feed(page)
    assert len(parser.images) == 2 == m["files"]["gallery_images"]
    for src in parser.images + parser.links:
        assert not Path(src).is_absolute() and (out / "gallery" / src).is_file()
    # a.jpg (1 swap) and b.jpg / d.jpg (1 error each): a first by image order among ties.
    assert parser.captions[0].startswith("a: 0 missed, 0 false alarm(s), 1 wrong class")
    assert parser.images[0] == "001_a.png"

    # The results file round-trips: scoring it again gives the same numbers.
    again = tmp_path / "again.json"
    assert run(*eval_args(voc, out / "coco_instances_results.json", "--json", again)) == 0
    assert json.loads(again.read_text())["AP"] == m["AP"]


def test_gallery_renders_in_a_browser(voc: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    entries = perfect()[1:]
    assert run(*eval_args(voc, write(tmp_path / "p.json", entries), "--out", out)) == 0
    pixels = screenshot(out / "gallery" / "index.html", tmp_path / "shot.png", "1200,900")
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 10  # the images were drawn, not a blank page


def test_out_refuses_to_replace_an_unrelated_folder(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    assert run(*eval_args(voc, write(tmp_path / "p.json", perfect()), "--out", tmp_path)) == 1
    assert "was not written by maskwatch (no metrics.json)" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "precious"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            [{"image_id": 99, "label": "with_mask", "bbox": [0, 0, 5, 5], "score": 1}],
            "image_id 99 is not in the dataset",
        ),
        (
            [{"file_name": "zz.jpg", "label": "with_mask", "bbox": [0, 0, 5, 5], "score": 1}],
            "'zz.jpg' is not one image",
        ),
        ([{"image_id": 1, "label": "beard", "bbox": [0, 0, 5, 5], "score": 1}], "unknown category 'beard'"),
        ([{"image_id": 1, "category_id": 7, "bbox": [0, 0, 5, 5], "score": 1}], "unknown category_id 7"),
        (
            [{"image_id": 1, "label": "with_mask", "bbox": [0, float("nan"), 5, 5], "score": 1}],
            "is not finite",
        ),
        (
            [{"image_id": 1, "label": "with_mask", "bbox": [0, 0, 5, 5], "score": float("nan")}],
            "is not finite",
        ),
        ([{"image_id": 1, "label": "with_mask", "bbox": [0, 0, 5], "score": 1}], "is not 4 number(s)"),
        ([{"image_id": 1, "label": "with_mask", "bbox": [0, 0, -5, 5], "score": 1}], "negative width"),
        ([{"image_id": 1, "label": "with_mask", "bbox": [0, 0, 5, 5]}], "score None is not finite"),
        ([{"label": "with_mask", "bbox": [0, 0, 5, 5], "score": 1}], "needs 'image_id' or 'file_name'"),
        ({"annotations": []}, "expected a JSON list"),
        ('[{"image_id": 1, "label": "with_mask", "bbox": [0, 0', "malformed JSON"),
    ],
)
def test_bad_predictions_are_one_line_errors(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture, content: object, message: str
) -> None:
    path = tmp_path / "p.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert run(*eval_args(voc, path)) == 1
    err = capsys.readouterr().err
    assert err.startswith("maskwatch: error: ") and err.count("\n") == 1
    assert message in err and (str(path) in err)


def test_bad_options_are_one_line_errors(voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    preds = write(tmp_path / "p.json", perfect())
    for extra, message in (
        (["--min-size", "-1"], "--min-size -1"),
        (["--conf", "2"], "--conf 2"),
        (["--iou-thr", "0"], "--iou-thr 0: must be in (0, 1]"),
        (["--bootstrap", "1"], "--bootstrap 1: must be 0 (off) or at least 2"),
        (["--json", tmp_path], "contains the input"),  # the folder holding p.json
        (["--model", "x.pt"], "not allowed with argument"),
    ):
        assert run(*eval_args(voc, preds, *extra)) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly initialised (untrained) maskface-mnet: enough to run the model path end to end."""
    from maskwatch.models.registry import build_detector

    path = tmp_path_factory.mktemp("ckpt") / "m.pt"
    build_detector("maskface-mnet", ["with_mask", "no_mask"], imgsz=160).save(path)
    return path


def test_model_is_run_over_the_images(
    voc: Path, checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["eval", "--data", voc, "--merge", MERGE, "--model", checkpoint, "--device", "cpu"]
    assert run(*args, "--json", tmp_path / "m.json", "--conf", "0.01") == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["images"] == 4 and 0 <= m["AP"] <= 100 and set(m["per_class"]) == {"with_mask", "no_mask"}
    assert "eval: 100%" in capsys.readouterr().err  # the progress bar


def test_without_model_or_predictions_the_builtin_default_is_used(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rc = run("eval", "--data", voc, "--merge", MERGE, "--device", "cpu", "--json", tmp_path / "m.json")
    if packaged_weights(DEFAULT_MODEL).is_file():
        assert rc == 0 and json.loads((tmp_path / "m.json").read_text())["images"] == 4
    else:  # until the trained weights are packaged: the error names the default model
        assert rc == 1 and f"model {DEFAULT_MODEL!r} has no packaged weights" in capsys.readouterr().err


def test_dataset_class_unknown_to_the_model_is_named(
    voc: Path, checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run("eval", "--data", voc, "--model", checkpoint) == 1
    err = capsys.readouterr().err
    assert "dataset class 'mask_weared_incorrect' is not a model class (with_mask, no_mask)" in err
    assert err.count("\n") == 1


def test_real_kaggle_test_split_scored_against_its_own_ground_truth(
    kaggle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Real VOC quirks (xmax = width + 1, tiny boxes) through --split, --merge and file_name matching."""
    split = Path(__file__).resolve().parents[1] / "splits" / "face-mask-kaggle" / "test.txt"
    ds = load_dataset(kaggle, merge=[MERGE]).subset(read_split_file(split))
    entries = [
        {"file_name": r.image.name, "label": lab, "bbox": [x1, y1, x2 - x1, y2 - y1], "score": 0.5}
        for r in ds
        for (x1, y1, x2, y2), lab in zip(r.boxes.tolist(), r.labels, strict=True)
    ]
    preds = write(tmp_path / "p.json", entries)
    args = ["eval", "--data", kaggle, "--merge", MERGE, "--split", split, "--predictions", preds]
    assert run(*args, "--min-size", "16", "--json", tmp_path / "m.json") == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert (m["images"], m["boxes"]) == (len(ds), ds.num_boxes)
    assert m["AP"] == 100.0 and m["roi"]["AP"] == 100.0 and m["roi"]["ignored"] > 0


def test_coco_json_datasets_keep_their_own_image_and_category_ids(tmp_path: Path) -> None:
    """A Detectron2 results file for a COCO JSON dataset uses that file's own ids, honoured as they are."""
    (tmp_path / "images").mkdir()
    for name in ("x.jpg", "y.jpg"):
        Image.new("RGB", (100, 100), (90, 90, 90)).save(tmp_path / "images" / name)
    coco = {
        "images": [
            {"id": 205, "file_name": "images/y.jpg", "width": 100, "height": 100},
            {"id": 101, "file_name": "images/x.jpg", "width": 100, "height": 100},
        ],
        "categories": [{"id": 3, "name": "with_mask"}, {"id": 7, "name": "without_mask"}],
        "annotations": [
            {"id": 1, "image_id": 101, "category_id": 3, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
            {
                "id": 2,
                "image_id": 205,
                "category_id": 7,
                "bbox": [10, 10, 50, 50],
                "area": 2500,
                "iscrowd": 0,
            },
        ],
    }
    data = write(tmp_path / "instances.json", coco)
    entries = [
        {"image_id": 205, "category_id": 7, "bbox": [10, 10, 50, 50], "score": 0.9},
        {"image_id": 101, "category_id": 3, "bbox": [0, 0, 50, 50], "score": 0.8},
    ]
    results = write(tmp_path / "coco_instances_results.json", entries)
    args = ["eval", "--data", data, "--predictions", results, "--merge", "without_mask=no_mask"]
    assert run(*args, "--json", tmp_path / "m.json", "--out", tmp_path / "out") == 0
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == 100.0
    gt = json.loads((tmp_path / "out" / "ground_truth.json").read_text())
    assert sorted(im["id"] for im in gt["images"]) == [101, 205]

    ds = load_dataset(data, merge=["without_mask=no_mask"])
    index = image_index(data, ds)
    preds = read_predictions(results, ds, ds.classes, index, {"without_mask": "no_mask"})
    by_name = {r.image.name: p.label_names for r, p in zip(ds.records, preds, strict=True)}
    assert by_name == {"x.jpg": ["with_mask"], "y.jpg": ["no_mask"]}
    only_y = Dataset([r for r in ds.records if r.image.name == "y.jpg"], ds.classes)
    assert index.ids_for(only_y) == [205]


def test_iou_thr_and_bootstrap_reach_the_table_and_the_json(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    preds = write(tmp_path / "p.json", perfect())
    args = ("--json", tmp_path / "m.json", "--iou-thr", "0.3", "--bootstrap", "30", "--seed", "7")
    assert run(*eval_args(voc, preds, *args)) == 0
    out = capsys.readouterr().out
    assert "| all faces          | 100.0 (100.0-100.0) |" in out
    assert "| IoU 0.3, all faces | 100.0 (100.0-100.0) |          -          |" in out
    assert "95 % image-bootstrap interval, 30 resamples, seed 7" in out
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["bootstrap"] == {"resamples": 30, "seed": 7, "level": 95.0}
    assert (
        m["interval"]["AP"] == [100.0, 100.0] and m["interval"]["per_class"]["no_mask"]["AP50"] == [100.0] * 2
    )
    assert m["iou_thr"]["iou"] == 0.3 and m["iou_thr"]["AP"] == 100.0


def test_split_may_be_a_folder_whose_test_txt_is_scored(voc: Path, tmp_path: Path) -> None:
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.txt").write_text("c\na\n")
    (tmp_path / "splits" / "train.txt").write_text("b\nd\n")
    preds = write(tmp_path / "p.json", perfect())
    for split, name in ((tmp_path / "splits", "dir"), (tmp_path / "splits" / "test.txt", "file")):
        assert run(*eval_args(voc, preds, "--split", split, "--json", tmp_path / f"{name}.json")) == 0
    by_dir, by_file = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("dir", "file"))
    assert by_dir["images"] == by_file["images"] == 2 and by_dir["boxes"] == by_file["boxes"] == 4


def test_predictions_on_a_coco_file_need_no_image_files(voc: Path, tmp_path: Path) -> None:
    """ground_truth.json states every image's size: scoring a results file on it reads no pixels."""
    first = tmp_path / "first"
    assert run(*eval_args(voc, write(tmp_path / "p.json", perfect()[1:]), "--out", first)) == 0
    alone = tmp_path / "alone"
    alone.mkdir()
    for name in ("ground_truth.json", "coco_instances_results.json"):
        shutil.copy(first / name, alone / name)
    args = [
        "eval",
        "--data",
        alone / "ground_truth.json",
        "--predictions",
        alone / "coco_instances_results.json",
    ]
    assert run(*args, "--json", tmp_path / "m.json", "--out", tmp_path / "out", "--errors") == 0
    m, before = (json.loads(p.read_text()) for p in (tmp_path / "m.json", first / "metrics.json"))
    assert m["images"] == 4 and m["AP"] == before["AP"] < 100
    page = (tmp_path / "out" / "gallery" / "index.html").read_text()
    assert "4 image file(s) not found, left out." in page
    # --errors still measures; its crops need pixels, so no sheet is drawn
    assert m["errors"]["missed"] == 1 and not (tmp_path / "out" / "errors").exists()
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["files"]["errors"] == []
    # a model, on the other hand, needs the pixels: the missing image is named
    assert run("eval", "--data", alone / "ground_truth.json", "--model", "nope.pt") == 1


def test_unwritable_out_is_refused_before_the_model_is_loaded(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A path under a file: the error is about --out, so nothing (not even loading the model) ran first."""
    (tmp_path / "file").write_text("x")
    base = ["eval", "--data", voc, "--merge", MERGE, "--model", tmp_path / "missing.pt"]
    assert run(*base, "--out", tmp_path / "file" / "out") == 1
    err = capsys.readouterr().err
    where = tmp_path / "file"
    assert (
        err
        == f"maskwatch: error: --out {where / 'out'}: cannot be written ({where} is a file, not a folder)\n"
    )
    assert run(*base, "--json", tmp_path / "file" / "deeper" / "m.json") == 1
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_folder_is_refused_before_the_model_is_loaded(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        args = [
            "eval",
            "--data",
            voc,
            "--merge",
            MERGE,
            "--model",
            tmp_path / "missing.pt",
            "--out",
            locked / "o",
        ]
        assert run(*args) == 1
        assert f"in {locked})" in capsys.readouterr().err
    finally:
        locked.chmod(0o755)


def test_agnostic_scores_finding_faces_whatever_their_class(
    voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Every face found, every class wrong: per-class AP 0, class-agnostic AP 100; a second box of the
    other class on a face is one face found once, not a false alarm."""
    swapped = perfect()
    for p in swapped:
        p["label"] = {"with_mask": "no_mask", "no_mask": "with_mask"}[p["label"]]
    preds = write(tmp_path / "p.json", swapped)
    assert run(*eval_args(voc, preds, "--json", tmp_path / "m.json")) == 0
    assert json.loads((tmp_path / "m.json").read_text())["AP"] == 0.0
    capsys.readouterr()
    twice = swapped + [{**p, "label": "with_mask", "score": 0.5} for p in swapped if p["label"] == "no_mask"]
    preds = write(tmp_path / "p2.json", twice)
    args = ("--agnostic", "--json", tmp_path / "a.json", "--out", tmp_path / "o")
    assert run(*eval_args(voc, preds, *args)) == 0
    out = capsys.readouterr().out
    assert "| face     | 100.0 | 100.0 |" in out and "with_mask" not in out
    m = json.loads((tmp_path / "a.json").read_text())
    assert m["AP"] == 100.0 and list(m["per_class"]) == ["face"] and m["boxes"] == 5
    results = json.loads((tmp_path / "o" / "coco_instances_results.json").read_text())
    assert len(results) == 5, "the lower-scored second box of a face is dropped"
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["agnostic"] is True


def test_imgsz_runs_the_model_at_another_input_size(
    kaggle: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The default model on 8 real test images: at a 64 px input the faces (most under 30 px at 640) are
    too small to find, so AP falls; the size is recorded with the run. Bad values are one-line errors."""
    stems = read_split_file(Path(__file__).resolve().parents[1] / "splits" / "face-mask-kaggle" / "test.txt")
    split = tmp_path / "few.txt"
    split.write_text("\n".join(stems[:8]) + "\n")
    args = ["eval", "--data", kaggle, "--merge", MERGE, "--split", split, "--device", "cpu"]
    scores = {}
    for imgsz in (None, 64):
        js = tmp_path / f"{imgsz}.json"
        assert run(*args, "--json", js, *(["--imgsz", imgsz] if imgsz else [])) == 0
        m = json.loads(js.read_text())
        assert m["run"]["imgsz"] == imgsz
        scores[imgsz] = m["AP50"]
    assert scores[None] > 60 and scores[64] < scores[None] - 30
    capsys.readouterr()
    preds = write(tmp_path / "p.json", [])
    for extra, message in (
        (["--imgsz", "16"], "--imgsz 16: must be at least 32"),
        (["--imgsz", "320", "--predictions", preds], "--imgsz sets a model's input size"),
    ):
        assert run(*args, *extra) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
