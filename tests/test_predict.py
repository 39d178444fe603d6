"""Predictors: the torch-free ONNX path (packaged default, cached exports of checkpoints), proved by
running the CLI with torch made unimportable, and its agreement with the torch path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image
from maskwatch.models.names import MODEL_NAMES
from maskwatch.models.registry import architectures, build_detector, load_detector, packaged_onnx
from maskwatch.predict import cache, load_predictor, with_stages
from maskwatch.predict.classify import ClassifiedPredictor
from maskwatch.predict.onnx import OnnxPredictor
from tests.conftest import ROOT
from tests.media import make_dev_checkpoint

# Makes `import torch` / `import torchvision` fail in the child process, as on an inference-only install.
BLOCK_TORCH = """
import importlib.abc, sys
class _NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision"):
            raise ImportError(f"{name} is not installed (blocked by the test)")
sys.meta_path.insert(0, _NoTorch())
"""


def run_without_torch(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(BLOCK_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "maskwatch", *args], env=env, capture_output=True, text=True, timeout=300
    )


def assert_same_detections(ref: Detections, got: Detections) -> None:
    """Same boxes within 1 px, same classes, scores within 1e-3 (the export's tolerance)."""
    assert len(ref) == len(got)
    order_r, order_g = np.argsort(-ref.confidence), np.argsort(-got.confidence)
    np.testing.assert_allclose(got.xyxy[order_g], ref.xyxy[order_r], atol=1.0)
    np.testing.assert_allclose(got.confidence[order_g], ref.confidence[order_r], atol=1e-3)
    assert np.array_equal(got.class_id[order_g], ref.class_id[order_r])


def test_the_shim_really_blocks_torch(tmp_path: Path) -> None:
    done = run_without_torch(tmp_path, "train", "--help")  # fine: help needs no torch
    assert done.returncode == 0
    shim = tmp_path / "shim"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)])}
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr


def test_detect_runs_without_torch(tmp_path: Path, kaggle: Path) -> None:
    image = kaggle / "images" / "maksssksksss0.jpg"
    out = tmp_path / "out.jsonl"
    done = run_without_torch(tmp_path, "-q", "detect", str(image), "--jsonl", str(out))
    assert done.returncode == 0, done.stderr
    (line,) = out.read_text().splitlines()
    found = json.loads(line)["detections"]
    # the same image through torch, both stages (this process may import torch)
    ref = load_predictor("maskface-mnet", "torch").predict([load_image(image)], conf=0.5, iou=0.4)[0]
    assert sorted(d["label"] for d in found) == sorted(ref.label_names) and len(found) == 3
    got = np.array(sorted(d["box"] for d in found))
    np.testing.assert_allclose(got, np.array(sorted(ref.xyxy.tolist())), atol=1.0)


def test_eval_onnx_runs_without_torch(tmp_path: Path, kaggle: Path) -> None:
    split = tmp_path / "few.txt"
    split.write_text("maksssksksss0\nmaksssksksss10\nmaksssksksss100\n")
    metrics = tmp_path / "metrics.json"
    onnx = packaged_onnx("maskface-mnet")
    args = [
        "eval",
        "--data",
        str(kaggle),
        "--split",
        str(split),
        "--model",
        str(onnx),
        "--json",
        str(metrics),
        "--merge",
        "without_mask,mask_weared_incorrect=no_mask",
    ]
    done = run_without_torch(tmp_path, "-q", *args)
    assert done.returncode == 0, done.stderr
    assert 0 < json.loads(metrics.read_text())["AP50"] <= 100


def test_detect_without_torch_explains_a_checkpoint_needs_it(tmp_path: Path) -> None:
    """A .pt with no cached export needs torch to export: the command fails, the import error shows."""
    ckpt = tmp_path / "tiny.pt"
    build_detector("maskface-mnet", ["with_mask", "no_mask"], imgsz=96).save(ckpt)
    image = tmp_path / "x.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((40, 60, 3), np.uint8))
    done = run_without_torch(tmp_path, "-q", "detect", str(image), "--model", str(ckpt), "--jsonl", "o.jsonl")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "need PyTorch, which is not installed (pip install 'maskwatch[train]')" in done.stderr


@pytest.mark.parametrize("style", [None, "ilc"])
def test_packaged_onnx_matches_the_packaged_weights(kaggle: Path, style: str | None) -> None:
    """The shipped exports are the shipped .pt in each box style (after retraining, re-make them with
    ``maskwatch export --model maskface-mnet --out maskwatch/models/weights/maskface-mnet.onnx`` and
    ``... --box-style ilc --out maskwatch/models/weights/maskface-mnet-ilc.onnx``)."""
    det = load_detector(box_style=style)
    runtime = OnnxPredictor(packaged_onnx("maskface-mnet", style))
    assert runtime.class_names == det.class_names and runtime.imgsz == det.imgsz
    assert runtime.box_style == det.box_style == (style or "kaggle")
    assert load_predictor(box_style=style).box_style == det.box_style, "the packaged export of that style"
    for name in ["maksssksksss0.jpg", "maksssksksss10.jpg", "maksssksksss109.jpg"]:
        image = load_image(kaggle / "images" / name)
        for conf, agnostic in ((0.5, True), (0.05, False)):
            ref = det.predict([image], conf=conf, iou=0.4, agnostic=agnostic)[0]
            assert_same_detections(ref, runtime.predict([image], conf=conf, iou=0.4, agnostic=agnostic)[0])
            # and both stages: the export's crop classifier against the checkpoint's, in torch
            two = with_stages(det, tta=False, classifier=True).predict([image], conf, 0.4, agnostic)[0]
            staged = load_predictor(box_style=style).predict([image], conf=conf, iou=0.4, agnostic=agnostic)[
                0
            ]
            assert_same_detections(two, staged)


def test_default_model_picks_the_packaged_onnx() -> None:
    predictor = load_predictor()  # the packaged export, behind the crop classifier it carries
    assert isinstance(predictor, ClassifiedPredictor) and isinstance(predictor.inner, OnnxPredictor)
    assert predictor.backend == "onnx" and isinstance(load_predictor(classifier=False), OnnxPredictor)
    assert load_predictor(backend="torch").backend == "torch"


@pytest.mark.slow
def test_checkpoint_export_is_cached_by_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared: Path, kaggle: Path
) -> None:
    monkeypatch.setenv("MASKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    ckpt = make_dev_checkpoint(shared, tmp_path / "model.pt")
    image = load_image(kaggle / "images" / "maksssksksss0.jpg")
    p1 = load_predictor(ckpt)
    assert p1.backend == "onnx"
    cached = cache.cached_onnx_path(ckpt)
    assert cached.is_file() and cached.parent == tmp_path / "cache" / "onnx"
    stamp = cached.stat().st_mtime_ns
    again = load_predictor(ckpt)  # served from the cache: not exported again
    assert again.backend == "onnx" and cached.stat().st_mtime_ns == stamp
    first = with_stages(load_detector(ckpt), tta=False, classifier=True)
    assert_same_detections(first.predict([image], conf=0.3)[0], again.predict([image], conf=0.3)[0])
    # another checkpoint at the same path (here: the packaged default) must not run the old export
    load_detector().save(ckpt)
    assert cache.cached_onnx_path(ckpt) != cached
    fresh = load_predictor(ckpt)
    assert cache.cached_onnx_path(ckpt).is_file()
    second = with_stages(load_detector(ckpt), tta=False, classifier=True)  # the default has a classifier
    assert isinstance(second, ClassifiedPredictor) and isinstance(fresh, ClassifiedPredictor)
    assert_same_detections(second.predict([image], conf=0.3)[0], fresh.predict([image], conf=0.3)[0])
    assert len(list((tmp_path / "cache" / "onnx").iterdir())) == 2


def test_unwritable_cache_still_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MASKWATCH_CACHE_DIR", str(blocker))
    ckpt = tmp_path / "model.pt"
    build_detector("maskface-mnet", ["with_mask", "no_mask"], imgsz=64).save(ckpt)
    assert load_predictor(ckpt).backend == "onnx"
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
def test_onnx_equals_torch_on_the_kaggle_test_split(kaggle: Path) -> None:
    """Issue 12's acceptance: no change in detections (boxes within 1 px, same classes) on the test split."""
    names = (ROOT / "splits/face-mask-kaggle/test.txt").read_text().split()
    det = with_stages(load_detector(), tta=False, classifier=True)  # both stages, in torch
    runtime = load_predictor()
    assert runtime.backend == "onnx" and isinstance(runtime, ClassifiedPredictor)
    faces = 0
    for name in names:
        image = load_image(next((kaggle / "images").glob(f"{name}.*")))
        ref = det.predict([image], conf=0.5, iou=0.4)[0]
        assert_same_detections(ref, runtime.predict([image], conf=0.5, iou=0.4)[0])
        faces += len(ref)
    assert len(names) == 84 and faces > 200


def test_registry_is_the_decorators() -> None:
    assert tuple(architectures()) == MODEL_NAMES
    assert MODEL_NAMES[0] == "maskface-mnet"
    assert set(MODEL_NAMES) == {"maskface-mnet", "faster-rcnn-x101-fpn", "retinanet-r50-fpn"}


def test_options_at_construction() -> None:
    det = build_detector("maskface-mnet", ["with_mask", "no_mask"], imgsz=64, focal_gamma=2)
    assert det.focal_gamma == 2.0 and det.neg_pos_ratio == 7
    with pytest.raises(MaskwatchError, match="unknown option 'focal_gama'"):
        build_detector("maskface-mnet", ["a"], imgsz=64, focal_gama=2)
    with pytest.raises(MaskwatchError, match="is not a float"):
        build_detector("maskface-mnet", ["a"], imgsz=64, focal_gamma="high")
    assert det.inference_module() is not None


def test_box_styles_of_the_default_run_without_torch(tmp_path: Path) -> None:
    """Both packaged styles run on an install without torch; an unknown style is refused there in one line
    naming the styles (from the export's metadata), not with 'PyTorch is not installed'."""
    from maskwatch.assets import sample_dir

    image = str(sorted(sample_dir().glob("*.jpg"))[0])
    for style in ("kaggle", "ilc"):
        done = run_without_torch(tmp_path, "-q", "detect", image, "--box-style", style, "--jsonl", "-")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.splitlines()[0])["detections"]
    done = run_without_torch(tmp_path, "-q", "detect", image, "--box-style", "nope", "--jsonl", "-")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "maskwatch: error: --box-style 'nope': this maskface-mnet model has kaggle, ilc"
    ]
