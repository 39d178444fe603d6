"""``maskwatch data stats|convert|merge`` end to end on synthetic bases, through ``maskwatch.cli.main``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.formats import detect_format, load_dataset
from maskwatch.data.record import Annotation
from maskwatch.data.split import write_split
from maskwatch.data.stats import box_stats
from tests.data_synth import make_coco, make_voc

# data_synth.BOXES after clipping, box areas per image (s/m/l bucket):
# 486 s, 1152 m | 1600 m, 500 s | 2304 m | - | 12000 l, 410 s | 1024 m (exactly 32²: medium)
EXPECTED = {
    "images": 6,
    "boxes": 8,
    "classes": {
        "with_mask": {"boxes": 5, "small": 3, "medium": 2, "large": 0},
        "without_mask": {"boxes": 2, "small": 0, "medium": 1, "large": 1},
        "mask_weared_incorrect": {"boxes": 1, "small": 0, "medium": 1, "large": 0},
    },
}


@pytest.fixture(scope="module")
def voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_voc(tmp_path_factory.mktemp("voc"))


def test_size_buckets_follow_coco_boundaries() -> None:
    sides = [(31.9, 32), (32, 32), (95.9, 96), (96, 96), (0.5, 0.5)]
    rec = Annotation(Path("x.jpg"), 200, 200, [[0, 0, w, h] for w, h in sides], ["a"] * len(sides))
    assert box_stats([rec], ["a", "b"])["classes"] == {
        "a": {"boxes": 5, "small": 2, "medium": 2, "large": 1},
        "b": {"boxes": 0, "small": 0, "medium": 0, "large": 0},
    }


def test_stats_table_json_and_plot(voc: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out_json, out_png = tmp_path / "s.json", tmp_path / "s.png"
    assert main(["data", "stats", str(voc), "--json", str(out_json), "--plot", str(out_png)]) == 0
    text = capsys.readouterr().out
    assert f"{voc}: 6 images, 8 boxes" in text
    row = next(line for line in text.splitlines() if line.startswith("| with_mask "))
    assert row.split("|")[2:7] == ["      5 ", "  62.5% ", "      3 ", "      2 ", "      0 "]
    assert json.loads(out_json.read_text()) == EXPECTED
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.width > 300


def test_stats_per_split_from_default_folder_and_option(voc: Path, tmp_path: Path, capsys) -> None:
    split = tmp_path / "my-split"
    write_split({"train": ["img1", "img2", "img3", "img4"], "val": ["img5"], "test": ["img6"]}, split)
    assert main(["data", "stats", str(voc), "--split", str(split), "--json", str(tmp_path / "s.json")]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert {k: v for k, v in stats.items() if k != "splits"} == EXPECTED
    assert {k: (v["images"], v["boxes"]) for k, v in stats["splits"].items()} == {
        "train": (4, 5),
        "val": (1, 2),
        "test": (1, 1),
    }
    assert stats["splits"]["val"]["classes"]["without_mask"] == {
        "boxes": 1,
        "small": 0,
        "medium": 0,
        "large": 1,
    }
    assert "split val: 1 images, 2 boxes" in capsys.readouterr().out
    # a converted base carries its split in PATH/splits, found without --split
    assert (
        main(["data", "convert", str(voc), str(tmp_path / "c"), "--to", "createml", "--split", str(split)])
        == 0
    )
    assert main(["data", "stats", str(tmp_path / "c"), "--json", str(tmp_path / "c.json")]) == 0
    assert json.loads((tmp_path / "c.json").read_text()) == stats


def test_convert_with_merge_and_copy(voc: Path, tmp_path: Path, capsys) -> None:
    dst = tmp_path / "yolo"
    argv = [
        "data",
        "convert",
        str(voc),
        str(dst),
        "--to",
        "yolo",
        "--copy-images",
        "--merge",
        "without_mask,mask_weared_incorrect=no_mask",
    ]
    assert main(argv) == 0
    assert "wrote 6 images, 8 boxes, classes with_mask, no_mask as yolo" in capsys.readouterr().out
    assert detect_format(dst) == "yolo"
    ds = load_dataset(dst)
    assert ds.classes == ["with_mask", "no_mask"]
    assert sum(lab == "no_mask" for r in ds for lab in r.labels) == 3
    src_inode = (voc / "images" / "img1.jpg").stat().st_ino
    assert (dst / "images" / "img1.jpg").stat().st_ino != src_inode, "--copy-images copies"
    assert main(["data", "convert", str(voc), str(tmp_path / "l"), "--to", "voc"]) == 0
    assert (tmp_path / "l" / "images" / "img1.jpg").stat().st_ino == src_inode, "default: hard link"


def test_merge_reconciles_classes_and_renames_clashes(voc: Path, tmp_path: Path, capsys) -> None:
    other = make_coco(
        tmp_path / "other",
        ["no_mask", "with_mask", "mask_weared_incorrect"],
        spec=[
            ("img1.jpg", 30, 30, [("no_mask", 1, 1, 20, 20)]),
            ("extra.jpg", 30, 30, [("with_mask", 2, 2, 12, 12)]),
        ],
    )
    write_split({"train": ["img1"], "val": ["extra"]}, other / "annotations" / "splits")
    out = tmp_path / "merged"
    argv = [
        "data",
        "merge",
        str(voc),
        str(other / "annotations" / "instances.json"),
        "--out",
        str(out),
        "--merge",
        "without_mask,mask_weared_incorrect=no_mask",
    ]
    assert main(argv) == 0
    assert f"wrote 8 images from 2 bases as voc to {out}" in capsys.readouterr().out
    ds = load_dataset(out)
    assert ds.classes == ["with_mask", "no_mask"]
    assert sorted(r.stem for r in ds) == sorted(
        ["img1", "img2", "img3", "img4", "img5", "img6", "instances_img1", "instances_extra"]
    ), "every image of the clashing base is prefixed, so one video's frames stay one group"
    assert ds.splits == {"train": ["instances_img1"], "val": ["instances_extra"]}
    assert ds.merge == {"without_mask": "no_mask", "mask_weared_incorrect": "no_mask"}
    renamed = next(r for r in ds if r.stem == "instances_img1")
    assert renamed.labels == ["no_mask"] and np.allclose(renamed.boxes, [[1, 1, 20, 20]])
    assert (out / "images" / "instances_img1.jpg").read_bytes() == (
        other / "images" / "img1.jpg"
    ).read_bytes()


def test_merge_errors(voc: Path, tmp_path: Path, capsys) -> None:
    assert main(["data", "merge", str(voc), "--out", str(tmp_path / "m")]) == 1
    assert "at least two" in capsys.readouterr().err
    assert main(["data", "merge", str(voc), str(voc), "--out", str(tmp_path / "m"), "--merge", "typo=x"]) == 1
    assert "unknown class 'typo'" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_data_without_subcommand_prints_help(capsys) -> None:
    assert main(["data"]) == 2
    out = capsys.readouterr().out
    for sub in ("stats", "convert", "split", "frames", "merge"):
        assert sub in out
