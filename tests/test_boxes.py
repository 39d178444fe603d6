"""maskwatch.boxes: hand-computed IoUs, NMS keep/suppress decisions, conversions and clipping."""

from __future__ import annotations

import numpy as np
import pytest

from maskwatch.boxes import (
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    cxcywh_to_xyxy,
    nms,
    paired_iou,
    xywh_to_xyxy,
    xyxy_to_cxcywh,
    xyxy_to_xywh,
)


def test_area_and_iou_by_hand() -> None:
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15], [10, 10, 20, 20], [0, 0, 10, 10], [2, 0, 4, 10]])
    assert box_area(b).tolist() == [100, 100, 100, 20]
    # overlap 5x5=25, union 100+100-25=175; touching corners: 0; identical: 1; inside: 20/100
    assert box_iou(a, b)[0] == pytest.approx([25 / 175, 0.0, 1.0, 0.2])
    assert box_iou(a, np.zeros((0, 4))).shape == (1, 0)
    assert box_iou([[3, 3, 3, 3]], [[3, 3, 3, 3]])[0, 0] == 0.0  # empty boxes: no division by zero


def test_inverted_box_has_no_area() -> None:
    assert box_area([[10, 10, 0, 0]])[0] == 0.0


def test_nms_keeps_best_and_suppresses_overlaps_above_threshold() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10.0]])
    scores = np.array([0.8, 0.9, 0.7, 0.1])
    # box 1 (0.9) beats box 0: IoU 90/110 = 0.818 > 0.5 -> box 0 and its twin 3 go; box 2 is apart
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # at a threshold above 0.818 box 0 survives, box 3 (IoU 1 with box 0) still goes
    assert nms(boxes, scores, 0.85).tolist() == [1, 0, 2]
    # IoU exactly at the threshold is kept (suppression needs IoU > threshold, as in torchvision)
    assert nms(np.array([[0, 0, 10, 10], [0, 0, 10, 5.0]]), np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_nms_equal_scores_keep_input_order() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10.0]])
    assert nms(boxes, np.array([0.5, 0.5]), 0.5).tolist() == [0]


def test_batched_nms_only_suppresses_within_a_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10.0]])
    scores = np.array([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, np.array([0, 0, 0]), 0.5).tolist() == [0]
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), 0.5).tolist() == []


def test_nms_agrees_with_torchvision_on_random_boxes() -> None:
    torch = pytest.importorskip("torch")
    from torchvision.ops import batched_nms as tv_batched_nms

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (500, 2))
    boxes = np.c_[xy, xy + rng.uniform(5, 80, (500, 2))].astype(np.float32)
    scores = rng.uniform(0, 1, 500).astype(np.float32)
    labels = rng.integers(0, 3, 500)
    for iou in (0.3, 0.5, 0.7):
        ours = batched_nms(boxes, scores, labels, iou)
        theirs = tv_batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(labels), iou
        )
        assert ours.tolist() == theirs.tolist()


def test_conversions_round_trip() -> None:
    xyxy = np.array([[10, 20, 50, 100], [0, 0, 1, 1.0]])
    assert xyxy_to_xywh(xyxy).tolist() == [[10, 20, 40, 80], [0, 0, 1, 1]]
    assert xyxy_to_cxcywh(xyxy).tolist() == [[30, 60, 40, 80], [0.5, 0.5, 1, 1]]
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(xyxy)), xyxy)
    np.testing.assert_allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(xyxy)), xyxy)
    assert cxcywh_to_xyxy([5, 5, 2, 4]).tolist() == [[4, 3, 6, 7]]  # a single box reshapes to (1, 4)


def test_clip_boxes_to_the_image_without_touching_the_input() -> None:
    boxes = np.array([[-5, -1, 50, 30], [10, 10, 700, 500]], dtype=np.float32)
    clipped = clip_boxes(boxes, 640, 360)
    assert clipped.tolist() == [[0, 0, 50, 30], [10, 10, 640, 360]]
    assert clipped.dtype == np.float32 and boxes[0, 0] == -5


def test_fuse_boxes_averages_overlapping_looks_by_score_within_a_class() -> None:
    from maskwatch.boxes import fuse_boxes

    xyxy = np.array(
        [
            [0, 0, 10, 10],  # face A, look 1
            [2, 0, 12, 10],  # face A, look 2 (IoU 0.67 with look 1)
            [50, 50, 60, 60],  # face B, one look only
            [1, 0, 11, 10],  # face A again, but another class: not fused into A
        ],
        dtype=float,
    )
    scores = np.array([0.9, 0.3, 0.6, 0.5])
    classes = np.array([0, 0, 0, 1])
    boxes, fused, labels = fuse_boxes(xyxy, scores, classes, iou=0.55)
    assert labels.tolist() == [0, 0, 1] and np.allclose(fused, [0.6, 0.6, 0.5])
    # A: (0.9 * [0,0,10,10] + 0.3 * [2,0,12,10]) / 1.2 = [0.5, 0, 10.5, 10]; its score the mean 0.6
    order = np.argsort(boxes[:, 0])
    np.testing.assert_allclose(boxes[order], [[0.5, 0, 10.5, 10], [1, 0, 11, 10], [50, 50, 60, 60]])
    # below the IoU threshold the looks stay apart
    apart, _, _ = fuse_boxes(xyxy[:2], scores[:2], classes[:2], iou=0.7)
    assert len(apart) == 2
    empty = fuse_boxes(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int), iou=0.5)
    assert [len(x) for x in empty] == [0, 0, 0]


def test_hflip_boxes_mirrors_left_right_without_touching_the_input() -> None:
    from maskwatch.boxes import hflip_boxes

    boxes = np.array([[10, 5, 30, 25], [0, 0, 100, 50]], dtype=np.float32)
    flipped = hflip_boxes(boxes, 100)
    np.testing.assert_array_equal(flipped, [[70, 5, 90, 25], [0, 0, 100, 50]])
    assert flipped.dtype == np.float32 and boxes[0, 0] == 10
    np.testing.assert_array_equal(hflip_boxes(flipped, 100), boxes)


def test_paired_iou_is_the_diagonal_of_box_iou() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 50, (30, 2))
    a = np.concatenate([xy, xy + rng.uniform(0, 20, (30, 2))], axis=1)
    b = a + rng.normal(0, 5, a.shape)
    assert np.allclose(paired_iou(a, b), np.diag(box_iou(a, b)))
    assert paired_iou(np.zeros((1, 4)), np.zeros((1, 4))).tolist() == [0.0]
