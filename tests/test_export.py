"""ONNX export: the file alone is enough (metadata), and ONNX Runtime gives the torch model's detections
on real images of several aspect ratios (dynamic input size), within 1 px and 1e-3 in score."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from maskwatch.cli import main
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image
from maskwatch.models.registry import load_detector
from maskwatch.models.retinaface import LEVELS, batch_tensor, letterbox, make_anchors
from maskwatch.predict import load_predictor
from maskwatch.predict.onnx import OnnxPredictor
from tests.media import make_dev_checkpoint

IMAGES = ["maksssksksss0.jpg", "maksssksksss10.jpg", "maksssksksss100.jpg", "maksssksksss106.jpg"]
SQUARE = "maksssksksss109.jpg"  # 400x400


@pytest.fixture(scope="module")
def exported(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("export")
    ckpt = make_dev_checkpoint(shared, folder / "dev.pt")
    onnx_path = folder / "dev.onnx"
    assert main(["-q", "export", "--model", str(ckpt), "--format", "onnx", "--out", str(onnx_path)]) == 0
    return ckpt, onnx_path


def assert_same_detections(ref, got) -> None:
    assert len(ref) == len(got) > 0
    order_r, order_g = np.argsort(-ref.confidence), np.argsort(-got.confidence)
    np.testing.assert_allclose(got.xyxy[order_g], ref.xyxy[order_r], atol=1.0)
    np.testing.assert_allclose(got.confidence[order_g], ref.confidence[order_r], atol=1e-3)
    assert np.array_equal(got.class_id[order_g], ref.class_id[order_r])


def test_onnx_matches_torch_on_real_images(exported: tuple[Path, Path], kaggle: Path) -> None:
    ckpt, onnx_path = exported
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["maskwatch.class_names"]) == ["with_mask", "no_mask"]
    assert meta["maskwatch.imgsz"] == "640" and meta["maskwatch.static"] == "0"
    reference = load_detector(ckpt)  # the plain Detector.predict path
    fast_torch = load_predictor(ckpt, "torch")
    runtime = load_predictor(onnx_path)  # .onnx -> onnx backend, class names from the metadata alone
    assert isinstance(runtime, OnnxPredictor) and runtime.class_names == reference.class_names
    shapes = set()
    for name in IMAGES:
        image = load_image(kaggle / "images" / name)
        shapes.add(image.shape[:2])
        ref = reference.predict([image], conf=0.3, iou=0.4)[0]
        assert_same_detections(ref, runtime.predict([image], conf=0.3, iou=0.4)[0])
        assert_same_detections(ref, fast_torch.predict([image], conf=0.3, iou=0.4)[0])
    assert len(shapes) >= 3, "several input sizes go through the one dynamic graph"


def test_static_export_and_detect_with_onnx_file(
    exported: tuple[Path, Path], kaggle: Path, tmp_path: Path
) -> None:
    """A fixed-size export at 320 gives the dynamic model's result on a square image (same input), and
    `detect --model x.onnx` runs it; a wrong --imgsz for it is a one-line error."""
    ckpt, onnx_path = exported
    static = tmp_path / "static320.onnx"
    assert (
        main(["-q", "export", "--model", str(ckpt), "--imgsz", "320", "--static", "--out", str(static)]) == 0
    )
    image = load_image(kaggle / "images" / IMAGES[0])
    square = load_image(kaggle / "images" / SQUARE)
    fixed = OnnxPredictor(static)
    assert fixed.static_size == (320, 320) and fixed.imgsz == 320
    assert_same_detections(
        OnnxPredictor(onnx_path, imgsz=320).predict([square], conf=0.3)[0],
        fixed.predict([square], conf=0.3)[0],
    )
    assert fixed.prepare(image).tensor.shape == (3, 320, 320)
    with pytest.raises(MaskwatchError, match="fixed 320x320"):
        OnnxPredictor(static, imgsz=640)
    jsonl = tmp_path / "d.jsonl"
    source = str(kaggle / "images" / IMAGES[0])
    assert main(["-q", "detect", source, "--model", str(static), "--jsonl", str(jsonl)]) == 0
    assert len(jsonl.read_text().splitlines()) == 1


def test_bad_onnx_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(MaskwatchError, match="not a readable ONNX model"):
        OnnxPredictor(bad)
    with pytest.raises(MaskwatchError, match="not found"):
        OnnxPredictor(tmp_path / "missing.onnx")
    foreign = tmp_path / "foreign.onnx"
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(foreign))
    with pytest.raises(MaskwatchError, match="not a maskwatch ONNX export"):
        OnnxPredictor(foreign)


def test_fast_prepare_equals_letterbox(exported: tuple[Path, Path], kaggle: Path) -> None:
    """The pipeline's one-pass OpenCV preprocessing gives the training code's letterbox + batch_tensor
    input exactly, at several sizes (downscale, upscale, odd long side)."""
    ckpt, _ = exported
    predictor = load_predictor(ckpt, "torch")
    for name in IMAGES:
        image = load_image(kaggle / "images" / name)
        for imgsz in (640, 320, 333):
            predictor.imgsz = imgsz
            expected = batch_tensor([letterbox(image, imgsz)[0]])[0].numpy()
            assert np.array_equal(predictor.prepare(image).tensor, expected)


@pytest.mark.parametrize(("h", "w"), [(384, 640), (33, 17), (300, 301)])
def test_traceable_anchors_keep_the_reference_layout(h: int, w: int) -> None:
    """make_anchors avoids Python float maths so ONNX can trace it; its layout stays the RetinaFace one:
    per level, row-major cells, each with its anchor sizes, centred on (j + 0.5) * stride."""
    expected = []
    for stride, sizes in LEVELS:
        for i in range(-(-h // stride)):
            for j in range(-(-w // stride)):
                expected += [[(j + 0.5) * stride, (i + 0.5) * stride, s, s] for s in sizes]
    assert torch.equal(make_anchors(h, w), torch.tensor(expected, dtype=torch.float32))
