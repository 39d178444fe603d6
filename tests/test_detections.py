"""``Detections``: supervision's field names and the container behaviour its users rely on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError

CLASSES = ("with_mask", "no_mask")


def make(n: int = 4, tracked: bool = False, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, (n, 2))
    wh = rng.uniform(10, 80, (n, 2))
    return Detections(
        np.hstack([xy, xy + wh]),
        rng.uniform(0.3, 1.0, n),
        np.arange(n) % 2,
        CLASSES,
        np.arange(10, 10 + n) if tracked else None,
        {"area": wh.prod(1)},
    )


def test_supervision_field_names_and_types() -> None:
    d = make(3, tracked=True)
    assert d.xyxy.shape == (3, 4) and d.xyxy.dtype == np.float32
    assert d.confidence.shape == (3,) and d.class_id.dtype == np.int64
    assert d.tracker_id is not None and d.tracker_id.tolist() == [10, 11, 12]
    assert d.class_names == CLASSES and len(d) == 3


@pytest.mark.parametrize("bad", [2, -1, 7])
def test_class_id_out_of_range_is_refused_naming_the_id(bad: int) -> None:
    with pytest.raises(ValueError, match=f"class_id {bad} "):
        Detections(np.zeros((2, 4)), [0.9, 0.8], [0, bad], CLASSES)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="differ"):
        Detections(np.zeros((2, 4)), [0.9], [0, 1], CLASSES)
    with pytest.raises(ValueError, match="data"):
        Detections(np.zeros((2, 4)), [0.9, 0.8], [0, 1], CLASSES, data={"x": np.zeros(3)})


def test_indexing_by_int_slice_mask_and_array() -> None:
    d = make(5, tracked=True)
    one = d[2]
    assert len(one) == 1 and one.xyxy[0].tolist() == d.xyxy[2].tolist() and one.tracker_id.tolist() == [12]
    assert d[-1] == d[4]
    assert d[1:3] == d[np.array([1, 2])]
    assert len(d[d.confidence > 2]) == 0
    kept = d[d.class_id == 1]
    assert kept.class_id.tolist() == [1, 1] and kept.data["area"].tolist() == d.data["area"][1::2].tolist()
    with pytest.raises(IndexError):
        d[5]


def test_filter_by_class_name() -> None:
    d = make(5)
    assert d.class_name.tolist() == ["with_mask", "no_mask"] * 2 + ["with_mask"]
    assert d[d.class_name == "no_mask"] == d.with_class("no_mask")
    assert d.with_class("no_mask").class_id.tolist() == [1, 1]
    assert d.with_class("with_mask", "no_mask") == d
    assert len(Detections.empty(CLASSES).with_class("no_mask")) == 0
    with pytest.raises(MaskwatchError, match=r"'nomask'.*with_mask, no_mask"):
        d.with_class("nomask")


def test_equality() -> None:
    a, b = make(4, seed=1), make(4, seed=1)
    assert a == b
    assert not a != b  # noqa: SIM202  (__ne__ follows __eq__)
    assert a != make(4, seed=2)
    assert a != make(4, tracked=True, seed=1)
    assert a != Detections(a.xyxy, a.confidence, a.class_id, ("x", "y"), data=a.data)
    assert a != a[:3]
    assert a != "not detections"
    assert Detections.empty(CLASSES) == Detections.empty(CLASSES)


def test_iteration_yields_one_tuple_per_detection() -> None:
    d = make(3, tracked=True)
    rows = list(d)
    assert len(rows) == 3
    box, score, cid, tid, data = rows[1]
    assert box.tolist() == d.xyxy[1].tolist() and score == float(d.confidence[1])
    assert cid == 1 and tid == 11 and data["area"] == d.data["area"][1]


def test_json_round_trip_is_exact() -> None:
    for d in (make(6, tracked=True), make(3), Detections.empty(CLASSES)):
        text = d.to_json()
        json.loads(text)  # plain JSON
        back = Detections.from_json(text)
        assert back == d
        assert back.data.keys() == d.data.keys()
        for k in d.data:
            assert back.data[k].dtype == d.data[k].dtype


@pytest.mark.parametrize(
    "text", ["not json", "[]", '{"format": 99}', '{"format": 1, "xyxy": []}', json.dumps({"format": 1})]
)
def test_from_json_refuses_malformed_input(text: str) -> None:
    with pytest.raises(MaskwatchError, match="Detections JSON"):
        Detections.from_json(text)


def test_from_json_checks_class_ids() -> None:
    doc = json.loads(make(2).to_json())
    doc["class_id"] = [0, 5]
    with pytest.raises(MaskwatchError, match="class_id 5"):
        Detections.from_json(json.dumps(doc))


def test_empty_and_merge() -> None:
    e = Detections.empty(CLASSES)
    assert len(e) == 0 and e.xyxy.shape == (0, 4) and e.counts() == {"with_mask": 0, "no_mask": 0}
    a, b = make(3, seed=1), make(2, seed=2)
    m = Detections.merge([a, b, Detections(np.zeros((0, 4)), [], [], CLASSES, data={"area": []})])
    assert len(m) == 5 and m[:3] == a and m[3:] == b
    assert Detections.merge([e, e]) == e
    with pytest.raises(ValueError, match="class_names"):
        Detections.merge([a, Detections(a.xyxy, a.confidence, a.class_id, ("x", "y"), data=a.data)])
    with pytest.raises(ValueError, match="tracker_id"):
        Detections.merge([make(2, tracked=True), make(2)])
    with pytest.raises(ValueError, match="at least one"):
        Detections.merge([])
