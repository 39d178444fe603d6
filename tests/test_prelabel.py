"""Pre-labelling real images: the model's boxes come back as a LabelImg-readable learning base."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.data.voc import read_voc_file
from maskwatch.models.registry import build_detector


@pytest.fixture(scope="module")
def face_model(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A face detector checkpoint: the WIDER FACE weights in maskface-mnet (mask class not learned)."""
    det = build_detector("maskface-mnet", ["with_mask", "no_mask"])
    det.load_face_weights(shared / "weights/retinaface-mobilenet0.25/mobilenet0.25_Final.pth")
    path = tmp_path_factory.mktemp("model") / "faces.pt"
    det.save(path)
    return path


def test_prelabel_writes_boxes_on_the_faces(kaggle: Path, face_model: Path, tmp_path: Path) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    stems = sorted(p.stem for p in sorted((kaggle / "images").glob("*.jpg"))[:3])
    for s in stems:
        shutil.copy(kaggle / "images" / f"{s}.jpg", frames)
    out = tmp_path / "labels"
    assert (
        main(
            ["data", "prelabel", str(frames), "--out", str(out), "--model", str(face_model), "--conf", "0.2"]
        )
        == 0
    )
    ds = load_dataset(out)
    assert sorted(r.stem for r in ds) == stems
    assert set(ds.classes) <= {"with_mask", "no_mask"}
    truth = read_voc_file(kaggle / "annotations" / f"{stems[0]}.xml", kaggle)
    pred = next(r for r in ds if r.stem == stems[0])
    iou = box_iou(torch.as_tensor(truth.boxes), torch.as_tensor(pred.boxes))
    assert (iou.max(1).values > 0.5).all(), "every labelled face got a pre-label box"
    assert np.all(pred.boxes[:, 2] <= truth.width) and np.all(pred.boxes[:, 3] <= truth.height)


def test_prelabel_bad_input(tmp_path: Path, face_model: Path, capsys: pytest.CaptureFixture) -> None:
    assert (
        main(
            [
                "data",
                "prelabel",
                str(tmp_path / "nothing*.jpg"),
                "--out",
                str(tmp_path / "o"),
                "--model",
                str(face_model),
            ]
        )
        == 1
    )
    assert "no images found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
