"""Face tracking for video: stable ids, a mask decision voted over recent frames, and people counting.

A SORT-style tracker (Bewley et al., 2016) with ByteTrack's noise model: each face is a constant-velocity
Kalman filter on (cx, cy, w, h), and detections are assigned to predicted tracks by IoU with the
Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), class-agnostically, so a face whose label
flickers keeps its track.

Why not a library: ``trackers`` (Roboflow) pulls in ``opencv-python`` (which clashes with our
``opencv-python-headless``), ``supervision``, ``rich`` and ``requests``; ``supervision`` itself no longer
ships a tracker; ``norfair`` pins ``numpy<2`` and depends on the unmaintained ``filterpy``. The part we
need is ~150 lines on numpy + scipy, both already dependencies.

Three rules make the counts meaningful for a camera: a label is the score-weighted vote of the track's last
``vote_window`` detections (a face does not flicker between mask and no mask); a track counts as a person
only after ``min_hits`` consecutive detections (one false detection is not a visitor); and a person counts
as *unmasked* when their voted label stays no_mask for a sustained stretch of ``min_unmasked`` seconds
(default 1 s), however long they are masked otherwise. A majority vote over the whole track would hide
someone unmasked for 5 s of a 15 s visit, which is the wrong answer for compliance; a person seen for less
than ``min_unmasked`` seconds in all is judged by their overall vote. A person who leaves the view for
longer than ``max_age`` frames and comes back is counted again (no re-ID).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskwatch.boxes import cxcywh_to_xyxy, match_boxes, xyxy_to_cxcywh
from maskwatch.detections import Detections

# Class names that mean "face without a mask" across the datasets maskwatch reads.
NO_MASK_NAMES = frozenset({"no_mask", "without_mask", "nomask", "face_no_mask"})

# ByteTrack's process/measurement noise, relative to the box size (frame-rate independent enough).
STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


class KalmanBox:
    """Constant-velocity Kalman filter on a box's centre and size, one step per frame."""

    def __init__(self, box: np.ndarray) -> None:
        z = _to_cxcywh(box)
        self.x = np.concatenate([z, np.zeros(4)])
        wh = np.r_[z[2:], z[2:]]
        self.P = np.diag(np.r_[2 * STD_POSITION * wh, 10 * STD_VELOCITY * wh] ** 2)

    def predict(self) -> None:
        wh = np.r_[self.x[2:4], self.x[2:4]]
        q = np.diag(np.r_[STD_POSITION * wh, STD_VELOCITY * wh] ** 2)
        self.x = _F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)  # a shrinking face must not invert
        self.P = _F @ self.P @ _F.T + q

    def update(self, box: np.ndarray) -> None:
        z = _to_cxcywh(box)
        r = np.diag((STD_POSITION * np.r_[z[2:], z[2:]]) ** 2)
        s = _H @ self.P @ _H.T + r
        k = np.linalg.solve(s, _H @ self.P).T
        self.x = self.x + k @ (z - _H @ self.x)
        self.P = (np.eye(8) - k @ _H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return cxcywh_to_xyxy(self.x[:4])[0]


def _to_cxcywh(box: np.ndarray) -> np.ndarray:
    """Kalman measurement: centre and size, the size at least a pixel so the noise model stays positive."""
    z = xyxy_to_cxcywh(box)[0]
    z[2:] = np.maximum(z[2:], 1.0)
    return z


@dataclass
class Track:
    kalman: KalmanBox
    num_classes: int
    window: int
    id: int = -1  # public id, given once the track is confirmed
    hits: int = 0
    misses: int = 0
    votes: deque[tuple[int, float]] = field(init=False)
    totals: np.ndarray = field(init=False)
    # People counting: times are seconds (media or wall clock), frames are frames the face was detected in.
    first_time: float = 0.0
    last_time: float = 0.0
    frames: int = 0
    unmasked_frames: int = 0
    run_start: float | None = None  # start of the current stretch voted no_mask
    longest_run: float = 0.0

    def __post_init__(self) -> None:
        self.votes = deque(maxlen=self.window)
        self.totals = np.zeros(self.num_classes)

    def add(self, label: int, score: float) -> None:
        self.votes.append((label, score))
        self.totals[label] += score
        self.hits += 1
        self.misses = 0

    @property
    def label(self) -> int:
        """The score-weighted vote over the recent window."""
        tally = np.zeros(self.num_classes)
        for label, score in self.votes:
            tally[label] += score
        return int(tally.argmax())

    @property
    def overall_label(self) -> int:
        """The vote over the whole track."""
        return int(self.totals.argmax())

    def observe(self, t: float, unmasked: bool) -> float:
        """Record this frame's voted label at time ``t``; returns the current no_mask stretch in seconds."""
        if not self.frames:
            self.first_time = t
        self.last_time = t
        self.frames += 1
        if not unmasked:
            self.run_start = None
            return 0.0
        self.unmasked_frames += 1
        if self.run_start is None:
            self.run_start = t
        run = t - self.run_start
        self.longest_run = max(self.longest_run, run)
        return run

    @property
    def unmasked_share(self) -> float:
        """Share of the frames this person was seen in with a voted no_mask label."""
        return self.unmasked_frames / self.frames if self.frames else 0.0


class FaceTracker:
    """Give each face a persistent id across frames and a label that does not flicker.

    :meth:`update` takes one frame's detections and returns them with ``track_ids`` set (-1 while a track
    is not yet confirmed) and ``labels`` replaced by the track's vote; scores stay the detector's own, and
    the per-frame labels are kept in ``data["frame_label"]``.
    """

    def __init__(
        self,
        class_names: tuple[str, ...],
        iou_threshold: float = 0.3,
        max_age: int = 30,
        min_hits: int = 3,
        vote_window: int = 15,
        min_unmasked: float = 1.0,
        fps: float = 25.0,
        on_track_end: Callable[[Track], None] | None = None,
    ) -> None:
        self.class_names = tuple(class_names)
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.min_hits = min_hits
        self.vote_window = vote_window
        self.min_unmasked = min_unmasked
        self.fps = fps  # only to time frames that come without a timestamp
        self.on_track_end = on_track_end
        # Which class is "no mask": the people-counting rule is about that one (none: nobody is unmasked).
        self.no_mask = next((i for i, n in enumerate(self.class_names) if n in NO_MASK_NAMES), None)
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 1
        self._updates = 0

    def update(self, dets: Detections, t: float | None = None) -> Detections:
        """Track one frame's detections; ``t`` is the frame's time in seconds (default: frames / fps).

        Besides ``tracker_id`` and the voted labels, ``data["unmasked"]`` says per face whether its person
        is, at this frame, in a no_mask stretch of at least ``min_unmasked`` seconds."""
        t = self._updates / self.fps if t is None else t
        self._updates += 1
        for track in self.tracks:
            track.kalman.predict()
        matches, new = self._associate(dets.xyxy)
        track_ids = np.full(len(dets), -1, dtype=np.int64)
        labels = dets.class_id.copy()
        seen = set()
        for ti, di in matches:
            track = self.tracks[ti]
            track.kalman.update(dets.xyxy[di])
            track.add(int(dets.class_id[di]), float(dets.confidence[di]))
            seen.add(ti)
        for di in new:
            track = Track(KalmanBox(dets.xyxy[di]), len(self.class_names), self.vote_window)
            track.add(int(dets.class_id[di]), float(dets.confidence[di]))
            self.tracks.append(track)
            matches.append((len(self.tracks) - 1, di))
            seen.add(len(self.tracks) - 1)
        unmasked = np.zeros(len(dets), dtype=bool)
        for ti, di in matches:
            track = self.tracks[ti]
            if track.id < 0 and track.hits >= self.min_hits:
                track.id, self._next_id = self._next_id, self._next_id + 1
            track_ids[di] = track.id
            labels[di] = track.label
            run = track.observe(t, track.label == self.no_mask)
            unmasked[di] = track.run_start is not None and run >= self.min_unmasked
        self._retire(seen)
        out = Detections(dets.xyxy, dets.confidence, labels, dets.class_names, track_ids, dict(dets.data))
        out.data["frame_label"] = dets.class_id.copy()
        out.data["unmasked"] = unmasked
        return out

    def _associate(self, boxes: np.ndarray) -> tuple[list[tuple[int, int]], list[int]]:
        """Hungarian assignment on IoU between predicted tracks and detections; returns the matches and the
        detections that start new tracks."""
        if not self.tracks or not len(boxes):
            return [], list(range(len(boxes)))
        rows, cols, _ = match_boxes(np.stack([t.kalman.box for t in self.tracks]), boxes, self.iou_threshold)
        matches = [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]
        matched = {c for _, c in matches}
        return matches, [d for d in range(len(boxes)) if d not in matched]

    def _retire(self, seen: set[int]) -> None:
        """Age unmatched tracks; an unconfirmed one dies at its first miss, a confirmed one after max_age."""
        alive = []
        for i, track in enumerate(self.tracks):
            if i not in seen:
                track.misses += 1
            if track.id < 0 and track.misses > 0:
                continue
            if track.misses > self.max_age:
                self.finished.append(track)
                if self.on_track_end is not None:
                    self.on_track_end(track)
                continue
            alive.append(track)
        self.tracks = alive

    def finish(self) -> None:
        """End every open track (the video is over): each confirmed one goes to ``on_track_end``."""
        for track in self.tracks:
            if track.id >= 0:
                self.finished.append(track)
                if self.on_track_end is not None:
                    self.on_track_end(track)
        self.tracks = [t for t in self.tracks if t.id < 0]

    def is_unmasked(self, track: Track) -> bool:
        """The people-counting rule: a no_mask stretch of ``min_unmasked`` seconds; a person seen for less
        than that in all is judged by their overall vote."""
        if self.no_mask is None:
            return False
        if track.last_time - track.first_time < self.min_unmasked:
            return track.overall_label == self.no_mask
        return track.longest_run >= self.min_unmasked

    def label_of(self, track: Track) -> str:
        """What this person is counted as: no_mask by the rule above, else their overall vote among the
        other classes."""
        if self.no_mask is not None and self.is_unmasked(track):
            return self.class_names[self.no_mask]
        totals = track.totals.copy()
        if self.no_mask is not None and len(totals) > 1:
            totals[self.no_mask] = -1.0
        return self.class_names[int(totals.argmax())]

    def person(self, track: Track) -> dict[str, Any]:
        """One person's record: id, label by the rule, time on screen and the share of it unmasked."""
        return {
            "id": track.id,
            "label": self.label_of(track),
            "first_time": round(track.first_time, 3),
            "last_time": round(track.last_time, 3),
            "frames": track.frames,
            "unmasked_share": round(track.unmasked_share, 4),
            "longest_unmasked_seconds": round(track.longest_run, 3),
        }

    def persons(self) -> list[dict[str, Any]]:
        """Every confirmed person so far (finished and current), in order of id."""
        tracks = sorted((t for t in self.finished + self.tracks if t.id >= 0), key=lambda t: t.id)
        return [self.person(t) for t in tracks]

    def people(self) -> dict[str, int]:
        """Confirmed tracks (finished and current) per class, each counted under :meth:`label_of`."""
        counts = dict.fromkeys(self.class_names, 0)
        for track in self.finished + self.tracks:
            if track.id >= 0:
                counts[self.label_of(track)] += 1
        return counts
