"""The Python API as notebook users call it: ``maskwatch.load_model(...)(image)`` on paths, PIL images and
OpenCV (BGR) arrays, with the CLI's defaults, plus ``maskwatch models``, ``--version`` and the samples."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

import maskwatch
from maskwatch import defaults
from maskwatch.api import Model, load_model
from maskwatch.assets import sample_dir, sample_images
from maskwatch.cli import build_parser, main
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image

ROOT = Path(__file__).resolve().parents[1]
# Two faces unmasked, two masked: the image where BGR read as RGB turned every face into with_mask.
SAMPLE = sample_dir() / "maksssksksss526.jpg"


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model()


def same(a: Detections, b: Detections, px: float = 2.0) -> bool:
    """Same faces and classes; boxes within ``px`` (two JPEG decoders may differ by a grey level)."""
    if len(a) != len(b) or a.class_names != b.class_names:
        return False
    order_a, order_b = np.lexsort(a.xyxy.T[::-1]), np.lexsort(b.xyxy.T[::-1])
    return bool(
        np.array_equal(a.class_id[order_a], b.class_id[order_b])
        and np.allclose(a.xyxy[order_a], b.xyxy[order_b], atol=px)
    )


def test_model_is_callable_with_names(model: Model) -> None:
    assert model.class_names == ("with_mask", "no_mask")
    assert model.names == {0: "with_mask", 1: "no_mask"}
    assert "maskface-mnet" in repr(model)
    dets = model(SAMPLE)
    assert isinstance(dets, Detections)
    assert model.predict(str(SAMPLE)) == dets
    assert maskwatch.load_model is load_model and maskwatch.Model is Model


def test_opencv_bgr_array_gets_the_same_classes_as_the_file(model: Model) -> None:
    """The regression: ``model(cv2.imread(p))`` used to call every face with_mask."""
    by_path = model(SAMPLE)
    assert set(by_path.label_names) == {"with_mask", "no_mask"}
    bgr = cv2.imread(str(SAMPLE))
    assert same(model(bgr), by_path)
    assert same(model(bgr[..., ::-1], channels="rgb"), by_path)
    assert same(model(Image.open(SAMPLE)), by_path)
    assert model(load_image(SAMPLE), channels="rgb") == by_path  # identical pixels, identical output
    # and the wrong order really is wrong, so the test above can fail
    assert not same(model(bgr, channels="rgb"), by_path)


def test_every_bundled_sample_agrees_across_input_kinds(model: Model) -> None:
    for path in sample_images():
        rgb = load_image(path)
        assert model(np.ascontiguousarray(rgb[..., ::-1])) == model(path)
        assert model(Image.fromarray(rgb)) == model(path)


def test_lists_give_lists_in_order(model: Model) -> None:
    paths = sample_images()
    inputs = [paths[0], cv2.imread(str(paths[1])), Image.open(paths[2])]
    out = model(inputs)
    assert isinstance(out, list) and len(out) == 3
    for got, path in zip(out, paths, strict=True):
        assert same(got, model(path))
    assert model([]) == []
    assert model(tuple(paths[:2])) == [model(paths[0]), model(paths[1])]


def test_grayscale_inputs(model: Model) -> None:
    gray = cv2.cvtColor(cv2.imread(str(SAMPLE)), cv2.COLOR_BGR2GRAY)
    three = model(np.repeat(gray[..., None], 3, axis=2))
    assert len(three) > 0
    assert model(gray) == three
    assert model(gray[..., None]) == three
    assert model(Image.fromarray(gray)) == three  # PIL mode "L"


def test_alpha_channel_is_composited_like_a_file(model: Model, tmp_path: Path) -> None:
    bgr = cv2.imread(str(SAMPLE))
    opaque = np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    assert model(opaque) == model(bgr)  # BGRA
    assert model(opaque[..., [2, 1, 0, 3]], channels="rgb") == model(bgr)  # RGBA
    alpha = np.zeros(bgr.shape[:2], np.uint8)
    alpha[:, : bgr.shape[1] // 2] = 255  # left half visible, right half transparent
    rgba = np.dstack([bgr[..., ::-1], alpha])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "half.png")
    from_file = model(tmp_path / "half.png")
    assert model(rgba, channels="rgb") == from_file
    assert model(Image.open(tmp_path / "half.png")) == from_file
    assert 0 < len(from_file) < len(model(bgr))  # the transparent half's faces are gone


def test_float_and_16_bit_arrays(model: Model) -> None:
    bgr = cv2.imread(str(SAMPLE))
    ref = model(bgr)
    for dtype in (np.float32, np.float64):
        assert model(bgr.astype(dtype) / 255) == ref
    assert model(bgr.astype(np.uint16) * 257) == ref
    assert model(bgr.astype(np.int64)) == ref  # integers already in 0..255
    with pytest.raises(MaskwatchError, match=r"\[0, 1\].*divide by 255"):
        model(bgr.astype(np.float32))  # 0-255 floats: the classic mistake
    with pytest.raises(MaskwatchError, match="NaN"):
        model(np.full((50, 50, 3), np.nan, np.float32))
    with pytest.raises(MaskwatchError, match=r"0\.\.255"):
        model(bgr.astype(np.int32) * 4)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((100, 0, 3), np.uint8), "empty"),
        (np.zeros(30, np.uint8), "shape"),
        (np.zeros((40, 40, 2), np.uint8), "shape"),
        (np.zeros((40, 40, 5), np.uint8), "shape"),
        (np.zeros((2, 40, 40, 3), np.uint8), "list"),
        (np.zeros((40, 40, 3), bool), "dtype"),
        (np.zeros((40, 40, 3), complex), "dtype"),
    ],
)
def test_unusable_arrays_get_a_clear_error(model: Model, array: np.ndarray, message: str) -> None:
    with pytest.raises(MaskwatchError, match=message):
        model(array)


def test_bad_arguments(model: Model, tmp_path: Path) -> None:
    with pytest.raises(MaskwatchError, match="unsupported input int"):
        model(42)  # type: ignore[arg-type]
    with pytest.raises(MaskwatchError, match="not found"):
        model(tmp_path / "missing.jpg")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(MaskwatchError, match="unreadable"):
        model(tmp_path / "bad.jpg")
    with pytest.raises(MaskwatchError, match="channels"):
        model(SAMPLE, channels="bgra")
    with pytest.raises(MaskwatchError, match="conf"):
        model(SAMPLE, conf=1.5)
    with pytest.raises(MaskwatchError, match="iou"):
        model(SAMPLE, iou=0)
    with pytest.raises(MaskwatchError, match="no-such-model"):
        load_model("no-such-model")


def test_conf_and_iou_change_the_result(model: Model) -> None:
    default = model(SAMPLE)
    low, high = model(SAMPLE, conf=0.001), model(SAMPLE, conf=0.95)
    assert len(low) > len(default) > len(high) > 0 and high.confidence.min() >= 0.95
    # from evaluation's 0.01 up, conf only filters: a face scores the same whatever the threshold
    mid = model(SAMPLE, conf=0.01)
    np.testing.assert_allclose(mid.confidence[: len(default)], default.confidence, atol=1e-6)
    # iou=1 turns NMS off: every overlapping anchor above conf survives
    assert len(model(SAMPLE, conf=0.05, iou=1.0)) > len(model(SAMPLE, conf=0.05)) >= len(default)


def test_one_default_operating_point_everywhere() -> None:
    import inspect

    from maskwatch.apps.prelabel import prelabel
    from maskwatch.engine.evaluate import OPERATING_CONF
    from maskwatch.models.base import Detector
    from maskwatch.video.pipeline import DetectOptions, detect

    args = build_parser().parse_args(["detect", "x.jpg"])
    assert (args.conf, args.iou) == (defaults.CONF, defaults.IOU)
    # pre-labels have their own, lower default (a person reviews every box), also in one place
    assert build_parser().parse_args(["data", "prelabel", "x", "--out", "y"]).conf == defaults.PRELABEL_CONF
    for fn in (detect, Detector.__call__):
        params = inspect.signature(fn).parameters
        assert (params["conf"].default, params["iou"].default) == (defaults.CONF, defaults.IOU)
    assert (DetectOptions().conf, DetectOptions().iou) == (defaults.CONF, defaults.IOU)
    assert inspect.signature(prelabel).parameters["conf"].default == defaults.PRELABEL_CONF
    assert OPERATING_CONF == defaults.CONF


@pytest.mark.slow
def test_api_and_cli_find_the_same_faces(model: Model, kaggle: Path, tmp_path: Path) -> None:
    """The issue's case: on this Kaggle image the API found 25 faces and the CLI 20 (0.25/0.45 vs 0.5/0.4)."""
    image = kaggle / "images" / "maksssksksss11.jpg"
    jsonl = tmp_path / "d.jsonl"
    assert main(["-q", "detect", str(image), "--jsonl", str(jsonl)]) == 0
    cli = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(cli) == 1
    api = model(image)
    assert api.to_list() == cli[0]["detections"]
    from maskwatch.models.registry import load_detector

    # Detector.__call__, the older entry point, runs the detector alone, with the same defaults
    alone = load_model(classifier=False)(image)
    assert same(load_detector()(load_image(image)), alone, px=1.0)
    assert len(model(image, conf=0.25, iou=0.45)) > len(api)  # the old API defaults found more


def test_load_model_from_checkpoint_and_onnx(model: Model, tmp_path: Path) -> None:
    from maskwatch.models.registry import packaged_weights

    torch_model = load_model(packaged_weights("maskface-mnet"), backend="torch")
    assert torch_model.backend == "torch"
    assert same(torch_model(SAMPLE), model(SAMPLE), px=1.0)
    onnx_path = tmp_path / "m.onnx"
    assert (
        main(["-q", "export", "--model", "maskface-mnet", "--format", "onnx", "--out", str(onnx_path)]) == 0
    )
    onnx_model = load_model(onnx_path)
    assert onnx_model.backend == "onnx" and onnx_model.class_names == model.class_names
    assert same(onnx_model(SAMPLE), model(SAMPLE), px=0.5)


def test_version() -> None:
    assert maskwatch.__version__ == version("maskwatch")
    r = subprocess.run([sys.executable, "-m", "maskwatch", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == f"maskwatch {maskwatch.__version__}"


def test_import_does_not_load_torch() -> None:
    code = "import sys, maskwatch, maskwatch.api, maskwatch.defaults; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


def test_models_command_lists_builtin_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "weights", "classes", "imgsz", "box", "styles", "crop", "classifier"]
    default = next(line for line in lines if line.startswith("maskface-mnet"))
    assert (
        "(default)" in default and ".pt" in default and "with_mask, no_mask" in default and "640" in default
    )
    assert "kaggle, ilc" in default, "the default model's box styles, its default first"
    assert default.endswith("mnet, 96 px crops"), "the default model's second stage"
    assert any(line.startswith("faster-rcnn-x101-fpn") and "none" in line for line in lines)
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["maskface-mnet", "faster-rcnn-x101-fpn", "retinanet-r50-fpn"]
    assert Path(rows[0]["pt"]).is_file() and rows[0]["class_names"] == ["with_mask", "no_mask"]
    assert rows[1]["pt"] is None and rows[1]["class_names"] is None
    assert rows[0]["box_styles"] == ["kaggle", "ilc"] and rows[1]["box_styles"] is None
    assert rows[0]["classifier"] == {"arch": "mnet", "size": 96} and rows[1]["classifier"] is None


def test_samples_are_packaged_small_and_documented() -> None:
    images = sample_images()
    assert 2 <= len(images) <= 3
    for path in images:
        assert path.stat().st_size < 60_000
        assert load_image(path).shape[2] == 3
    sources = (sample_dir() / "SOURCES.md").read_text()
    assert "CC0" in sources and all(p.name in sources for p in images)
    package_data = (ROOT / "pyproject.toml").read_text()
    assert '"assets/*.jpg"' in package_data


@pytest.mark.slow
def test_detect_without_source_runs_on_the_samples(
    model: Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing here: no ../shared, no images
    with caplog.at_level("INFO"):
        assert main(["detect", "--output", "out/", "--jsonl", "d.jsonl"]) == 0
    assert "bundled samples" in caplog.text
    written = sorted(
        p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")
    )  # marker aside
    assert written == [p.name for p in sample_images()]
    lines = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert len(lines) == len(sample_images())
    for path, line in zip(sample_images(), lines, strict=True):
        assert line["detections"] == model(path).to_list()
    labels = {d["label"] for line in lines for d in line["detections"]}
    assert labels == {"with_mask", "no_mask"}  # both classes visible, as the README promises
