"""Every bad input a user can give ``maskwatch data``: one line naming the file and the problem, exit code
1, no traceback, and nothing written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from maskwatch.cli import main
from tests.data_synth import make_coco, make_createml, make_voc, make_yolo_labelimg, write_image


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sets")
    return {
        "voc": make_voc(base / "voc"),
        "yolo": make_yolo_labelimg(base / "yolo", ["with_mask", "without_mask", "mask_weared_incorrect"]),
        "coco": make_coco(base / "coco", ["with_mask", "without_mask", "mask_weared_incorrect"]),
        "createml": make_createml(base / "createml"),
    }


def _copy(sets: dict[str, Path], fmt: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(sets[fmt], tmp_path / fmt))


def _fails(argv: list[str], capsys: pytest.CaptureFixture, *fragments: str) -> str:
    """Run the CLI in-process; assert exit 1 and a single ``maskwatch[ sub...]: error:`` line (argparse names
    the subcommand) holding ``fragments``."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse exits from inside parse_args
        rc = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("WARNING")]
    assert rc == 1, err
    assert len(lines) == 1 and re.match(r"maskwatch( [a-z]+)*: error: ", lines[0]), err
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def _convert_fails(src: Path, tmp_path: Path, capsys, *fragments: str, extra: tuple[str, ...] = ()) -> None:
    out = tmp_path / "out"
    _fails(["data", "convert", str(src), str(out), "--to", "coco", *extra], capsys, *fragments)
    assert not out.exists(), "nothing half-written"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left"


def test_missing_image_voc(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "voc", tmp_path)
    (src / "images" / "img3.jpg").unlink()
    _convert_fails(src, tmp_path, capsys, "img3.xml", "image 'img3.jpg' not found")


def test_missing_image_coco(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "coco", tmp_path)
    (src / "images" / "img5.jpg").unlink()
    _convert_fails(src, tmp_path, capsys, "instances.json", "image 'img5.jpg' not found")


def test_missing_image_yolo_is_an_orphan_label(sets, tmp_path: Path, capsys) -> None:
    src = tmp_path / "y"
    write_image(src / "images" / "a.jpg", 20, 20)
    (src / "labels").mkdir()
    (src / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (src / "labels" / "b.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (src / "classes.txt").write_text("face\n")
    _convert_fails(src, tmp_path, capsys, "b.txt", "no image for this label file")


def test_missing_image_createml(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "createml", tmp_path)
    (src / "img1.jpg").unlink()
    _convert_fails(src, tmp_path, capsys, "annotations.json", "image 'img1.jpg' not found")


@pytest.mark.parametrize("fmt", ["yolo", "createml"])
def test_unreadable_image_when_its_size_is_needed(fmt: str, sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, fmt, tmp_path)
    (src / "img6.jpg").write_bytes(b"GIF89a but not really")
    _convert_fails(src, tmp_path, capsys, "img6.jpg", "unreadable image")


def test_malformed_xml(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "voc", tmp_path)
    (src / "annotations" / "img2.xml").write_text("<annotation><filename>img2.png</filename><size>")
    _convert_fails(src, tmp_path, capsys, "img2.xml", "malformed XML")


def test_voc_box_that_is_not_a_number(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "voc", tmp_path)
    xml = src / "annotations" / "img1.xml"
    xml.write_text(xml.read_text().replace("<xmin>2</xmin>", "<xmin>two</xmin>"))
    _convert_fails(src, tmp_path, capsys, "img1.xml", "<xmin>", "not a number")


def test_malformed_json(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "coco", tmp_path)
    path = src / "annotations" / "instances.json"
    path.write_text(path.read_text()[:-20])
    _convert_fails(path, tmp_path, capsys, "instances.json", "malformed JSON")


def test_coco_structure_errors(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "coco", tmp_path)
    path = src / "annotations" / "instances.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 77
    path.write_text(json.dumps(data))
    _convert_fails(src, tmp_path, capsys, "instances.json", "unknown category_id 77")
    data["annotations"][0].update(category_id=10, bbox=[1, 2, 3])
    path.write_text(json.dumps(data))
    _convert_fails(src, tmp_path, capsys, "instances.json", "bbox must be [x, y, w, h]")
    path.write_text(json.dumps({"images": {"not": "a list"}}))
    _convert_fails(
        path, tmp_path, capsys, "instances.json", "not a COCO instances file", extra=("--format", "coco")
    )


def test_malformed_yaml(tmp_path: Path, capsys) -> None:
    src = tmp_path / "y"
    write_image(src / "images" / "train" / "a.jpg", 20, 20)
    (src / "data.yaml").write_text("train: images/train\nval: images/train\nnames: [face, mask\n")
    _convert_fails(src / "data.yaml", tmp_path, capsys, "data.yaml", "malformed YAML")


def test_bad_yolo_label_line(sets, tmp_path: Path, capsys) -> None:
    src = _copy(sets, "yolo", tmp_path)
    (src / "img4.txt").write_text("0 0.5 0.5 0.1 0.1\n1 0.5 oops 0.1\n")
    _convert_fails(src, tmp_path, capsys, "img4.txt:2", "expected 'class cx cy w h'")
    (src / "img4.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    _convert_fails(src, tmp_path, capsys, "img4.txt:1", "class index 7 out of range (3 classes)")


def test_merge_errors(sets, capsys, tmp_path: Path) -> None:
    _convert_fails(
        sets["voc"],
        tmp_path,
        capsys,
        str(sets["voc"]),
        "unknown class 'no_such'",
        extra=("--merge", "no_such,with_mask=x"),
    )
    _convert_fails(
        sets["voc"], tmp_path, capsys, "expected 'SRC[,SRC...]=DST'", extra=("--merge", "with_mask")
    )
    _convert_fails(
        sets["voc"],
        tmp_path,
        capsys,
        "'with_mask' is mapped to both",
        extra=("--merge", "with_mask=a", "--merge", "with_mask=b"),
    )


def test_path_and_format_errors(sets, tmp_path: Path, capsys) -> None:
    _fails(["data", "stats", str(tmp_path / "nowhere")], capsys, "nowhere: no such file or directory")
    (tmp_path / "empty").mkdir()
    _fails(["data", "stats", str(tmp_path / "empty")], capsys, "empty: cannot tell the annotation format")
    _fails(
        ["data", "convert", str(sets["voc"]), str(tmp_path / "o"), "--to", "pascal"], capsys, "invalid choice"
    )
    _fails(
        ["data", "stats", str(sets["voc"]), "--split", str(tmp_path / "nosplit")],
        capsys,
        "nosplit: split folder not found",
    )
    (tmp_path / "stale").mkdir()
    (tmp_path / "stale" / "train.txt").write_text("img1\nimg99\n")
    _fails(
        ["data", "stats", str(sets["voc"]), "--split", str(tmp_path / "stale")],
        capsys,
        "train.txt: 1 image(s) not in the dataset, e.g. 'img99'",
    )
    plot, numbers = tmp_path / "p.docx", tmp_path / "s.json"
    argv = ["data", "stats", str(sets["voc"]), "--plot", str(plot), "--json", str(numbers)]
    _fails(argv, capsys, "cannot plot to a .docx")
    assert not (tmp_path / "o").exists() and not plot.exists() and not numbers.exists()


def test_installed_command_reports_without_traceback(sets, tmp_path: Path) -> None:
    """The real entry point: what a user types, exit status and stderr as the shell sees them."""
    exe = shutil.which("maskwatch")
    assert exe, "the package is installed with its console script"
    src = _copy(sets, "voc", tmp_path)
    (src / "annotations" / "img1.xml").write_text("<annotation>")
    out = tmp_path / "out"
    proc = subprocess.run(
        [exe, "data", "convert", str(src), str(out), "--to", "yolo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith(f"maskwatch: error: {src / 'annotations' / 'img1.xml'}: malformed XML")
    )
    assert not out.exists()
