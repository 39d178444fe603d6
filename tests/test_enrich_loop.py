"""``data merge`` guards (issue 10) and the whole enrichment loop from the installed command (issue 9):
frames -> prelabel --select -> a person's correction -> merge into a base -> a leak-free split."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from tests.data_synth import make_coco, make_voc

MERGE = "without_mask,mask_weared_incorrect=no_mask"


def test_merge_a_with_itself_or_a_copy_does_not_double(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    a = make_voc(tmp_path / "a")
    copy = tmp_path / "copy"
    shutil.copytree(a, copy)
    original = load_dataset(a)
    for second in (a, copy):
        out = tmp_path / f"m-{second.name}"
        assert main(["data", "merge", str(a), str(second), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert f"skipped {len(original)} images already in an earlier base (same bytes" in printed
        merged = load_dataset(out)
        assert sorted(r.stem for r in merged) == sorted(r.stem for r in original)
        assert merged.num_boxes == original.num_boxes


def test_merge_keeps_one_copy_of_a_shared_image(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A base that shares one image with another (same bytes, its own name) keeps its other images."""
    a = make_voc(tmp_path / "a")
    b = tmp_path / "b"
    (b / "images").mkdir(parents=True)
    (b / "annotations").mkdir()
    shutil.copy(a / "images" / "img1.jpg", b / "images" / "again.jpg")
    (b / "annotations" / "again.xml").write_text(
        (a / "annotations" / "img1.xml").read_text().replace("img1.jpg", "again.jpg")
    )
    make_voc(b, spec=[("new.jpg", 40, 40, [("with_mask", 1, 1, 30, 30)])])
    shutil.copy(b / "images" / "new.jpg", b / "images" / "twin.jpg")  # a copy inside one base: its own affair
    (b / "annotations" / "twin.xml").write_text(
        (b / "annotations" / "new.xml").read_text().replace("new", "twin")
    )
    assert main(["data", "merge", str(a), str(b), "--out", str(tmp_path / "m")]) == 0
    assert "skipped 1 images already in an earlier base" in capsys.readouterr().out
    stems = sorted(r.stem for r in load_dataset(tmp_path / "m"))
    assert "again" not in stems and {"new", "twin"} <= set(stems) and len(stems) == 8


def test_merge_refuses_no_mask_beside_without_mask(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kaggle_like = make_voc(tmp_path / "kaggle")  # with_mask, without_mask, mask_weared_incorrect
    frames = make_coco(
        tmp_path / "frames", ["with_mask", "no_mask"], spec=[("f.jpg", 30, 30, [("no_mask", 1, 1, 20, 20)])]
    )
    frames_json = str(frames / "annotations" / "instances.json")
    out = tmp_path / "m"
    assert main(["data", "merge", str(kaggle_like), frames_json, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "has without_mask, mask_weared_incorrect where instances has no_mask" in err
    assert f"--merge '{MERGE}'" in err and "--keep-classes" in err
    assert not out.exists()
    assert main(["data", "merge", str(kaggle_like), frames_json, "--out", str(out), "--merge", MERGE]) == 0
    assert load_dataset(out).classes == ["with_mask", "no_mask"]
    kept = tmp_path / "kept"
    assert main(["data", "merge", str(kaggle_like), frames_json, "--out", str(kept), "--keep-classes"]) == 0
    assert set(load_dataset(kept).classes) == {
        "with_mask",
        "without_mask",
        "mask_weared_incorrect",
        "no_mask",
    }


def _maskwatch(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed command (its console script), as a user runs it."""
    exe = shutil.which("maskwatch")
    cmd = [exe] if exe else [sys.executable, "-m", "maskwatch"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=300, env=os.environ.copy())


@pytest.mark.slow
def test_enrichment_loop_end_to_end(shared: Path, kaggle: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    for sub in ("images", "annotations"):
        (base / sub).mkdir(parents=True)
    for xml in sorted((kaggle / "annotations").glob("*.xml"))[:12]:
        shutil.copy(xml, base / "annotations")
        shutil.copy(kaggle / "images" / f"{xml.stem}.jpg", base / "images")
    video = shared / "videos" / "group-mask-960x506.mp4"

    r = _maskwatch("data", "frames", str(video), "--out", str(tmp_path / "frames"), "--every", "2")
    assert r.returncode == 0, r.stderr
    labelled = tmp_path / "to-label"
    r = _maskwatch(
        "data",
        "prelabel",
        str(tmp_path / "frames"),
        "--out",
        str(labelled),
        "--select",
        "3",
        "--base",
        str(base),
    )
    assert r.returncode == 0, r.stderr
    assert "pre-labelled 3 of 8 images (the 3 most worth labelling by mixed" in r.stdout, r.stdout
    assert (labelled / "selection.csv").is_file()

    # a person's correction in LabelImg: one face's class flipped, one box deleted
    xml = sorted(labelled.glob("*.xml"))[0]
    text = xml.read_text()
    assert text.count("<object>") >= 2
    text = text.replace("<name>with_mask</name>", "<name>no_mask</name>", 1)
    start = text.rindex("<object>")
    text = text[:start] + text[text.index("</object>", start) + len("</object>") :]
    xml.write_text(text)
    corrected = load_dataset(labelled)

    merged = tmp_path / "merged"
    r = _maskwatch("data", "merge", str(base), str(labelled), "--out", str(merged))
    assert r.returncode == 1 and "--merge" in r.stderr, "without_mask beside no_mask is refused"
    r = _maskwatch("data", "merge", str(base), str(labelled), "--out", str(merged), "--merge", MERGE)
    assert r.returncode == 0, r.stderr
    ds = load_dataset(merged)
    assert len(ds) == 15 and set(ds.classes) == {"with_mask", "no_mask"}
    got = next(rec for rec in ds if rec.stem == xml.stem)
    want = next(rec for rec in corrected if rec.stem == xml.stem)
    assert got.labels == want.labels and (got.boxes == want.boxes).all(), "the correction is what is merged"

    r = _maskwatch(
        "data", "split", str(merged), "--out", str(merged / "splits"), "--val", "0.2", "--test", "0.2"
    )
    assert r.returncode == 0, r.stderr
    splits = load_dataset(merged).splits
    frames = {s for s in (rec.stem for rec in ds) if s.startswith("group-mask-960x506_t")}
    homes = [name for name, stems in splits.items() if frames & set(stems)]
    assert len(homes) == 1 and frames <= set(splits[homes[0]]), "one video's frames stay in one split"
