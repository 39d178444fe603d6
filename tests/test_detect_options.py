"""``detect --classes``, ``--save-txt`` (+ ``--save-conf``), ``--vid-stride``, and what the pipeline hands the
annotator for still images, on real images and a real clip with the development checkpoint."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest

from maskwatch.cli import main
from maskwatch.detections import Detections
from maskwatch.io import OUTPUT_MARKER
from tests.media import read_jsonl

FAST = ["--backend", "torch", "--imgsz", "320"]


@pytest.fixture(scope="module")
def crowd_images(kaggle: Path) -> str:
    """Four Kaggle images (20-24; 23 is absent) where the development model finds faces of both labels
    (6 no_mask, 1 with_mask at the default threshold), so that filtering has something to remove."""
    return str(kaggle / "images" / "maksssksksss2[0-4].jpg")


def test_classes_filters_by_name(crowd_images: str, dev_model: Path, tmp_path: Path) -> None:
    all_, only = tmp_path / "all.jsonl", tmp_path / "only.jsonl"
    assert main(["-q", "detect", crowd_images, "--model", str(dev_model), *FAST, "--jsonl", str(all_)]) == 0
    rc = main(["-q", "detect", crowd_images, "--model", str(dev_model), *FAST, "--jsonl", str(only),
               "--classes", "no_mask"])  # fmt: skip
    assert rc == 0
    every = [d for r in read_jsonl(all_) for d in r["detections"]]
    kept = [d for r in read_jsonl(only) for d in r["detections"]]
    assert {d["label"] for d in every} == {"with_mask", "no_mask"}, "the test needs both labels"
    assert kept == [d for d in every if d["label"] == "no_mask"]


def test_unknown_class_is_one_line(
    crowd_images: str, dev_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    rc = main(["detect", crowd_images, "--model", str(dev_model), "--jsonl", str(out), "--classes", "nomask"])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("maskwatch: error: --classes nomask") and err.count("\n") == 1
    assert "with_mask, no_mask" in err and not out.exists()


def test_save_txt_matches_jsonl_for_images(crowd_images: str, dev_model: Path, tmp_path: Path) -> None:
    import cv2

    labels, jsonl = tmp_path / "labels", tmp_path / "d.jsonl"
    rc = main(["-q", "detect", crowd_images, "--model", str(dev_model), *FAST, "--jsonl", str(jsonl),
               "--save-txt", str(labels), "--save-conf"])  # fmt: skip
    assert rc == 0
    records = read_jsonl(jsonl)
    names = ("with_mask", "no_mask")
    for r in records:
        h, w = cv2.imread(str(Path(crowd_images).parent / r["file"])).shape[:2]
        txt = labels / f"{Path(r['file']).stem}.txt"
        if not r["detections"]:
            assert not txt.exists()
            continue
        rows = [line.split() for line in txt.read_text().splitlines()]
        assert len(rows) == len(r["detections"])
        for row, d in zip(rows, r["detections"], strict=True):
            x1, y1, x2, y2 = d["box"]
            assert names[int(row[0])] == d["label"]
            expect = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h, d["score"]]
            assert [float(v) for v in row[1:]] == pytest.approx(expect, abs=2e-3)
    assert (labels / OUTPUT_MARKER).is_file()


def test_vid_stride_processes_every_nth_frame(dev_model: Path, videos: Path, tmp_path: Path) -> None:
    clip = videos / "street-mask-720x404.mp4"
    jsonl, labels, report = tmp_path / "d.jsonl", tmp_path / "labels", tmp_path / "s.json"
    rc = main(["-q", "detect", str(clip), "--model", str(dev_model), *FAST, "--vid-stride", "5",
               "--max-frames", "60", "--jsonl", str(jsonl), "--save-txt", str(labels),
               "--summary", str(report)])  # fmt: skip
    assert rc == 0
    frames = [r["frame"] for r in read_jsonl(jsonl)]
    assert frames == list(range(0, 60, 5))
    assert json.loads(report.read_text())["frames"] == 12
    written = {int(p.stem.rsplit("_", 1)[1]) for p in labels.glob("street-mask-720x404_*.txt")}
    assert written and written <= set(frames)


@pytest.mark.parametrize(
    "option",
    [["--vid-stride", "0"], ["--min-face", "-1"], ["--conf", "1.5"], ["--iou", "0"], ["--imgsz", "8"]],
)
def test_bad_option_values_are_refused_before_the_model_loads(
    option: list[str], videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative --min-face would keep every face and a --conf over 1 none, silently: one line, exit 1,
    and no output started."""
    out = tmp_path / "out.mp4"
    rc = main(["detect", str(videos / "street-mask-720x404.mp4"), *option, "--output", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and f"{option[0]} {option[1]}" in err and err.count("\n") == 1, err
    assert not out.exists()


def test_still_images_get_no_fps(crowd_images: str, dev_model: Path, videos: Path, tmp_path: Path) -> None:
    """The annotator is given an FPS for video frames only (a still image has no rate to show)."""
    from maskwatch.predict import load_predictor
    from maskwatch.video.annotate import Annotator
    from maskwatch.video.pipeline import DetectionPipeline, DetectOptions
    from maskwatch.video.sinks import ImageFolderSink
    from maskwatch.video.sources import open_source

    class Recording(Annotator):
        def __init__(self, names: tuple[str, ...]) -> None:
            super().__init__(names)
            self.fps: list[float | None] = []

        def __call__(self, image: np.ndarray, dets: Detections, fps: float | None = None) -> np.ndarray:
            self.fps.append(fps)
            return super().__call__(image, dets, fps)

    predictor = load_predictor(dev_model, "torch", "cpu", 160)
    seen = {}
    for spec in (crowd_images, str(videos / "street-mask-720x404.mp4")):
        ann = Recording(predictor.class_names)
        src = open_source(spec)
        sink = ImageFolderSink(tmp_path / f"out-{src.kind}")
        options = DetectOptions(max_frames=5, progress=False)
        DetectionPipeline(src, predictor, [sink], options, ann).run()
        seen[src.kind] = ann.fps
    assert seen["images"] == [None] * len(glob.glob(crowd_images))
    assert all(f is not None and f > 0 for f in seen["video"][1:])
