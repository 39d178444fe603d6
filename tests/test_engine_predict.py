"""``maskwatch.engine.predict``: batched inference over image files whose results do not depend on the
batch size (the default model on real Kaggle images of mixed sizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.data.formats import load_dataset
from maskwatch.data.layout import select_split
from maskwatch.engine.evaluate import EVAL_CONF, EVAL_NMS_IOU, evaluate_dataset, predict_dataset
from maskwatch.engine.predict import plan_batches, predict_images
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image
from tests.conftest import KAGGLE_MERGE, ROOT


def test_batches_hold_images_of_one_size_in_first_appearance_order() -> None:
    sizes = [(4, 3), (5, 3), (4, 3), (4, 3), (5, 3), (4, 3), (7, 7)]
    assert plan_batches(sizes, 2) == [[0, 2], [3, 5], [1, 4], [6]]
    assert plan_batches(sizes, 1) == [[i] for i in (0, 2, 3, 5, 1, 4, 6)]
    with pytest.raises(MaskwatchError, match="--batch 0"):
        plan_batches(sizes, 0)


@pytest.fixture(scope="module")
def kaggle_test(kaggle: Path):
    ds = load_dataset(kaggle, merge=[KAGGLE_MERGE])
    return ds.subset(select_split(ROOT / "splits/face-mask-kaggle/test.txt")[:12])


@pytest.fixture(scope="module")
def default_detector():
    from maskwatch.models.registry import DEFAULT_MODEL, load_detector

    return load_detector(DEFAULT_MODEL, device="cpu")


@pytest.mark.slow
def test_metrics_are_the_same_at_batch_1_and_8(kaggle_test, default_detector) -> None:
    sizes = {load_image(r.image).shape for r in kaggle_test}
    assert len(sizes) > 3  # mixed sizes: the case that used to depend on the batch
    names = default_detector.class_names
    one, eight = (
        evaluate_dataset(
            kaggle_test, predict_dataset(default_detector, kaggle_test, b, progress=False), names, workers=1
        ).summary_json()
        for b in (1, 8)
    )
    one.pop("seconds"), eight.pop("seconds")
    assert one == eight


@pytest.mark.slow
def test_padding_to_a_larger_image_changes_detections_which_is_why_batches_are_same_sized(
    kaggle_test,
    default_detector,
) -> None:
    """The cause the batching avoids: an image padded to a larger batch-mate gets other detections."""
    recs = sorted(kaggle_test.records, key=lambda r: load_image(r.image).size)
    small, large = load_image(recs[0].image), load_image(recs[-1].image)
    assert small.shape != large.shape
    kw = {"conf": EVAL_CONF, "iou": EVAL_NMS_IOU, "agnostic": False}
    alone = default_detector.predict([small], **kw)[0]
    padded = default_detector.predict([small, large], **kw)[0]
    same = len(alone) == len(padded) and np.allclose(alone.xyxy, padded.xyxy, atol=1e-3)
    assert not same
    # predict_images gives the image its batch-1 result whatever the batch
    found = predict_images(default_detector, [recs[0].image, recs[-1].image], batch=8, progress=False, **kw)
    assert len(found[0].detections) == len(alone)
    assert np.allclose(found[0].detections.xyxy, alone.xyxy, atol=1e-3)
    assert (found[0].width, found[0].height) == (small.shape[1], small.shape[0])


def test_an_unreadable_image_is_an_error_or_skipped(tmp_path: Path, default_detector) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.jpg"
    Image.new("RGB", (64, 48), (120, 90, 60)).save(good)
    bad.write_bytes(b"not an image")
    with pytest.raises(MaskwatchError, match=r"bad\.jpg: unreadable image"):
        predict_images(default_detector, [good, bad], progress=False)
    found = predict_images(default_detector, [bad, good], progress=False, skip_unreadable=True)
    assert [p.image for p in found] == [good] and (found[0].width, found[0].height) == (64, 48)


@pytest.mark.slow
def test_training_validation_uses_the_eval_evaluators(kaggle_test, default_detector) -> None:
    from maskwatch.data.record import Dataset
    from maskwatch.engine.evaluate import COCOEvaluator, ConfusionEvaluator, DatasetEvaluators, validate

    few = Dataset(kaggle_test.records[:3], list(kaggle_test.classes))
    names = default_detector.class_names
    default_detector.model.train()  # where a training epoch leaves it
    metrics = validate(default_detector, few, batch=2)
    assert not default_detector.model.training
    report = evaluate_dataset(
        few, predict_dataset(default_detector, few, 1, progress=False), names, workers=1
    )
    assert (
        metrics["AP"] == report.full.metrics["AP"]
        and metrics["per_class"] == report.full.metrics["per_class"]
    )
    both = validate(
        default_detector, few, 2, DatasetEvaluators([COCOEvaluator(names), ConfusionEvaluator(names)])
    )
    assert set(both) == {"bbox", "operating_point"} and both["bbox"]["AP"] == metrics["AP"]
    assert both["operating_point"]["matrix"] == report.confusion.matrix.tolist()
