"""The real reference set (703 Kaggle images, VOC): counts, COCO size buckets, and a conversion chain
through every format that must keep every box within a pixel and every class."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset, save_dataset
from maskwatch.data.stats import dataset_stats

COUNTS = {"with_mask": 2706, "without_mask": 606, "mask_weared_incorrect": 103}
BUCKETS = {"small": 2328, "medium": 878, "large": 209}


@pytest.fixture(scope="module")
def kaggle_ds(kaggle: Path):
    return load_dataset(kaggle)


def test_counts_and_size_buckets(kaggle_ds) -> None:
    assert len(kaggle_ds) == 703
    assert Counter(lab for r in kaggle_ds for lab in r.labels) == COUNTS
    stats = dataset_stats(kaggle_ds)
    assert stats["images"] == 703 and stats["boxes"] == 3415
    assert {b: sum(c[b] for c in stats["classes"].values()) for b in BUCKETS} == BUCKETS
    for r in kaggle_ds:  # the quirks are clipped away: every box inside its image, none degenerate
        assert (
            (r.boxes[:, :2] >= 0).all()
            and (r.boxes[:, 2] <= r.width).all()
            and (r.boxes[:, 3] <= r.height).all()
        )
        assert (r.boxes[:, 2:] > r.boxes[:, :2]).all()


def test_voc_coco_yolo_createml_voc_keeps_every_box(kaggle_ds, tmp_path: Path) -> None:
    ds = kaggle_ds
    for i, fmt in enumerate(("coco", "yolo", "createml", "voc")):
        save_dataset(ds, tmp_path / f"{i}-{fmt}", fmt)
        ds = load_dataset(tmp_path / f"{i}-{fmt}")
    assert ds.classes == kaggle_ds.classes
    before = {r.stem: r for r in kaggle_ds}
    worst = 0.0
    for r in ds:
        o = before[r.stem]
        assert r.labels == o.labels and (r.width, r.height) == (o.width, o.height)
        worst = max(worst, float(np.abs(r.boxes - o.boxes).max(initial=0)))
    assert len(ds) == len(kaggle_ds) and worst < 1.0, worst
    assert worst < 0.01, "in practice far under a pixel: 6-decimal YOLO floats"


def test_stats_cli_on_kaggle(kaggle: Path, tmp_path: Path, capsys) -> None:
    split = Path(__file__).resolve().parents[1] / "splits" / "face-mask-kaggle"
    argv = ["data", "stats", str(kaggle), "--split", str(split), "--json", str(tmp_path / "k.json")]
    assert main(argv) == 0
    stats = json.loads((tmp_path / "k.json").read_text())
    assert {c: v["boxes"] for c, v in stats["classes"].items()} == COUNTS
    assert sum(s["images"] for s in stats["splits"].values()) == 703
    assert sum(s["boxes"] for s in stats["splits"].values()) == 3415
    assert all(s["classes"]["mask_weared_incorrect"]["boxes"] > 0 for s in stats["splits"].values())
    assert "| mask_weared_incorrect |    103 |" in capsys.readouterr().out


def test_merge_to_two_classes(kaggle: Path) -> None:
    ds = load_dataset(kaggle, merge=["without_mask,mask_weared_incorrect=no_mask"])
    assert ds.classes == ["no_mask", "with_mask"]
    assert Counter(lab for r in ds for lab in r.labels) == {"with_mask": 2706, "no_mask": 709}
