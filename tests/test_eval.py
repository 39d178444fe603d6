"""COCO evaluation against hand-computed cases: ground truth and predictions are built directly, no model.

pycocotools matches at IoU thresholds 0.50, 0.55, ..., 0.95; for a single face found with IoU u, AP is the
share of thresholds ≤ u (precision is 1 at every recall where it matches, 0 where it does not).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from maskwatch.data.coco import coco_dict
from maskwatch.data.record import Annotation, Dataset
from maskwatch.detections import Detections
from maskwatch.engine.confusion import FALSE_ALARM, HIT, IGNORED, MISS, SWAP, box_iou, confusion_at
from maskwatch.engine.evaluate import (
    COCOEvaluator,
    ConfusionEvaluator,
    DatasetEvaluators,
    bootstrap_intervals,
    bootstrap_samples,
    coco_ground_truth,
    coco_results,
    evaluate,
    evaluate_dataset,
    json_safe,
    run_cocoeval,
)
from maskwatch.engine.report import pr_curve_runs
from maskwatch.errors import MaskwatchError

CLASSES = ("with_mask", "no_mask")
BIG = [10.0, 10.0, 110.0, 110.0]  # 100 × 100: a "large" COCO face


def dataset(*images: list[tuple[list[float], str]], size: int = 400) -> Dataset:
    records = [
        Annotation(f"/data/img{i}.jpg", size, size, [b for b, _ in faces], [lab for _, lab in faces])
        for i, faces in enumerate(images)
    ]
    return Dataset(records, list(CLASSES))


def dets(*items: tuple[list[float], float, str], names: tuple[str, ...] = CLASSES) -> Detections:
    if not items:
        return Detections.empty(names)
    return Detections(
        [b for b, _, _ in items], [s for _, s, _ in items], [names.index(n) for *_, n in items], names
    )


def shifted(box: list[float], iou: float) -> list[float]:
    """``box`` moved right so that its IoU with the original is ``iou`` (w - d) / (w + d) = iou."""
    w = box[2] - box[0]
    d = w * (1 - iou) / (1 + iou)
    return [box[0] + d, box[1], box[2] + d, box[3]]


def test_perfect_predictions_give_ap_100() -> None:
    ds = dataset([(BIG, "with_mask"), ([200, 200, 230, 236], "no_mask")], [([50, 60, 70, 84], "no_mask")])
    preds = [dets(*((b, 0.9, lab) for b, lab in zip(r.boxes.tolist(), r.labels, strict=True))) for r in ds]
    m = evaluate(ds, preds, CLASSES)
    for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        assert m[key] == 100.0, key
    assert m["per_class"] == {
        "with_mask": {"AP": 100.0, "AP50": 100.0},
        "no_mask": {"AP": 100.0, "AP50": 100.0},
    }


@pytest.mark.parametrize(("iou", "ap"), [(0.72, 50.0), (0.62, 30.0), (0.96, 100.0), (0.45, 0.0)])
def test_one_shifted_box_scores_the_share_of_thresholds_it_passes(iou: float, ap: float) -> None:
    ds = dataset([(BIG, "with_mask")])
    box = shifted(BIG, iou)
    assert box_iou([box], [BIG])[0, 0] == pytest.approx(iou)
    m = evaluate(ds, [dets((box, 0.8, "with_mask"))], CLASSES)
    assert m["AP"] == ap
    assert m["AP50"] == (100.0 if iou >= 0.5 else 0.0)
    assert m["AP75"] == (100.0 if iou >= 0.75 else 0.0)


def test_no_detections_at_all_scores_zero_and_misses_every_face() -> None:
    ds = dataset([(BIG, "with_mask")], [])
    report = evaluate_dataset(ds, [dets(), dets()], CLASSES, workers=1)
    assert report.full.metrics["AP"] == 0.0 and report.full.results == []
    assert report.confusion.matrix.tolist() == [[0, 0, 1], [0, 0, 0], [0, 0, 0]]


def test_classes_without_ground_truth_are_nan_not_minus_100() -> None:
    m = evaluate(dataset([(BIG, "with_mask")]), [dets((BIG, 0.9, "with_mask"))], CLASSES)
    assert math.isnan(m["APs"]) and math.isnan(m["APm"]) and m["APl"] == 100.0
    assert math.isnan(m["per_class"]["no_mask"]["AP"])
    assert json_safe(m)["per_class"]["no_mask"] == {"AP": None, "AP50": None}
    json.dumps(json_safe(m), allow_nan=False)


def test_categories_are_matched_by_name_not_position() -> None:
    """A detector whose class order differs from the dataset's is still scored by class name."""
    ds = dataset([(BIG, "with_mask"), ([200, 200, 300, 300], "no_mask")])
    reversed_names = ("no_mask", "with_mask")
    pred = dets((BIG, 0.9, "with_mask"), ([200, 200, 300, 300], 0.8, "no_mask"), names=reversed_names)
    assert evaluate(ds, [pred], CLASSES)["AP"] == 100.0
    swapped = Detections(pred.xyxy, pred.confidence, pred.class_id, CLASSES)  # same indices, other meaning
    assert evaluate(ds, [swapped], CLASSES)["AP"] == 0.0


def test_explicit_image_ids_are_used_in_both_files() -> None:
    ds = dataset([(BIG, "with_mask")], [([50, 50, 150, 150], "no_mask")])
    ids = [17, 4]
    preds = [dets((BIG, 0.9, "with_mask")), dets(([50, 50, 150, 150], 0.9, "no_mask"))]
    gt = coco_ground_truth(ds, CLASSES, ids)
    res = coco_results(preds, CLASSES, ids)
    assert [im["id"] for im in gt["images"]] == ids
    assert [r["image_id"] for r in res] == ids
    assert {c["id"]: c["name"] for c in gt["categories"]} == {1: "with_mask", 2: "no_mask"}
    ev, summary = run_cocoeval(gt, res)
    assert ev.stats[0] == pytest.approx(1.0)
    assert len(summary.strip().splitlines()) == 12


def test_class_swap_shows_in_the_confusion_matrix() -> None:
    ds = dataset([(BIG, "with_mask"), ([200, 200, 300, 300], "no_mask")])
    pred = dets(
        (BIG, 0.9, "no_mask"), ([200, 200, 300, 300], 0.8, "no_mask"), ([300, 10, 360, 70], 0.7, "with_mask")
    )
    report = evaluate_dataset(ds, [pred], CLASSES, workers=1)
    c = report.confusion
    # rows: truth with_mask, no_mask, none; columns: predicted with_mask, no_mask, none (missed)
    assert c.matrix.tolist() == [[0, 1, 0], [0, 1, 0], [1, 0, 0]]
    per = c.per_class()
    assert per["no_mask"] == {"precision": 50.0, "recall": 100.0, "f1": 66.67, "tp": 1, "fp": 1, "fn": 0}
    assert per["with_mask"]["tp"] == 0 and per["with_mask"]["fp"] == 1 and per["with_mask"]["fn"] == 1
    m = c.images[0]
    assert m.gt_state.tolist() == [SWAP, HIT]
    assert m.det_state.tolist() == [SWAP, HIT, FALSE_ALARM]
    assert (m.missed, m.false_alarms, m.swapped) == (0, 1, 1)
    j = c.to_json()
    assert (j["missed"], j["false_alarms"], j["swapped"]) == (0, 1, 1)
    assert report.full.metrics["per_class"]["with_mask"]["AP"] == 0.0


def test_operating_point_threshold_and_misses() -> None:
    ds = dataset([(BIG, "with_mask"), ([200, 200, 300, 300], "no_mask")])
    pred = dets((BIG, 0.4, "with_mask"), ([200, 200, 300, 300], 0.9, "no_mask"))
    c = evaluate_dataset(ds, [pred], CLASSES, conf=0.5, workers=1).confusion
    assert c.matrix.tolist() == [[0, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert c.images[0].gt_state.tolist() == [MISS, HIT]
    c = evaluate_dataset(ds, [pred], CLASSES, conf=0.3, workers=1).confusion
    assert c.matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_operating_point_keeps_one_label_per_face() -> None:
    """Per-class NMS keeps both class guesses for AP; at the operating point the face counts once."""
    ds = dataset([(BIG, "with_mask")])
    pred = dets(
        (BIG, 0.6, "no_mask"), (shifted(BIG, 0.9), 0.35, "with_mask"), ([300, 300, 340, 340], 0.4, "no_mask")
    )
    c = evaluate_dataset(ds, [pred], CLASSES, conf=0.3, workers=1).confusion
    assert c.matrix.tolist() == [[0, 1, 0], [0, 0, 0], [0, 1, 0]]
    assert c.images[0].det_index.tolist() == [0, 2]


# Range of interest: faces below MIN px are ignore regions, detections below MIN px are dropped.
MIN = 12.0
SMALL = [300.0, 300.0, 311.8, 311.8]  # 11.8 px face, just below the range
ON_SMALL = [299.9, 299.9, 311.9, 311.9]  # 12 px detection around it: IoU 0.967, matches at every threshold
NO_MASK_FACE = [150.0, 150.0, 250.0, 250.0]


def roi(ds: Dataset, pred: Detections) -> tuple[dict, dict]:
    report = evaluate_dataset(ds, [pred], CLASSES, min_size=MIN, workers=1)
    assert report.roi is not None
    return report.full.metrics, report.roi.metrics


def test_detection_on_a_small_ignored_face_is_not_a_false_alarm() -> None:
    ds = dataset([(BIG, "with_mask"), (SMALL, "with_mask"), (NO_MASK_FACE, "no_mask")])
    # The detections on the small face score highest: counted as false alarms they would halve precision.
    pred = dets(
        (ON_SMALL, 0.99, "with_mask"),
        (ON_SMALL, 0.98, "no_mask"),  # a wrong-class guess on it is ignored too
        (BIG, 0.9, "with_mask"),
        (NO_MASK_FACE, 0.5, "no_mask"),
    )
    full, inside = roi(ds, pred)
    assert inside["AP"] == 100.0
    assert inside["per_class"]["no_mask"]["AP"] == 100.0
    assert full["per_class"]["no_mask"]["AP50"] < 100.0  # without the range of interest it is a false alarm


def test_missed_small_face_does_not_lower_ap_and_small_detections_are_dropped() -> None:
    ds = dataset([(BIG, "with_mask"), (SMALL, "with_mask")])
    pred = dets((BIG, 0.9, "with_mask"), ([350, 350, 358, 358], 0.95, "with_mask"))  # 8 px false alarm
    full, inside = roi(ds, pred)
    assert inside["AP"] == 100.0
    assert full["AP"] < 60.0  # half the faces missed and a top-scoring false alarm


def test_ignore_region_absorbs_one_detection_not_many() -> None:
    """pycocotools' ``ignore`` semantics, not crowd: a duplicate on a small face is a false alarm."""
    ds = dataset([(BIG, "with_mask"), (SMALL, "with_mask")])
    pred = dets((ON_SMALL, 0.99, "with_mask"), (ON_SMALL, 0.98, "with_mask"), (BIG, 0.9, "with_mask"))
    _, inside = roi(ds, pred)
    assert inside["AP"] < 100.0


def test_detection_on_an_ignored_face_is_matched_by_iou_like_any_other() -> None:
    """The documented boundary: "on" an ignored face means IoU ≥ the threshold, as for every face. A 12-px
    box around a 10-px face (IoU 0.69) is ignored at IoU 0.50-0.65 and a false alarm from 0.70 up."""
    ds = dataset([(BIG, "with_mask"), ([300, 300, 310, 310], "with_mask")])
    pred = dets(([299, 299, 311, 311], 0.99, "with_mask"), (BIG, 0.9, "with_mask"))
    _, inside = roi(ds, pred)
    assert inside["AP50"] == 100.0
    # 4 thresholds: precision 1; 6 thresholds: the top-scoring false alarm halves precision at recall 1.
    assert inside["AP"] == 0.4 * 100 + 0.6 * 50


def test_confusion_matrix_uses_the_range_of_interest() -> None:
    ds = dataset([(BIG, "with_mask"), (SMALL, "no_mask"), ([200, 30, 209, 39], "with_mask")])
    pred = dets((BIG, 0.9, "with_mask"), (ON_SMALL, 0.9, "with_mask"), ([350, 350, 358, 358], 0.9, "no_mask"))
    report = evaluate_dataset(ds, [pred], CLASSES, min_size=MIN, workers=1)
    c = report.confusion
    assert c.matrix.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    m = c.images[0]
    assert m.gt_state.tolist() == [HIT, IGNORED, IGNORED]
    assert m.det_state.tolist() == [HIT, IGNORED]  # the 8-px detection is dropped, not a false alarm
    assert report.roi.boxes == 1 and report.roi.ignored == 2 and report.full.boxes == 3


def test_pycocotools_alone_drops_the_ignore_flag_which_maskwatch_restores() -> None:
    """Pins the upstream bug (cocoapi #123/#466) the ``IgnoreAwareCOCOeval`` subclass exists for."""
    ds = dataset([(BIG, "with_mask"), (SMALL, "with_mask")])
    gt = coco_ground_truth(ds, CLASSES, min_size=MIN)
    assert sum(a.get("ignore", 0) for a in gt["annotations"]) == len(CLASSES)  # one copy per category
    res = coco_results([dets((BIG, 0.9, "with_mask"))], CLASSES)
    plain_gt = COCO()
    plain_gt.dataset = json.loads(json.dumps(gt))
    plain_gt.createIndex()
    plain = COCOeval(plain_gt, plain_gt.loadRes(json.loads(json.dumps(res))), "bbox")
    plain.evaluate()
    plain.accumulate()
    assert plain.eval["recall"][0, 0, 0, -1] == 0.5  # the ignored face still counted as missed
    ev, _ = run_cocoeval(gt, res)
    assert ev.eval["recall"][0, 0, 0, -1] == 1.0
    assert "ignore" not in gt["annotations"][0]  # the caller's dict is not modified


def random_case(n: int, seed: int) -> tuple[Dataset, list[Detections]]:
    rng = np.random.default_rng(seed)
    records, preds = [], []
    for i in range(n):
        k = int(rng.integers(0, 6))
        xy = rng.uniform(0, 300, (k, 2))
        boxes = np.c_[xy, xy + rng.uniform(4, 100, (k, 2))]
        labels = rng.integers(0, 2, k)
        records.append(Annotation(f"/r/{i}.jpg", 400, 400, boxes, [CLASSES[j] for j in labels]))
        noisy = (
            np.r_[boxes + rng.normal(0, 4, boxes.shape), np.c_[xy[:2], xy[:2] + 20]]
            if k
            else np.zeros((0, 4))
        )
        preds.append(
            Detections(noisy, rng.uniform(0, 1, len(noisy)), rng.integers(0, 2, len(noisy)), CLASSES)
        )
    return Dataset(records, list(CLASSES)), preds


def test_parallel_evaluation_is_identical_to_serial() -> None:
    ds, preds = random_case(60, seed=3)
    serial = evaluate_dataset(ds, preds, CLASSES, min_size=10, workers=1)
    parallel = evaluate_dataset(ds, preds, CLASSES, min_size=10, workers=3)
    for a, b in ((serial.full, parallel.full), (serial.roi, parallel.roi)):
        assert np.array_equal(a.precision, b.precision)
        assert np.array_equal(a.scores, b.scores)
        assert a.summary == b.summary
    assert 0 < serial.full.metrics["AP"] < 100


def test_summary_json_has_the_documented_keys() -> None:
    ds, preds = random_case(5, seed=1)
    j = evaluate_dataset(ds, preds, CLASSES, min_size=10, workers=1).summary_json()
    keys = {"AP", "AP50", "AP75", "APs", "APm", "APl", "per_class", "images", "boxes"}
    assert keys | {"seconds", "roi"} == set(j)
    assert keys | {"min_size", "ignored"} == set(j["roi"])
    assert set(j["per_class"]) == set(CLASSES) and set(j["per_class"]["no_mask"]) == {"AP", "AP50"}
    assert j["images"] == 5 and j["boxes"] == ds.num_boxes and j["roi"]["min_size"] == 10
    json.dumps(j, allow_nan=False)


# --- --iou-thr: AP at one IoU threshold ------------------------------------------------------------------


@pytest.mark.parametrize(("thr", "ap"), [(0.3, 100.0), (0.39, 100.0), (0.41, 0.0), (0.5, 0.0)])
def test_iou_thr_counts_a_box_at_iou_0_4_below_the_threshold_only(thr: float, ap: float) -> None:
    ds = dataset([(BIG, "with_mask")])
    box = shifted(BIG, 0.4)
    report = evaluate_dataset(ds, [dets((box, 0.8, "with_mask"))], CLASSES, iou_thr=thr, workers=1)
    assert report.full.metrics["AP50"] == 0.0  # COCO's thresholds never accept it
    assert report.at_iou is not None and report.at_iou.metrics["AP"] == ap
    assert report.at_iou.metrics["per_class"]["with_mask"]["AP"] == ap
    j = report.summary_json()["iou_thr"]
    assert j["iou"] == thr and j["AP"] == ap and "AP50" not in j


def test_iou_thr_still_needs_the_right_class() -> None:
    ds = dataset([(BIG, "with_mask")])
    report = evaluate_dataset(
        ds, [dets((shifted(BIG, 0.4), 0.8, "no_mask"))], CLASSES, iou_thr=0.3, workers=1
    )
    assert report.at_iou is not None and report.at_iou.metrics["AP"] == 0.0


# --- --bootstrap: image-resampled intervals ---------------------------------------------------------------


def test_bootstrap_of_every_image_once_reproduces_pycocotools() -> None:
    """A "resample" that takes each image once must give exactly pycocotools' own numbers."""
    ds, preds = random_case(30, seed=5)
    ev, _ = run_cocoeval(coco_ground_truth(ds, CLASSES), coco_results(preds, CLASSES))
    full = evaluate(ds, preds, CLASSES)
    iv = bootstrap_intervals(ev, CLASSES, np.arange(len(ds))[None])
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl"):
        assert iv[k] == [full[k], full[k]], k
    for name in CLASSES:
        assert iv["per_class"][name]["AP"] == [full["per_class"][name]["AP"]] * 2


def test_bootstrap_doubles_an_image_drawn_twice() -> None:
    """Image 0 (a hit) drawn twice and image 1 (a miss) once: recall 2/3 at precision 1 → AP50 = 66.34
    (pycocotools' 101-point interpolation: recall thresholds 0.00..0.66 reached, 67 of 101)."""
    ds = dataset([(BIG, "with_mask")], [(BIG, "with_mask")])
    ev, _ = run_cocoeval(
        coco_ground_truth(ds, CLASSES), coco_results([dets((BIG, 0.9, "with_mask")), dets()], CLASSES)
    )
    iv = bootstrap_intervals(ev, CLASSES, np.array([[0, 0, 1]]))
    assert iv["AP50"] == [round(67 / 101 * 100, 2)] * 2


def interval_width(n: int, seed: int = 0) -> tuple[float, list[float], float]:
    ds, preds = random_case(n, seed=11)
    report = evaluate_dataset(ds, preds, CLASSES, workers=1, bootstrap=200, seed=seed)
    assert report.full.interval is not None
    lo, hi = report.full.interval["AP"]
    return hi - lo, [lo, hi], report.full.metrics["AP"]


def test_bootstrap_interval_contains_the_estimate_narrows_with_more_images_and_is_seeded() -> None:
    w20, iv20, ap20 = interval_width(20)
    w120, iv120, ap120 = interval_width(120)
    assert iv20[0] <= ap20 <= iv20[1] and iv120[0] <= ap120 <= iv120[1]
    assert w120 < 0.7 * w20
    assert interval_width(20) == (w20, iv20, ap20)  # same seed, same interval
    assert interval_width(20, seed=1)[1] != iv20


def test_bootstrap_intervals_reach_the_json_and_every_headline_number() -> None:
    ds, preds = random_case(15, seed=2)
    j = evaluate_dataset(ds, preds, CLASSES, min_size=10, iou_thr=0.3, workers=1, bootstrap=20).summary_json()
    assert j["bootstrap"] == {"resamples": 20, "seed": 0, "level": 95.0}
    for part, keys in (
        (j, ("AP", "AP50", "AP75", "APs", "APm", "APl")),
        (j["roi"], ("AP",)),
        (j["iou_thr"], ("AP",)),
    ):
        for k in keys:
            if part[k] is None:  # no ground truth in that area range: no interval either
                assert part["interval"][k] is None
                continue
            lo, hi = part["interval"][k]
            assert lo <= part[k] <= hi, k
        assert set(part["interval"]["per_class"]) == set(CLASSES)
    json.dumps(j, allow_nan=False)


def test_bootstrap_samples_are_fixed_by_the_seed() -> None:
    a = bootstrap_samples(10, 5, seed=3)
    assert a.shape == (5, 10) and np.array_equal(a, bootstrap_samples(10, 5, seed=3))
    assert not np.array_equal(a, bootstrap_samples(10, 5, seed=4))


# --- evaluators compose -----------------------------------------------------------------------------------


def test_evaluators_compose_and_chunks_give_the_same_result_as_one_pass() -> None:
    ds, preds = random_case(12, seed=4)

    def evaluators() -> DatasetEvaluators:
        return DatasetEvaluators(
            [
                COCOEvaluator(CLASSES, "all"),
                COCOEvaluator(CLASSES, "roi", min_size=10),
                ConfusionEvaluator(CLASSES),
            ]
        )

    whole, chunked = evaluators(), evaluators()
    whole.reset()
    whole.process(ds.records, preds)
    chunked.reset()
    for i in range(0, len(ds), 5):
        chunked.process(ds.records[i : i + 5], preds[i : i + 5])
    a, b = whole.evaluate(), chunked.evaluate()
    assert json_safe(a) == json_safe(b) and set(a) == {"all", "roi", "operating_point"}
    report = evaluate_dataset(ds, preds, CLASSES, min_size=10, workers=1)
    assert a["all"]["AP"] == report.full.metrics["AP"] and a["roi"]["AP"] == report.roi.metrics["AP"]
    assert a["operating_point"]["matrix"] == confusion_at(ds, preds, CLASSES).matrix.tolist()


def test_two_evaluators_with_one_name_are_an_error() -> None:
    ds, preds = random_case(3, seed=4)
    both = DatasetEvaluators([COCOEvaluator(CLASSES), COCOEvaluator(CLASSES)])
    both.reset()
    both.process(ds.records, preds)
    with pytest.raises(ValueError, match="two evaluators produced 'bbox'"):
        both.evaluate()


# --- ground truth and predictions share Detections and one COCO builder -----------------------------------


def test_ground_truth_as_detections() -> None:
    rec = Annotation("/x.jpg", 100, 100, [[1, 2, 30, 40], [50, 50, 60, 70]], ["no_mask", "with_mask"])
    gt = rec.to_detections(CLASSES)
    assert gt.label_names == ["no_mask", "with_mask"] and gt.class_id.tolist() == [1, 0]
    assert gt.confidence.tolist() == [1.0, 1.0] and np.array_equal(gt.xyxy, rec.boxes.astype(np.float32))
    with pytest.raises(MaskwatchError, match="'no_mask' is not one of the evaluated classes"):
        rec.to_detections(["with_mask"])


def test_convert_and_eval_use_one_coco_builder() -> None:
    ds = dataset([(BIG, "with_mask"), ([200, 200, 230, 236], "no_mask")], [([50, 60, 70, 84], "no_mask")])
    written = coco_dict(ds)
    scored = coco_ground_truth(ds, CLASSES)
    for key in ("images", "annotations", "categories"):
        assert written[key] == scored[key], key
    # with a range of interest, the 20 × 24 face becomes an ignore region in every category
    roi = coco_ground_truth(ds, CLASSES, min_size=22)
    ignored = [a for a in roi["annotations"] if a.get("ignore")]
    assert [a["category_id"] for a in ignored] == [1, 2] and {a["image_id"] for a in ignored} == {2}


def test_prediction_class_outside_the_evaluated_list_is_a_one_line_error() -> None:
    with pytest.raises(MaskwatchError, match="'person' is not one of the evaluated classes"):
        coco_results([dets((BIG, 0.9, "person"), names=("person",))], CLASSES)


# --- PR-curve dots are the confusion table's operating point ----------------------------------------------


def test_each_pr_curve_family_takes_its_dot_from_the_confusion_of_the_same_faces() -> None:
    ds, preds = random_case(20, seed=6)
    report = evaluate_dataset(ds, preds, CLASSES, min_size=10, workers=1)
    (all_label, all_run, _, all_conf), (roi_label, roi_run, _, roi_conf) = pr_curve_runs(report)
    assert (all_label, roi_label) == ("all faces", "range of interest")
    assert all_run is report.full and roi_run is report.roi
    assert roi_conf is report.confusion  # the printed and plotted confusion table
    assert (
        all_conf.min_size == 0
        and all_conf.matrix.tolist() == confusion_at(ds, preds, CLASSES).matrix.tolist()
    )
    # without a range of interest the one curve family uses the one confusion table
    plain = evaluate_dataset(ds, preds, CLASSES, workers=1)
    assert [r[3] for r in pr_curve_runs(plain)] == [plain.confusion]


# --- "ignore" regions labelled in the learning base ---------------------------------------------------------


def test_a_labelled_ignore_region_is_neither_a_face_nor_background() -> None:
    """A box labelled ``ignore`` (a face nobody classified, e.g. in a sparsely labelled crowd) is scored
    like a face below the range of interest: a detection on it counts for nothing, missing it costs
    nothing, and it is reported as ignored."""
    crowd = [300.0, 300.0, 340.0, 340.0]
    pred = dets((crowd, 0.99, "no_mask"), (BIG, 0.9, "with_mask"), (NO_MASK_FACE, 0.8, "no_mask"))
    plain = dataset([(BIG, "with_mask"), (NO_MASK_FACE, "no_mask")])
    marked = dataset([(BIG, "with_mask"), (NO_MASK_FACE, "no_mask"), (crowd, "ignore")])
    before = evaluate_dataset(plain, [pred], CLASSES, workers=1)
    after = evaluate_dataset(marked, [pred], CLASSES, workers=1)
    assert before.full.metrics["per_class"]["no_mask"]["AP"] < 100.0  # unlabelled: a top-scoring false alarm
    assert after.full.metrics["AP"] == 100.0
    assert after.full.boxes == 2 and after.full.ignored == 1
    assert after.summary_json()["ignored"] == 1 and "ignored" not in before.summary_json()
    assert after.confusion.images[0].gt_state.tolist() == [HIT, HIT, IGNORED]
    assert after.confusion.images[0].det_state.tolist() == [IGNORED, HIT, HIT]
    assert after.confusion.matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    found = dets((BIG, 0.9, "with_mask"), (NO_MASK_FACE, 0.8, "no_mask"))
    missed = evaluate_dataset(marked, [found], CLASSES, workers=1)
    assert missed.full.metrics["AP"] == 100.0


def test_ignore_is_an_ordinary_class_where_it_is_one_of_the_classes() -> None:
    """Converting a learning base keeps ``ignore`` boxes as a category, so they round-trip."""
    ds = dataset([(BIG, "with_mask"), ([300, 300, 340, 340], "ignore")])
    ds.classes.append("ignore")
    written = coco_dict(ds)
    assert [c["name"] for c in written["categories"]] == ["with_mask", "no_mask", "ignore"]
    assert [a["category_id"] for a in written["annotations"]] == [1, 3]
    assert not any(a.get("ignore") for a in written["annotations"])
    scored = coco_ground_truth(ds, CLASSES)  # scored against the model's classes: an ignore region
    assert [(a["category_id"], a.get("ignore", 0)) for a in scored["annotations"]] == [(1, 0), (1, 1), (2, 1)]
