"""``maskwatch detect`` on real footage (unlabelled clips from ../shared/videos) and real images: the outputs
have the input's shape, every frame is accounted for, bad input is one line, Ctrl-C leaves playable files.

Most tests use a development checkpoint: the WIDER FACE RetinaFace (a real face detector) with a class
head nudged by seeded noise, so boxes are real and labels vary, but the mask decision is not learned. Only
the test that judges the mask decision uses the packaged default model.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from maskwatch.cli import main
from maskwatch.models.registry import build_detector, packaged_weights
from tests.conftest import ROOT


def make_dev_checkpoint(shared: Path, path: Path) -> Path:
    """A real face detector whose with_mask / no_mask logits differ by seeded noise (the face weights
    alone give both classes the same logit, which would make every label a tie)."""
    det = build_detector("maskface-mnet", ["with_mask", "no_mask"])
    det.load_face_weights(shared / "weights/retinaface-mobilenet0.25/mobilenet0.25_Final.pth")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for head in det.model.ClassHead:
            head.conv1x1.weight.add_(torch.randn(head.conv1x1.weight.shape, generator=gen) * 0.05)
    det.save(path)
    return path


@pytest.fixture(scope="module")
def dev_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dev_checkpoint(shared, tmp_path_factory.mktemp("model") / "dev.pt")


@pytest.fixture(scope="module")
def dev_onnx(dev_model: Path) -> Path:
    """The same model exported once, so runs on the ONNX backend do not each pay for an export."""
    from maskwatch.models.onnx_backend import export_onnx
    from maskwatch.models.registry import load_detector

    return export_onnx(load_detector(dev_model), dev_model.with_suffix(".onnx"))


@pytest.fixture(scope="module")
def videos(shared: Path) -> Path:
    return shared / "videos"


def read_video(path: Path) -> tuple[int, tuple[int, int], float]:
    """Frame count (by decoding every frame), size and frame rate, as a player sees them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, (s.width, s.height), float(s.average_rate)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


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
    assert sorted(p.name for p in out.iterdir()) == names
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


def test_ctrl_c_finalises_outputs(dev_model: Path, videos: Path, tmp_path: Path) -> None:
    """SIGINT mid-run: exit 130, and the video, JSONL and summary are complete and agree up to the last
    processed frame (the video plays: every frame decodes)."""
    out, jsonl, report = tmp_path / "out.mp4", tmp_path / "d.jsonl", tmp_path / "s.json"
    cmd = [sys.executable, "-m", "maskwatch", "-q", "detect", str(videos / "group-mask-960x506.mp4")]
    cmd += ["--model", str(dev_model), "--backend", "torch", "--imgsz", "320"]
    cmd += ["--output", str(out), "--jsonl", str(jsonl), "--summary", str(report)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until frames are being written
        tmp = list(tmp_path.glob(".d.jsonl.*.tmp"))
        if tmp and tmp[0].stat().st_size > 2000:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = read_jsonl(jsonl)
    summary = json.loads(report.read_text())
    n_in = read_video(videos / "group-mask-960x506.mp4")[0]
    assert summary["interrupted"] and 0 < summary["frames"] < n_in
    assert [r["frame"] for r in lines] == list(range(summary["frames"]))
    assert read_video(out)[0] == summary["frames"]
    assert "Traceback" not in err
