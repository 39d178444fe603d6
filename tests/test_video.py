"""``maskwatch detect`` on real footage (unlabelled clips from ../shared/videos) and real images: the outputs
have the input's shape, every frame is accounted for, bad input is one line, Ctrl-C leaves playable files.

Most tests use a development checkpoint: the WIDER FACE RetinaFace (a real face detector) with a class
head nudged by seeded noise, so boxes are real and labels vary, but the mask decision is not learned. Only
the test that judges the mask decision uses the packaged default model.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from maskwatch.cli import main
from maskwatch.io import OUTPUT_MARKER
from maskwatch.models.registry import packaged_weights
from tests.media import read_jsonl, read_video


def test_video_outputs_match_input(dev_onnx: Path, videos: Path, tmp_path: Path) -> None:
    """A 29.97 fps 1280x720 clip: the annotated video has its frame count, size and rate; the JSONL a line
    per frame; the CSV a row per detection; the summary agrees with both."""
    clip = videos / "tv-mask-howto-1280x720.mp4"
    out, jsonl, table, report = (tmp_path / n for n in ("out.mp4", "d.jsonl", "d.csv", "summary.json"))
    args = ["--output", str(out), "--jsonl", str(jsonl), "--csv", str(table), "--summary", str(report)]
    rc = main(["-q", "detect", str(clip), "--model", str(dev_onnx), "--imgsz", "320", "--track", *args])
    assert rc == 0
    n_in, size_in, fps_in = read_video(clip)
    assert read_video(out) == (n_in, size_in, pytest.approx(fps_in, rel=1e-3))
    lines = read_jsonl(jsonl)
    assert [r["frame"] for r in lines] == list(range(n_in))
    assert lines[-1]["time"] == pytest.approx((n_in - 1) / fps_in, abs=0.01)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == sum(len(r["detections"]) for r in lines) > 0
    assert set(rows[0]) == {"frame", "time", "x1", "y1", "x2", "y2", "label", "score", "track"}
    summary = json.loads(report.read_text())
    assert summary["frames"] == n_in and summary["faces"]["total"] == len(rows)
    assert summary["faces"]["with_mask"] + summary["faces"]["no_mask"] == len(rows)
    assert summary["people"]["total"] >= 1
    tracked = [d for r in lines for d in r["detections"] if d["track"] > 0]
    assert len(tracked) > 0.5 * len(rows), "faces keep a confirmed track id"
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left behind"


def test_street_clip_shows_one_masked_face(videos: Path, tmp_path: Path) -> None:
    """The packaged default model on the street clip (one woman wearing a surgical mask throughout)."""
    if not packaged_weights("maskface-mnet").is_file():
        pytest.skip(
            "packaged maskface-mnet weights not present yet (maskwatch/models/weights/maskface-mnet.pt)"
        )
    jsonl = tmp_path / "street.jsonl"
    clip = str(videos / "street-mask-720x404.mp4")
    rc = main(["-q", "detect", clip, "--max-frames", "100", "--jsonl", str(jsonl)])
    assert rc == 0
    lines = read_jsonl(jsonl)
    assert len(lines) == 100
    one_masked = sum(len(r["detections"]) == 1 and r["detections"][0]["label"] == "with_mask" for r in lines)
    assert one_masked >= 70, f"only {one_masked}/100 frames show exactly one with_mask face"


def test_images_glob_and_folder(dev_model: Path, kaggle: Path, tmp_path: Path) -> None:
    """Image sources: annotated copies under the input names (same sizes), JSONL and CSV with the file."""
    import cv2

    pattern = str(kaggle / "images" / "maksssksksss1[0-2].jpg")
    out = tmp_path / "annotated"
    args = ["--jsonl", str(tmp_path / "i.jsonl"), "--csv", str(tmp_path / "i.csv"), "--min-face", "12"]
    args += ["--backend", "torch", "--imgsz", "320"]
    rc = main(["-q", "detect", pattern, "--model", str(dev_model), "--output", str(out), *args])
    assert rc == 0
    names = [f"maksssksksss{i}.jpg" for i in (10, 11, 12)]
    assert sorted(p.name for p in out.iterdir()) == sorted([*names, OUTPUT_MARKER])
    for name in names:
        assert cv2.imread(str(out / name)).shape == cv2.imread(str(kaggle / "images" / name)).shape
    lines = read_jsonl(tmp_path / "i.jsonl")
    assert [r["file"] for r in lines] == names and all(r["time"] is None for r in lines)
    for r in lines:
        for d in r["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert min(x2 - x1, y2 - y1) >= 12 - 0.1 and d["score"] >= 0.5
    rows = list(csv.DictReader((tmp_path / "i.csv").open()))
    assert {r["file"] for r in rows} <= set(names) and len(rows) == sum(len(r["detections"]) for r in lines)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["missing", "corrupt", "no-answer", "empty-glob"])
def test_bad_input_is_one_line(kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = {
        "missing": str(tmp_path / "nope.mp4"),
        "corrupt": str(tmp_path / "corrupt.mp4"),
        "no-answer": f"http://127.0.0.1:{_closed_port()}/stream.mjpg",
        "empty-glob": str(tmp_path / "*.jpg"),
    }[kind]
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    out = tmp_path / "out.mp4"
    rc = main(["detect", source, "--output", str(out), "--jsonl", str(tmp_path / "d.jsonl")])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("maskwatch: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert source in err
    assert not out.exists() and not (tmp_path / "d.jsonl").exists()
