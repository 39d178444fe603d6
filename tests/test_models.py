"""Every architecture behind the one Detector interface: it learns (the loss falls on a repeated batch),
predicts Detections, and round-trips through a checkpoint file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from maskwatch.errors import MaskwatchError
from maskwatch.models.registry import ARCHITECTURES, build_detector, load_detector
from tests.synth import CLASSES, make_image


def _batch(n: int, size: tuple[int, int]):
    rng = np.random.default_rng(1)
    images, boxes, labels = [], [], []
    for _ in range(n):
        img, b, lab = make_image(rng, size)
        images.append(img)
        boxes.append(b.astype(np.float32))
        labels.append(np.array([CLASSES.index(x) for x in lab]))
    return images, boxes, labels


@pytest.mark.parametrize(
    ("arch", "steps", "lr"),
    [("maskface-mnet", 12, 3e-3), ("retinanet-r50-fpn", 6, 1e-4), ("faster-rcnn-x101-fpn", 3, 1e-4)],
)
def test_loss_falls_and_checkpoint_round_trips(arch: str, steps: int, lr: float, tmp_path: Path) -> None:
    torch.manual_seed(0)
    det = build_detector(arch, CLASSES, imgsz=128)
    images, boxes, labels = _batch(2, (128, 96))
    opt = torch.optim.AdamW(det.model.parameters(), lr=lr)
    det.model.train()
    losses = []
    for _ in range(steps):
        loss = sum(det.loss(images, boxes, labels).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0], losses

    det.model.eval()
    before = det.predict(images[:1], conf=0.0)[0]
    path = tmp_path / f"{arch}.pt"
    det.save(path, metrics={"AP": 1.0})
    again = load_detector(path)
    assert again.arch == arch and again.class_names == CLASSES and again.imgsz == 128
    after = again.predict(images[:1], conf=0.0)[0]
    assert len(after) == len(before) > 0
    np.testing.assert_allclose(after.xyxy, before.xyxy, atol=1e-3)
    np.testing.assert_allclose(after.confidence, before.confidence, atol=1e-5)
    assert set(after.label_names) <= set(CLASSES)


def test_face_weights_find_faces(kaggle: Path, shared: Path) -> None:
    """The WIDER FACE detector loaded into maskface-mnet finds the annotated faces before any training."""
    from maskwatch.data.voc import read_voc_file
    from maskwatch.io import load_image
    from maskwatch.models.retinaface import MaskFaceDetector

    det = MaskFaceDetector(CLASSES)
    det.load_face_weights(shared / "weights/retinaface-mobilenet0.25/mobilenet0.25_Final.pth")
    rec = read_voc_file(kaggle / "annotations/maksssksksss0.xml", kaggle)
    found = det(load_image(rec.image), conf=0.2)
    from torchvision.ops import box_iou

    iou = box_iou(torch.as_tensor(rec.boxes), torch.as_tensor(found.xyxy, dtype=torch.float64))
    assert (iou.max(1).values > 0.5).all(), "every labelled face is found"


def test_unknown_model_and_bad_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(MaskwatchError, match="unknown model"):
        build_detector("yolo-v99", CLASSES)
    with pytest.raises(MaskwatchError, match="no such checkpoint file or built-in name"):
        load_detector(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MaskwatchError, match="not a readable checkpoint"):
        load_detector(bad)
    torch.save({"some": "dict"}, tmp_path / "other.pt")
    with pytest.raises(MaskwatchError, match="not a maskwatch checkpoint"):
        load_detector(tmp_path / "other.pt")
    assert set(ARCHITECTURES) == {"maskface-mnet", "faster-rcnn-x101-fpn", "retinanet-r50-fpn"}


def test_ignore_regions_are_neither_face_nor_background() -> None:
    """A face cut by a training crop (label -1, ``augment.IGNORE``) must leave its anchors out of the loss:
    matched as background it would teach the network that part of a face is no face."""
    from maskwatch.engine.augment import IGNORE
    from maskwatch.models.retinaface.anchors import anchors_xyxy, make_anchors
    from maskwatch.models.retinaface.loss import match

    anchors = make_anchors(128, 128)
    face, cut = [8.0, 8.0, 40.0, 40.0], [72.0, 72.0, 112.0, 112.0]
    cls, _ = match(torch.tensor([face, cut]), torch.tensor([1, IGNORE]), anchors)
    iou_cut = torchvision.ops.box_iou(torch.tensor([cut]), anchors_xyxy(anchors))[0]
    iou_face = torchvision.ops.box_iou(torch.tensor([face]), anchors_xyxy(anchors))[0]
    assert (cls == IGNORE).sum() >= 1
    assert (cls[cls == IGNORE] == IGNORE).all() and (iou_cut[cls == IGNORE] > iou_face[cls == IGNORE]).all()
    assert (cls == 2).sum() >= 1 and set(cls.unique().tolist()) == {IGNORE, 0, 2}
    # the same region labelled as a face: the anchors that were ignored become that face's positives
    as_face, _ = match(torch.tensor([face, cut]), torch.tensor([1, 0]), anchors)
    assert (as_face[cls == IGNORE] == 1).all()
