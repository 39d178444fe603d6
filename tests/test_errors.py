"""Where AP50 goes (``maskwatch eval --errors``): each false detection's kind on hand-built cases, and every
"AP50 without them" checked against pycocotools scoring the predictions with those detections removed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.record import Dataset
from maskwatch.detections import Detections
from maskwatch.engine.errors import BACKGROUND, DUPLICATE, KINDS, POOR_BOX, SWAP, ErrorEvaluator
from maskwatch.engine.evaluate import evaluate, evaluate_dataset
from maskwatch.engine.report import SHEET_TILE, contact_sheet, format_report
from tests.test_eval import CLASSES, dataset, dets, shifted
from tests.test_eval_cli import MERGE, eval_args, perfect, voc, write  # noqa: F401  (voc: fixture)

A, B, C = [10, 10, 110, 110], [200, 10, 300, 110], [10, 200, 110, 300]
D, E = [50, 50, 150, 150], [200, 200, 300, 300]
# (image, box, score, class, what it is)
PREDICTIONS = [
    (0, A, 0.9, "with_mask", "hit"),
    (0, shifted(A, 0.7), 0.8, "with_mask", DUPLICATE),
    (0, B, 0.7, "with_mask", SWAP),
    (0, shifted(B, 0.3), 0.6, "no_mask", POOR_BOX),
    (0, B, 0.5, "no_mask", "hit"),
    (0, [300, 300, 350, 350], 0.95, "no_mask", BACKGROUND),
    (1, D, 0.85, "no_mask", "hit"),
    (1, [300, 300, 340, 340], 0.4, "with_mask", BACKGROUND),
    (1, E, 0.3, "with_mask", "hit"),  # last: every false detection of its class ranks above it
]


def faces() -> Dataset:
    # C is found by no detection
    return dataset([(A, "with_mask"), (B, "no_mask"), (C, "with_mask")], [(D, "no_mask"), (E, "with_mask")])


def predictions(keep: tuple[str, ...] = ("hit", *KINDS)) -> list[Detections]:
    return [
        dets(*((box, s, name) for i, box, s, name, what in PREDICTIONS if i == image and what in keep))
        for image in (0, 1)
    ]


def breakdown(ds: Dataset, preds: list[Detections], **kw: float) -> object:
    ev = ErrorEvaluator(CLASSES, **kw)
    ev.reset()
    ev.process(ds.records, preds)
    ev.evaluate()
    return ev.errors


def test_each_false_detection_gets_its_kind_and_its_cost_in_ap50() -> None:
    ds = faces()
    e = breakdown(ds, predictions())
    assert e.counts == {DUPLICATE: 1, SWAP: 1, POOR_BOX: 1, BACKGROUND: 2}
    assert e.counts_at_conf == {DUPLICATE: 1, SWAP: 1, POOR_BOX: 1, BACKGROUND: 1}  # the 0.4 one is below
    assert e.ap50 == pytest.approx(evaluate(ds, predictions(), CLASSES)["AP50"])
    for kind in KINDS:  # pycocotools on the predictions without that kind: the same AP50
        rest = tuple(k for k in ("hit", *KINDS) if k != kind)
        assert e.without[kind] == pytest.approx(evaluate(ds, predictions(rest), CLASSES)["AP50"]), kind
        assert e.without[kind] > e.ap50, kind  # each of them ranks above a hit, so each costs AP50
    assert e.ceiling == pytest.approx(evaluate(ds, predictions(("hit",)), CLASSES)["AP50"])
    assert e.ceiling < 100  # C is never found
    assert (e.faces, e.missed, e.missed_sizes.tolist()) == (5, 1, [100.0])
    assert [round(x[2], 2) for x in e.examples[BACKGROUND]] == [0.95, 0.4]  # highest score first
    image, box, _, name = e.examples["missed"][0]
    assert (image, box.tolist(), name) == (0, C, "with_mask")


def test_the_breakdown_is_the_same_with_parallel_matching() -> None:
    # four images (two copies of each), so two workers each match a half (evaluate_parallel)
    one = faces()
    ds = Dataset([*one.records, *one.records], list(CLASSES))
    preds = predictions() * 2
    serial, parallel = breakdown(ds, preds), breakdown(ds, preds, workers=2)
    assert parallel.to_json() == serial.to_json()
    assert serial.counts[BACKGROUND] == 4 and serial.missed == 2
    assert [x[0] for x in parallel.examples["missed"]] == [x[0] for x in serial.examples["missed"]]


def test_faces_outside_the_range_of_interest_are_neither_missed_nor_errors() -> None:
    small = [200, 200, 210, 210]  # 10 px, ignored at --min-size 16
    ds = dataset([(A, "with_mask"), (small, "no_mask")])
    preds = [dets((A, 0.9, "with_mask"), (small, 0.8, "with_mask"), ([300, 300, 330, 330], 0.7, "no_mask"))]
    e = breakdown(ds, preds, min_size=16)
    assert (e.faces, e.missed) == (1, 0)
    assert e.counts == {DUPLICATE: 0, SWAP: 0, POOR_BOX: 0, BACKGROUND: 1}
    e_all = breakdown(ds, preds)  # without a range of interest the small face counts, wrongly classed
    assert e_all.counts[SWAP] == 1 and e_all.faces == 2 and e_all.missed == 1


def test_breakdown_reaches_the_report_table_and_json() -> None:
    ds = faces()
    report = evaluate_dataset(ds, predictions(), CLASSES, errors=True)
    assert report.errors is not None
    text = format_report(report)
    assert (
        f"Where AP50 goes (IoU 0.5): AP50 {report.errors.ap50:.1f}; 1 of 5 faces found by no detection"
        in text
    )
    assert "| background       |" in text and f"{report.errors.without[BACKGROUND]:.1f} (+" in text
    out = report.summary_json()["errors"]
    assert out["false_detections"][SWAP] == {
        "all": 1,
        "at_conf": 1,
        "AP50_without": round(report.errors.without[SWAP], 2),
    }
    assert out["missed"] == 1 and out["faces"] == 5
    assert evaluate_dataset(ds, predictions(), CLASSES).errors is None  # only when asked


def test_contact_sheet_centres_each_box_and_leaves_off_image_parts_black(tmp_path: Path) -> None:
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(path)
    # A 20 px box in the image's corner: its 50 px crop runs 15 px off the top and left edges.
    sheet = np.asarray(
        contact_sheet(
            [(path, np.array([0.0, 0.0, 20.0, 20.0]), "x"), (path, np.array([40.0, 40, 60, 60]), "y")]
        )
    )
    assert sheet.shape[1] == 2 * SHEET_TILE
    scale = SHEET_TILE / 50
    edge = round(15 * scale)  # where the image starts, and the box's left/top edge
    assert tuple(sheet[64, edge + 1]) == (0, 255, 0)  # the box's left edge, half way down: centred
    assert tuple(sheet[5, 5]) == (0, 0, 0)  # off the image
    assert tuple(sheet[100, 100]) == (128, 128, 128)  # the image, inside the crop
    assert tuple(sheet[64, SHEET_TILE + edge + 1]) == (0, 255, 0)  # the second tile's box, same place


def test_cli_errors_table_json_and_sheets(voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: F811
    entries = perfect()
    entries.pop(0)  # image a's with_mask face is missed
    entries.append({"image_id": 4, "label": "no_mask", "bbox": [60, 60, 30, 30], "score": 0.99})  # background
    preds = write(tmp_path / "p.json", entries)
    out = tmp_path / "out"
    assert (
        main([str(a) for a in eval_args(voc, preds, "--errors", "--out", out, "--json", tmp_path / "m.json")])
        == 0
    )
    text = capsys.readouterr().out
    assert "Where AP50 goes (IoU 0.5): AP50" in text and "of 5 faces found by no detection" in text
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["errors"]["missed"] == 1 and m["errors"]["false_detections"][BACKGROUND]["all"] == 1
    files = json.loads((out / "metrics.json").read_text())["files"]["errors"]
    assert files == ["errors/background.jpg", "errors/missed.jpg"]
    with Image.open(out / "errors" / "missed.jpg") as im:
        assert im.format == "JPEG" and im.size == (SHEET_TILE, SHEET_TILE + 16)
