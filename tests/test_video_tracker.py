"""The face tracker on honestly synthetic tracks (boxes moving at constant speed, detector label noise,
missed detections, a one-frame false alarm), and the annotator's privacy blur on a real frame."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from maskwatch.detections import Detections
from maskwatch.video.annotate import Annotator, blur_regions
from maskwatch.video.tracker import FaceTracker

CLASSES = ("with_mask", "no_mask")


def frame_dets(boxes: list[list[float]], labels: list[int], scores: list[float] | None = None) -> Detections:
    return Detections(np.array(boxes).reshape(-1, 4), scores or [0.9] * len(boxes), labels, CLASSES)


def test_ids_persist_through_motion_order_and_gaps() -> None:
    """Two faces crossing the frame keep their ids whatever order the detector lists them in, and across
    a 5-frame miss of one face (the Kalman prediction carries it)."""
    tracker = FaceTracker(CLASSES)
    rng = np.random.default_rng(0)
    ids: dict[str, set[int]] = {"a": set(), "b": set()}
    for t in range(40):
        faces = {"a": [10 + 6 * t, 50, 60 + 6 * t, 110], "b": [400 - 5 * t, 200, 440 - 5 * t, 250]}
        if 15 <= t < 20:
            del faces["b"]  # occluded
        names = list(faces)
        rng.shuffle(names)
        out = tracker.update(frame_dets([faces[n] for n in names], [0] * len(names)))
        if t >= 2:  # confirmed after min_hits=3 detections
            for name, tid in zip(names, out.tracker_id, strict=True):
                ids[name].add(int(tid))
    assert len(ids["a"]) == 1 and len(ids["b"]) == 1 and ids["a"] != ids["b"]
    assert min(ids["a"] | ids["b"]) >= 1
    assert tracker.people() == {"with_mask": 2, "no_mask": 0}


def test_label_vote_stops_flicker_and_counts_people_by_majority() -> None:
    """The detector says no_mask on every fourth frame of a masked face: the tracked label never flips, the
    raw per-frame label is kept, and the person counts as with_mask."""
    tracker = FaceTracker(CLASSES)
    voted, raw = [], []
    for t in range(30):
        label = 1 if t % 4 == 3 else 0
        out = tracker.update(frame_dets([[100 + t, 100, 160 + t, 170]], [label], [0.8]))
        voted.append(int(out.class_id[0]))
        raw.append(int(out.data["frame_label"][0]))
    assert set(voted) == {0} and 1 in raw
    assert tracker.people() == {"with_mask": 1, "no_mask": 0}


def test_one_frame_false_alarm_is_not_a_person() -> None:
    """A track becomes a person only after min_hits consecutive detections; until then its id is -1."""
    tracker = FaceTracker(CLASSES, min_hits=3)
    first = tracker.update(frame_dets([[0, 0, 30, 30], [300, 300, 340, 350]], [1, 0]))
    assert list(first.tracker_id) == [-1, -1]
    for t in range(1, 6):  # only the second face stays
        out = tracker.update(frame_dets([[300 + t, 300, 340 + t, 350]], [0]))
        assert out.tracker_id[0] == (-1 if t < 2 else 1)
    assert tracker.people() == {"with_mask": 1, "no_mask": 0}


def test_track_ends_after_max_age_and_a_returning_face_is_new() -> None:
    tracker = FaceTracker(CLASSES, max_age=3)
    box = [[50, 50, 100, 110]]
    for _ in range(4):
        first_id = tracker.update(frame_dets(box, [1])).tracker_id[0]
    for _ in range(5):
        tracker.update(frame_dets([], []))
    for _ in range(4):
        second_id = tracker.update(frame_dets(box, [1])).tracker_id[0]
    assert first_id == 1 and second_id == 2
    assert tracker.people() == {"with_mask": 0, "no_mask": 2}


def test_blur_hides_the_face_and_nothing_else(shared: Path) -> None:
    """On a real frame: inside the box the fine detail (Laplacian energy) is gone, outside it is untouched,
    and the annotator still draws the label on a blurred face."""
    import cv2

    with av.open(str(shared / "videos/street-mask-720x404.mp4")) as c:
        image = next(iter(c.decode(video=0))).to_ndarray(format="rgb24")
    box = np.array([[300.0, 50.0, 420.0, 190.0]])
    blurred = image.copy()
    blur_regions(blurred, box, margin=0.0)

    def detail(a: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean())

    assert detail(blurred[50:190, 300:420]) < 0.3 * detail(image[50:190, 300:420])
    outside = np.ones(image.shape[:2], bool)
    outside[50:190, 300:420] = False
    assert np.array_equal(blurred[outside], image[outside])
    dets = Detections(box, [0.9], [0], CLASSES)
    drawn = Annotator(CLASSES, blur=True)(image, dets, fps=25.0)
    assert drawn.shape == image.shape and not np.array_equal(drawn[35:50, 300:420], image[35:50, 300:420])
