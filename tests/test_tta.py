"""Test-time augmentation (``--tta``) on the real default model: mirrored and enlarged looks, fused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from maskwatch.assets import sample_dir
from maskwatch.cli import main
from maskwatch.io import load_image
from maskwatch.models.registry import load_detector
from maskwatch.predict import Predictor, load_predictor
from maskwatch.predict.torch_backend import DetectorPredictor
from maskwatch.predict.tta import TTAPredictor


def _mirrored(xyxy: np.ndarray, width: int) -> np.ndarray:
    out = xyxy.copy()
    out[:, [0, 2]] = width - xyxy[:, [2, 0]]
    return out


def test_tta_on_a_mirrored_image_gives_the_mirrored_detections() -> None:
    """Mirroring is one of the looks, so the look sets of an image and of its mirror image are the same."""
    image = load_image(sample_dir() / "maksssksksss526.jpg")
    tta = load_predictor(
        "maskface-mnet", tta=True, classifier=False
    )  # the looks alone (crops are not mirrored)
    a = tta.predict([image], conf=0.3)[0]
    b = tta.predict([np.ascontiguousarray(image[:, ::-1])], conf=0.3)[0]
    assert len(a) == len(b) == 4
    ia, ib = np.argsort(a.xyxy[:, 0]), np.argsort(-b.xyxy[:, 0])
    np.testing.assert_allclose(_mirrored(b.xyxy[ib], image.shape[1]), a.xyxy[ia], atol=0.05)
    np.testing.assert_allclose(b.confidence[ib], a.confidence[ia], atol=1e-4)
    assert np.array_equal(a.class_id[ia], b.class_id[ib])


@pytest.mark.parametrize("backend", ["onnx", "torch", "detector"])
def test_enlarged_looks_find_faces_too_small_for_the_input_size(backend: str) -> None:
    """At a 128 px input the sample's ~35 px faces shrink to ~11 px and the model misses them (none
    over 0.6); a look at 2.5x that size finds all four, with the model's own scores (fusion keeps the
    model's scale). The same
    on every kind of predictor: ONNX Runtime, the torch graph, and a detector's own ``predict``."""
    image = load_image(sample_dir() / "maksssksksss526.jpg")
    if backend == "detector":
        small: Predictor = DetectorPredictor(load_detector(), imgsz=128)
    else:
        small = load_predictor("maskface-mnet", backend=backend, imgsz=128, classifier=False)
    assert len(small.predict([image], conf=0.6)[0]) == 0
    tta = TTAPredictor(small, scales=(1.0, 2.5), flip=False)
    found = tta.predict([image], conf=0.6)[0]
    reference = load_predictor("maskface-mnet", imgsz=320, classifier=False).predict([image], conf=0.6)[0]
    assert len(found) == len(reference) == 4
    assert small.imgsz == 128, "the wrapped model's input size is restored"
    # within 2.5 px of the 320 px model's boxes (the small look's faint boxes join the fusion)
    np.testing.assert_allclose(np.sort(found.xyxy[:, 0]), np.sort(reference.xyxy[:, 0]), atol=2.5)


def test_detect_and_eval_with_tta_from_the_command_line(tmp_path: Path, kaggle: Path, capsys) -> None:
    out = tmp_path / "tta.jsonl"
    assert main(["-q", "detect", "--tta", "--jsonl", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    # what the Python API's test-time-augmented default finds on the same bundled samples
    from maskwatch import load_model

    model = load_model(tta=True)
    want = [len(model(sample_dir() / r["file"], conf=0.5)) for r in rows]
    assert [len(r["detections"]) for r in rows] == want and len(rows) == 3 and all(want)
    split = tmp_path / "few.txt"
    split.write_text("maksssksksss0\nmaksssksksss10\nmaksssksksss100\nmaksssksksss101\n")
    merge = "without_mask,mask_weared_incorrect=no_mask"
    args = ["-q", "eval", "--data", str(kaggle), "--merge", merge, "--split", str(split)]
    assert main([*args, "--tta", "--out", str(tmp_path / "tta"), "--gallery", "0"]) == 0
    assert main([*args, "--out", str(tmp_path / "plain"), "--gallery", "0"]) == 0
    tta, plain = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("tta", "plain"))
    assert tta["tta"] is True and plain["tta"] is False
    assert tta["AP"] != plain["AP"], "the looks change the detections"


def test_tta_refuses_what_it_cannot_do_in_one_line(
    tmp_path: Path, kaggle: Path, dev_model: Path, capsys
) -> None:
    preds = tmp_path / "p.json"
    preds.write_text("[]")
    assert main(["eval", "--data", str(kaggle), "--predictions", str(preds), "--tta"]) == 1
    err = capsys.readouterr().err
    assert "--tta runs the model on extra views" in err and len(err.strip().splitlines()) == 1
    static = tmp_path / "static.onnx"
    assert (
        main(["-q", "export", "--model", str(dev_model), "--imgsz", "320", "--static", "--out", str(static)])
        == 0
    )
    capsys.readouterr()
    image = sample_dir() / "maksssksksss307.jpg"
    assert main(["detect", str(image), "--model", str(static), "--tta"]) == 1
    err = capsys.readouterr().err
    assert "fixed-size ONNX export cannot run the enlarged" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="scales must be positive"):
        TTAPredictor(load_predictor(str(static)), scales=(1.0, 0.0))
