"""The crop-classifier second stage: the rule that turns per-class detections into faces and re-decides
their class, a classifier that learns masks from synthetic faces, and a model carrying one through its
checkpoint, training, resume, export, ONNX Runtime, ``detect``/``eval`` and their ``--no-classifier``."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from maskwatch.boxes import box_iou
from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.data.split import write_split
from maskwatch.detections import Detections
from maskwatch.engine.classifier import cut_faces, mine_negatives, second_boxes, train_classifier
from maskwatch.engine.train import make_config, train
from maskwatch.engine.train_config import ClassifierConfig
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image
from maskwatch.models.classifier import FaceClassifier
from maskwatch.models.crops import (
    NEGATIVE_IOU,
    apply_deltas,
    box_deltas,
    decide,
    face_crops,
    face_floor,
    group_faces,
    refine_boxes,
    square_crop,
)
from maskwatch.models.registry import load_detector
from maskwatch.predict import load_predictor
from maskwatch.predict.classify import ClassifiedPredictor
from tests.conftest import KAGGLE_MERGE, SUBPROCESS_ENV
from tests.synth import CLASSES, make_image, make_voc_dataset

NAMES = ("with_mask", "no_mask")
TRAIN_THREADS = 1  # the two-stage run trains, and resumes, on one thread (see the resume test)


def _retinaface(shared: Path) -> Path:
    return shared / "weights" / "retinaface-mobilenet0.25" / "mobilenet0.25_Final.pth"


def test_a_face_split_between_the_classes_is_one_face_with_their_summed_score() -> None:
    # one face the detector calls 0.30 with_mask and 0.35 no_mask (two boxes), one clear no_mask face
    found = Detections(
        np.array([[10, 10, 50, 60], [11, 9, 51, 61], [100, 20, 130, 60]], np.float32),
        np.array([0.30, 0.35, 0.80], np.float32),
        np.array([0, 1, 1]),
        NAMES,
    )
    boxes, best = group_faces(found, iou=0.5)
    assert len(boxes) == 2  # the two boxes of the split face are one face, kept at its best box
    np.testing.assert_allclose(best, [[0.0, 0.80], [0.30, 0.35]], atol=1e-6)  # by best score
    np.testing.assert_allclose(boxes[1], [11, 9, 51, 61])
    probs = np.array([[0.2, 0.8], [0.9, 0.1]], np.float32)  # the classifier: the split face is masked
    one = decide(boxes, best, probs, 0.7, 0.25, True, NAMES, (160, 128))
    # split face: 0.65 x (0.7 x 0.9 + 0.3 x 0.30 / 0.65) = 0.4995 with_mask; other: 0.8 x (0.56 + 0.3)
    assert one.class_id.tolist() == [1, 0]  # best first
    np.testing.assert_allclose(one.confidence, [0.8 * (0.7 * 0.8 + 0.3), 0.65 * 0.63 + 0.3 * 0.30], atol=1e-5)
    both = decide(boxes, best, probs, 0.7, 0.05, False, NAMES, (160, 128))  # evaluation keeps second guesses
    assert sorted(both.class_id.tolist()) == [0, 0, 1, 1]
    np.testing.assert_allclose(sorted(both.confidence)[0], 0.8 * 0.7 * 0.2, atol=1e-5)
    high = decide(boxes, best, probs, 0.7, 0.6, True, NAMES, (160, 128))  # conf filters the final score
    assert high.class_id.tolist() == [1]
    clipped = decide(boxes + np.array([[-5, 0, 100, 0]]), best, probs, 1.0, 0.0, True, NAMES, (160, 128))
    assert clipped.xyxy[:, 2].max() <= 128 and clipped.xyxy[:, 0].min() >= 0
    empty = decide(np.zeros((0, 4)), np.zeros((0, 2)), np.zeros((0, 2)), 0.7, 0.1, True, NAMES, (8, 8))
    assert len(empty) == 0 and empty.class_names == NAMES


def test_a_background_output_re_ranks_the_faces_and_conf_only_filters() -> None:
    boxes = np.array([[10, 10, 50, 60], [100, 20, 130, 60]], np.float32)
    best = np.array([[0.30, 0.35], [0.0, 0.36]], np.float32)  # face scores 0.65 and 0.36
    # the classifier: the first crop is half background, the second surely a face without a mask
    probs = np.array([[0.45, 0.05, 0.5], [0.0, 0.99, 0.01]], np.float32)
    got = decide(boxes, best, probs, 0.7, 0.0, True, NAMES, (160, 128), beta=0.5)
    first = np.sqrt(0.65 * 0.5) * (0.7 * 0.9 + 0.3 * 0.30 / 0.65)  # class probabilities given a face
    second = np.sqrt(0.36 * 0.99) * (0.7 * 1.0 + 0.3 * 1.0)
    assert got.class_id.tolist() == [1, 0]  # the surer face now ranks first
    np.testing.assert_allclose(got.confidence, [second, first], atol=1e-5)
    # beta 0: the detector's face score alone ranks, the background column still conditions the classes
    flat = decide(boxes, best, probs, 0.7, 0.0, True, NAMES, (160, 128), beta=0.0)
    np.testing.assert_allclose(flat.confidence, [0.65 * (0.7 * 0.9 + 0.3 * 0.30 / 0.65), 0.36], atol=1e-5)
    # no final score can exceed face score ** (1 - beta): faces under the floor need no classifier
    assert face_floor(0.25, 0.5) == pytest.approx(0.0625) and face_floor(0.25, 0.0) == 0.25
    rng = np.random.default_rng(0)
    for _ in range(200):
        face, p = (
            rng.uniform(0, 0.5, (1, 2)).astype(np.float32),
            rng.dirichlet((1, 1, 1), 1).astype(np.float32),
        )
        top = decide(boxes[:1], face, p, 0.7, 0.0, False, NAMES, (160, 128), beta=0.5).confidence.max()
        assert top <= face.sum() ** 0.5 + 1e-6
    assert all(face_floor(c, 0.5) <= c for c in (0.01, 0.25, 0.9))


def test_crops_centre_the_face_with_context_and_repeat_the_edge() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[40:60, 90:110] = 255  # a 20 px white square "face"
    crop = square_crop(image, [90, 40, 110, 60], 50, context=2.0)  # 40 px of image -> 50 px
    assert crop.shape == (50, 50, 3)
    white = np.argwhere(crop[..., 0] > 128)
    assert white.min(0).tolist() == pytest.approx([12, 12], abs=1) and white.max(0).tolist() == pytest.approx(
        [37, 37], abs=1
    )
    corner = square_crop(image, [0, 0, 10, 10], 32)  # out of the image: edge pixels, not black holes
    assert corner.shape == (32, 32, 3)
    batch = face_crops(image, np.array([[90, 40, 110, 60], [0, 0, 10, 10]]), 64)
    assert batch.shape == (2, 3, 64, 64) and batch.dtype == np.float32 and batch.max() == 255
    assert face_crops(image, np.zeros((0, 4)), 64).shape == (0, 3, 64, 64)


def _synthetic_faces(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    images, boxes, labels = [], [], []
    for _ in range(n):
        im, b, lab = make_image(rng, (128, 160))
        images.append(im)
        boxes.append(b)
        labels.append(np.array([CLASSES.index(x) for x in lab]))
    return images, boxes, labels


def test_the_classifier_learns_masks_from_faces_and_is_deterministic(shared: Path) -> None:
    images, boxes, labels = _synthetic_faces(40, seed=1)
    cfg = ClassifierConfig(epochs=3, size=64, batch=16)
    clf = train_classifier(images, boxes, labels, CLASSES, cfg, _retinaface(shared), seed=0)
    test_images, test_boxes, test_labels = _synthetic_faces(15, seed=2)
    crops = np.concatenate([face_crops(im, b, 64) for im, b in zip(test_images, test_boxes, strict=True)])
    truth = np.concatenate(test_labels)
    guess = clf.probs(torch.from_numpy(crops)).argmax(1).numpy()
    assert (guess == truth).mean() >= 0.9, f"accuracy {(guess == truth).mean():.2f} on unseen faces"
    again = train_classifier(images, boxes, labels, CLASSES, cfg, _retinaface(shared), seed=0)
    for k, v in clf.net.state_dict().items():
        assert torch.equal(v, again.net.state_dict()[k]), f"{k} differs between two seeded runs"
    # a state round-trips, and what it holds is what it predicts
    copy = FaceClassifier.from_state(clf.state())
    assert torch.equal(copy.probs(torch.from_numpy(crops)), clf.probs(torch.from_numpy(crops)))
    assert (copy.size, copy.alpha, copy.arch, copy.class_names) == (64, cfg.alpha, "mnet", CLASSES)


def test_the_classifier_learns_a_background_from_negatives(shared: Path) -> None:
    images, boxes, labels = _synthetic_faces(30, seed=3)
    rng = np.random.default_rng(5)
    negatives = [np.zeros((0, 4), np.float32) for _ in images]
    for _ in range(30):  # textured images without a face, three "mistakes" on each
        images.append(rng.integers(0, 255, (128, 160, 3), dtype=np.uint8))
        boxes.append(np.zeros((0, 4), np.float32))
        labels.append(np.zeros(0, np.int64))
        x, y = rng.uniform(0, 100, 3), rng.uniform(0, 70, 3)
        negatives.append(np.stack([x, y, x + 40, y + 48], 1).astype(np.float32))
    cfg = ClassifierConfig(epochs=3, size=64, batch=16, beta=0.4)
    clf = train_classifier(
        images, boxes, labels, CLASSES, cfg, _retinaface(shared), seed=0, negatives=negatives
    )
    assert clf.background and clf.beta == 0.4 and clf.class_names == CLASSES
    test_images, test_boxes, test_labels = _synthetic_faces(10, seed=4)
    faces = np.concatenate([face_crops(im, b, 64) for im, b in zip(test_images, test_boxes, strict=True)])
    p = clf.probs(torch.from_numpy(faces)).numpy()
    assert p.shape[1] == 3
    assert (p[:, 2] < 0.5).mean() >= 0.9, "faces taken for background"
    assert (p[:, :2].argmax(1) == np.concatenate(test_labels)).mean() >= 0.9
    noise = rng.integers(0, 255, (20, 64, 64, 3), dtype=np.uint8).astype(np.float32).transpose(0, 3, 1, 2)
    assert (clf.probs(torch.from_numpy(np.ascontiguousarray(noise))).numpy()[:, 2] > 0.5).mean() >= 0.9
    again = FaceClassifier.from_state(clf.state())
    assert again.background and again.beta == 0.4
    old = clf.state()
    del old["background"], old["beta"], old["box_styles"], old["refine"]  # saved before backgrounds existed
    old["state_dict"] = FaceClassifier("mnet", CLASSES, 64).net.state_dict()
    assert not FaceClassifier.from_state(old).background and FaceClassifier.from_state(old).box_styles == ()


def test_box_deltas_are_relative_to_the_crop_and_invert() -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (50, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(10, 80, (50, 2))], 1)
    targets = boxes + rng.uniform(-4, 4, (50, 4))
    d = box_deltas(boxes, targets)
    np.testing.assert_allclose(apply_deltas(boxes, d), targets, atol=1e-3)
    # the same face twice the size, or elsewhere, is the same crop: the same deltas
    np.testing.assert_allclose(box_deltas(boxes * 2, targets * 2), d, atol=1e-5)
    np.testing.assert_allclose(box_deltas(boxes + 17, targets + 17), d, atol=1e-4)
    assert np.abs(box_deltas(boxes, boxes)[:, :2]).max() < 1e-6  # a box's own: no offset
    np.testing.assert_allclose(refine_boxes(boxes, d, 0.0), boxes)
    np.testing.assert_allclose(refine_boxes(boxes, d, 1.0), targets, atol=1e-3)
    np.testing.assert_allclose(refine_boxes(boxes, d, 0.5), (boxes + targets) / 2, atol=1e-3)


def test_the_classifier_learns_to_draw_each_box_style(shared: Path) -> None:
    """Half the images labelled in a tight style (the inner 70 % of each face): the box head of that style
    draws tight boxes, the other full ones, each better than the shifted box its crop was cut around."""

    def tight(b: np.ndarray) -> np.ndarray:
        centre, half = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]) * 0.35
        return np.concatenate([centre - half, centre + half], 1)

    images, boxes, labels = _synthetic_faces(40, seed=1)
    styles = [i % 2 for i in range(len(images))]
    boxes = [tight(b) if s else b for b, s in zip(boxes, styles, strict=True)]
    cfg = ClassifierConfig(epochs=40, size=48, batch=16, refine=0.7)
    clf = train_classifier(
        images, boxes, labels, CLASSES, cfg, _retinaface(shared), seed=0, styles=styles, box_styles=("a", "b")
    )
    assert clf.box_styles == ("a", "b") and clf.refine == 0.7
    test_images, test_boxes, _ = _synthetic_faces(15, seed=2)
    truth = np.concatenate(test_boxes)
    side = np.maximum(truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1])
    shift = np.random.default_rng(3).uniform(-0.08, 0.08, (len(truth), 2)) * side[:, None]
    found = truth + np.concatenate([shift, shift], 1)  # a detector's slightly-off boxes
    ends = np.cumsum([len(b) for b in test_boxes])
    crops = np.concatenate(
        [face_crops(im, f, 48) for im, f in zip(test_images, np.split(found, ends[:-1]), strict=True)]
    )
    _, deltas = clf.run(torch.from_numpy(crops))
    assert deltas is not None and deltas.shape == (len(truth), 2, 4)
    full, inner = (apply_deltas(found, deltas[:, s].numpy()) for s in (0, 1))

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.diag(box_iou(a, b)).mean())

    for drawn, want, gain in ((full, truth, 0.02), (inner, tight(truth), 0.1)):
        assert iou(drawn, want) > iou(found, want) + gain, (
            f"IoU {iou(found, want):.3f} -> {iou(drawn, want):.3f}"
        )
    # each style's output draws its own style, not the other's
    assert iou(inner, tight(truth)) > iou(full, tight(truth)) + 0.05
    assert iou(full, truth) > iou(inner, truth) + 0.05
    again = FaceClassifier.from_state(clf.state())
    assert again.box_styles == ("a", "b") and again.refine == 0.7
    assert torch.equal(again.run(torch.from_numpy(crops))[1], deltas)
    plain = train_classifier(
        images, boxes, labels, CLASSES, ClassifierConfig(epochs=1, size=48, refine=0), _retinaface(shared)
    )
    assert plain.box_styles == () and plain.run(torch.from_numpy(crops[:2]))[1] is None


def test_mined_negatives_are_the_detectors_confident_mistakes(dev_model: Path, kaggle: Path) -> None:
    ds = load_dataset(kaggle, merge=[KAGGLE_MERGE])
    records = ds.records[:12]
    images = [load_image(r.image) for r in records]
    det = load_detector(dev_model)
    allowed = [i % 4 != 0 for i in range(len(records))]
    mined = mine_negatives(det, images, [r.boxes for r in records], 2, allowed)
    assert len(mined) == len(records) and sum(len(m) for m in mined) > 0
    for r, m, ok in zip(records, mined, allowed, strict=True):
        assert len(m) <= 2 and (ok or len(m) == 0)
        if len(m) and len(r.boxes):
            assert box_iou(m, r.boxes).max() < NEGATIVE_IOU
    assert all(len(m) == 0 for m in mine_negatives(det, images[:2], [r.boxes for r in records[:2]], 0))


def test_second_boxes_are_later_boxes_on_a_face_already_found() -> None:
    labelled = np.array([[0, 0, 100, 100], [200, 200, 260, 260]], np.float32)
    faces = np.array(
        [
            [2, 2, 100, 98],  # finds face 0
            [0, 0, 60, 100],  # part of face 0 (IoU 0.6): a second box
            [215, 215, 275, 275],  # the first box on face 1, poorly placed (IoU 0.39): its detection
            [202, 200, 262, 258],  # finds face 1
            [200, 200, 238, 238],  # inside face 1 (IoU 0.4): a second box
            [400, 400, 440, 440],  # background: not this rule's
            [0, 0, 45, 45],  # a corner of face 0 (IoU 0.2): too little of it
        ],
        np.float32,
    )
    iou = box_iou(faces, labelled)
    assert second_boxes(iou).tolist() == [False, True, False, False, True, False, False]
    assert not second_boxes(iou[:, :0]).any() and second_boxes(iou[:0]).shape == (0,)


def test_mined_second_boxes_sit_on_faces_already_found(dev_model: Path, kaggle: Path) -> None:
    records = load_dataset(kaggle, merge=[KAGGLE_MERGE]).records[:12]
    images, boxes = [load_image(r.image) for r in records], [r.boxes for r in records]
    det = load_detector(dev_model)
    plain = mine_negatives(det, images, boxes, 2)
    more = mine_negatives(det, images, boxes, 2, second=3)
    extra = 0
    for p, m, b in zip(plain, more, boxes, strict=True):
        on_face = box_iou(m, b).max(1, initial=0.0) >= NEGATIVE_IOU
        assert np.array_equal(m[~on_face], p) and on_face.sum() <= 3
        extra += int(on_face.sum())
    assert extra > 0  # the detector does draw second boxes on these crowds
    # an `ignore` region is no face to find twice
    ignored = [np.zeros(len(b), bool) for b in boxes]
    masked = mine_negatives(det, images, boxes, 2, second=3, faces_only=ignored)
    assert all(np.array_equal(m, p) for m, p in zip(masked, plain, strict=True))


def test_classifier_inputs_are_checked(shared: Path, tmp_path: Path) -> None:
    images, boxes, labels = _synthetic_faces(2, seed=1)
    with pytest.raises(MaskwatchError, match="no labelled face of at least 6 px"):
        cut_faces(images, [b / 100 for b in boxes], labels, 32)
    clf = FaceClassifier("mobilenet_v2_14", CLASSES)
    with pytest.raises(MaskwatchError, match="no mobilenet_v2_14 backbone weights"):
        clf.init_backbone(_retinaface(shared))  # a RetinaFace file is not an ImageNet MobileNetV2
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a state dict")
    with pytest.raises(MaskwatchError, match="cannot read classifier weights"):
        FaceClassifier("mnet", CLASSES).init_backbone(bad)
    with pytest.raises(MaskwatchError, match="unknown classifier arch"):
        FaceClassifier("resnet", CLASSES)


@pytest.fixture(scope="module")
def two_stage(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run trained with the second stage: detector (2 short epochs) then classifier (2 epochs)."""
    root = make_voc_dataset(tmp_path_factory.mktemp("two"), n=8, size=(128, 160), seed=4)
    write_split(
        {"train": [f"synth{i:03d}" for i in range(6)], "val": ["synth006", "synth007"]}, root / "split"
    )
    cfg = make_config(
        None,
        data=str(root),
        split=str(root / "split"),
        classes=["with_mask", "no_mask"],
        epochs=2,
        batch=4,
        imgsz=160,
        crop=128,
        max_steps_per_epoch=2,
        warmup_steps=1,
        weights=str(_retinaface(shared)),
        out=str(tmp_path_factory.mktemp("runs")),
        name="two",
        **{"classifier.epochs": 2, "classifier.size": 48, "classifier.batch": 8},
    )
    torch.set_num_threads(TRAIN_THREADS)
    return train(cfg)


def test_training_stores_the_classifier_and_every_runtime_agrees(two_stage: Path, tmp_path: Path) -> None:
    for name in ("best.pt", "last.pt"):
        saved = torch.load(two_stage / name, weights_only=False)["classifier"]
        assert saved["arch"] == "mnet" and saved["size"] == 48 and saved["class_names"] == list(NAMES)
        assert saved["background"] is True and saved["beta"] == ClassifierConfig.beta  # the default
        assert saved["box_styles"] == ["default"] and saved["refine"] == ClassifierConfig.refine
    det = load_detector(two_stage / "last.pt")
    assert det.classifier is not None and det.classifier.size == 48
    rng = np.random.default_rng(7)
    frames = [make_image(rng, (128, 160))[0] for _ in range(3)]
    torch_p = load_predictor(two_stage / "last.pt", "torch")
    assert isinstance(torch_p, ClassifiedPredictor)
    want = torch_p.predict(frames, conf=0.05, agnostic=False)
    assert sum(len(d) for d in want) > 0 and torch_p.predict([]) == []
    # the box head moves the boxes, never the scores; behind --tta the looks' fused box stays where it is
    assert torch_p.refine == ClassifierConfig.refine
    assert load_predictor(two_stage / "last.pt", "torch", tta=True).refine == 0.0
    torch_p.refine = 0.0
    unmoved = torch_p.predict(frames, conf=0.05, agnostic=False)
    torch_p.refine = ClassifierConfig.refine
    for a, b in zip(want, unmoved, strict=True):
        np.testing.assert_array_equal(a.confidence, b.confidence)
    assert not np.allclose(np.concatenate([d.xyxy for d in want]), np.concatenate([d.xyxy for d in unmoved]))
    blank = np.full((160, 128, 3), 127, np.uint8)  # no face: no detection, the classifier not run
    assert len(torch_p.predict([blank], conf=0.3)[0]) == 0
    onnx_path = tmp_path / "two.onnx"
    assert main(["export", "--model", str(two_stage / "last.pt"), "--out", str(onnx_path)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["maskwatch.classifier"])["size"] == 48
    for got in (load_predictor(onnx_path), load_predictor(two_stage / "last.pt", "onnx")):
        assert isinstance(got, ClassifiedPredictor) and got.backend == "onnx"
        for a, b in zip(want, got.predict(frames, conf=0.05, agnostic=False), strict=True):
            assert a.class_id.tolist() == b.class_id.tolist()
            np.testing.assert_allclose(a.confidence, b.confidence, atol=2e-4)
            np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.05)
    # --no-classifier: the detector alone, as a model without a classifier runs
    plain = load_predictor(two_stage / "last.pt", "torch", classifier=False)
    assert not isinstance(plain, ClassifiedPredictor)
    alone = tmp_path / "alone.onnx"
    assert (
        main(["export", "--model", str(two_stage / "last.pt"), "--no-classifier", "--out", str(alone)]) == 0
    )
    assert not isinstance(load_predictor(alone), ClassifiedPredictor)
    for a, b in zip(plain.predict(frames, 0.05), load_predictor(alone).predict(frames, 0.05), strict=True):
        np.testing.assert_allclose(a.confidence, b.confidence, atol=2e-4)
    # a damaged classifier inside an export is a one-line error, not a traceback or a silent skip
    model = onnx.load(str(onnx_path))
    for p in model.metadata_props:
        if p.key == "maskwatch.classifier_onnx":
            p.value = base64.b64encode(b"garbage").decode()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(model.SerializeToString())
    with pytest.raises(MaskwatchError, match="crop classifier is unreadable"):
        load_predictor(broken)


def test_eval_and_detect_run_the_classifier_unless_told_not_to(
    two_stage: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = make_voc_dataset(tmp_path / "data", n=4, size=(128, 160), seed=11)
    results = {}
    for flag in ([], ["--no-classifier"]):
        out = tmp_path / f"eval{len(flag)}.json"
        args = ["eval", "--data", str(data), "--model", str(two_stage / "last.pt"), "--json", str(out)]
        assert main([*args, *flag]) == 0
        results[bool(flag)] = json.loads(out.read_text())
    assert results[False]["run"]["classifier"] is True and results[True]["run"]["classifier"] is False
    assert results[False]["per_class"] != results[True]["per_class"], "eval ran the same model twice"
    jsonl = {}
    for flag in ([], ["--no-classifier"]):
        out = tmp_path / f"det{len(flag)}.jsonl"
        args = ["detect", str(data / "images"), "--model", str(two_stage / "last.pt"), "--jsonl", str(out)]
        assert main([*args, "--conf", "0.05", *flag]) == 0
        jsonl[bool(flag)] = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(jsonl[False]) == len(jsonl[True]) == 4
    scores = {k: [d["score"] for row in v for d in row["detections"]] for k, v in jsonl.items()}
    assert scores[False] != scores[True], "the classifier changed nothing"


def test_a_stop_signal_in_the_classifier_stage_offers_to_resume_it(two_stage: Path, tmp_path: Path) -> None:
    """SIGTERM while the crop classifier trains: every detector epoch is kept and the line printed says
    the stage is left to run, with the command that runs it."""
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "best.pt", "last.pt"):
        (run / name).write_bytes((two_stage / name).read_bytes())
    cmd = [sys.executable, "-m", "maskwatch", "train", "--resume", str(run), "classifier.epochs=500"]
    proc = subprocess.Popen(
        cmd, env=SUBPROCESS_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # until the stage starts (or the command ends, which the asserts report)
        if "training the crop classifier" in line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, err
    said = f"{run} holds its 2 epochs; its crop classifier is not trained"
    assert err.strip().splitlines()[-1] == (
        f"maskwatch: training stopped: {said}; continue with: maskwatch train --resume {run}"
    )
    assert torch.load(run / "last.pt", weights_only=False)["config"]["classifier"]["epochs"] == 2, (
        "the checkpoint is the one the stage started from"
    )


def test_a_run_stopped_in_its_classifier_stage_resumes_into_it_and_configs_are_checked(
    two_stage: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = tmp_path / "stopped"
    run.mkdir()
    for name in ("config.yaml", "best.pt"):
        (run / name).write_bytes((two_stage / name).read_bytes())
    ckpt = torch.load(two_stage / "last.pt", weights_only=False)
    # CPU float sums depend on the thread count (loading a predictor in this process sets it): the run
    # resumes on the threads it was trained on, as it would on one machine
    torch.set_num_threads(TRAIN_THREADS)
    before = ckpt.pop("classifier")[
        "state_dict"
    ]  # as if stopped after the last epoch, before the stage ended
    torch.save(ckpt, run / "last.pt")
    assert main(["train", "--resume", str(run)]) == 0
    after = torch.load(run / "last.pt", weights_only=False)["classifier"]["state_dict"]
    assert all(torch.equal(before[k], after[k]) for k in before), "not the classifier an unbroken run made"
    assert main(["train", "--resume", str(run)]) == 1  # now finished: nothing left to resume
    assert "already trained 2 of 2 epoch(s)" in capsys.readouterr().err
    # a finished run given other classifier settings gets that stage again, its detector untouched
    detector = torch.load(run / "last.pt", weights_only=False)["state_dict"]
    settings = ["classifier.epochs=1", "classifier.alpha=0.5", "classifier.second_boxes=2"]
    assert main(["train", "--resume", str(run), *settings]) == 0
    redone = torch.load(run / "last.pt", weights_only=False)
    assert redone["classifier"]["alpha"] == 0.5 and redone["config"]["classifier"]["epochs"] == 1
    assert redone["config"]["classifier"]["second_boxes"] == 2
    assert not all(torch.equal(before[k], redone["classifier"]["state_dict"][k]) for k in before)
    assert all(torch.equal(detector[k], redone["state_dict"][k]) for k in detector)
    assert torch.load(run / "best.pt", weights_only=False)["classifier"]["alpha"] == 0.5
    base = ["train", "--data", str(two_stage), "--epochs", "1", "--out", str(tmp_path)]
    for override, message in (
        ("classifier.arch=resnet", "classifier.arch 'resnet' is not one of mnet"),
        ("classifier.alpha=2", "classifier.alpha is in [0, 1]"),
        ("classifier.beta=1", "classifier.beta is in [0, 1)"),
        ("classifier.refine=1.5", "classifier.refine is in [0, 1]"),
        ("classifier.negatives=-1", "classifier.negatives must be >= 0"),
        ("classifier.second_boxes=-2", "classifier.second_boxes must be >= 0"),
        ("classifier.second_boxes=3 classifier.negatives=0", "it needs classifier.negatives > 0"),
        ("classifier.weights=/nope.pth", "classifier.weights /nope.pth: file not found"),
    ):
        assert main([*base, *override.split()]) == 1
        assert message in capsys.readouterr().err
    assert main([*base, "classifier.epochs=1", "classifier.arch=mobilenet_v2"]) == 1
    assert "needs classifier.weights" in capsys.readouterr().err
