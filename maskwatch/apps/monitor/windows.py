"""Frames → time windows: what one camera saw in each window of ``window`` seconds.

Windows are aligned on the clock (multiples of ``window`` seconds since the Unix epoch), so the windows of
all cameras line up and a re-run of a file cuts the same windows. A frame's time is its wall-clock
``timestamp`` for a live source, and the file's start time plus its media time for a file (a folder of
images: one image per second), so a file's windows do not depend on how fast it was processed.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from maskwatch.apps.store import Window, iso
from maskwatch.detections import Detections
from maskwatch.video.sources import Frame
from maskwatch.video.tracker import NO_MASK_NAMES

Emit = Callable[[tuple[Any, ...]], None]


@dataclass
class _Open:
    """The window being filled."""

    start: float
    frames: int = 0
    faces: int = 0
    no_mask: int = 0
    people: set[int] = field(default_factory=set)
    unmasked: set[int] = field(default_factory=set)
    rows: list[dict[str, Any]] = field(default_factory=list)
    last: float = 0.0


class WindowAggregator:
    """Fed every frame (a pipeline's ``on_frame``); emits ``("window", Window, rows)`` when a window
    closes, and ``("progress", camera, frames, faces_by_label)`` about once a second for live metrics.

    People are tracked ids present in the window; those unmasked are the ones the tracker's
    people-counting rule flags (``data["unmasked"]``: a no_mask stretch of at least ``min_unmasked`` s)
    on at least one of their frames in the window."""

    def __init__(
        self,
        camera: str,
        window: float,
        emit: Emit,
        start: float | None = None,
        keep_detections: bool = False,
    ) -> None:
        self.camera = camera
        self.window = window
        self.emit = emit
        self.start = start  # Unix time of media time 0 (files); None: frames carry a wall-clock timestamp
        self.keep_detections = keep_detections
        self.windows = 0
        self._open: _Open | None = None
        self._progress_frames = 0
        self._progress_faces: Counter[str] = Counter()
        self._progress_at = time.monotonic()

    def frame_time(self, frame: Frame) -> float:
        if frame.timestamp is not None:
            return frame.timestamp
        offset = frame.time if frame.time is not None else float(frame.index)
        return (self.start if self.start is not None else time.time()) + offset

    def add(self, frame: Frame, dets: Detections) -> None:
        t = self.frame_time(frame)
        start = math.floor(t / self.window) * self.window
        if self._open is not None and start != self._open.start:
            self._close(self._open.start + self.window)
        if self._open is None:
            self._open = _Open(start)
        w = self._open
        w.frames += 1
        w.last = t
        labels = dets.label_names
        w.faces += len(dets)
        w.no_mask += sum(name in NO_MASK_NAMES for name in labels)
        if dets.tracker_id is not None:
            unmasked = dets.data.get("unmasked")
            for i, tid in enumerate(dets.tracker_id.tolist()):
                if tid >= 0:
                    w.people.add(tid)
                    if unmasked is not None and unmasked[i]:
                        w.unmasked.add(tid)
        if self.keep_detections:
            when = iso(t)
            tracks = dets.tracker_id.tolist() if dets.tracker_id is not None else [-1] * len(dets)
            for (x1, y1, x2, y2), score, label, track in zip(
                dets.xyxy.tolist(), dets.confidence.tolist(), labels, tracks, strict=True
            ):
                w.rows.append(
                    {"time": when, "frame": frame.index, "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                    | {"label": label, "score": score, "track": int(track)}
                )
        self._progress_frames += 1
        self._progress_faces.update(labels)
        if time.monotonic() - self._progress_at >= 1.0:
            self.flush_progress()

    def flush_progress(self) -> None:
        self.emit(("progress", self.camera, self._progress_frames, dict(self._progress_faces)))
        self._progress_frames, self._progress_faces = 0, Counter()
        self._progress_at = time.monotonic()

    def finish(self) -> None:
        """The source ended: write its last, partial window (ending at its last frame)."""
        if self._open is not None:
            self._close(self._open.last)
        self.flush_progress()

    def _close(self, end: float) -> None:
        w, self._open = self._open, None
        assert w is not None
        people, unmasked = len(w.people), len(w.unmasked)
        window = Window(
            camera=self.camera,
            start_time=iso(w.start),
            end_time=iso(end),
            frames=w.frames,
            faces=w.faces,
            with_mask=w.faces - w.no_mask,
            no_mask=w.no_mask,
            people=people,
            people_no_mask=unmasked,
            unmasked_share=round(unmasked / people, 6) if people else 0.0,
        )
        self.windows += 1
        self.emit(("window", window, w.rows))
