"""``iter_detections``: frames and their detections, one at a time, for the user's own loop.

``maskwatch.video.detect`` runs a whole source into outputs with three threads; a notebook or a script
often wants the opposite: its own ``for`` loop that counts, draws, alerts or stops when it likes. This is
a plain generator in the caller's thread: nothing is decoded before it is asked for, and breaking out of
the loop (or closing the generator) closes the source at once and leaves no thread behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.api import check_channels, check_thresholds
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.video.sources import Frame, open_source
from maskwatch.video.tracker import FaceTracker


def _predictor(model: Any, backend: str, device: str, imgsz: int | None, box_style: str | None = None) -> Any:
    """A predictor from a name/path, a :class:`maskwatch.api.Model` or a predictor itself."""
    if model is None or isinstance(model, (str, Path)):
        from maskwatch.predict import load_predictor

        return load_predictor(model, backend, device, imgsz, box_style=box_style)
    predictor = getattr(model, "predictor", model)  # a Model wraps its predictor
    if not (hasattr(predictor, "prepare") and hasattr(predictor, "infer")):
        raise MaskwatchError(f"model: expected a name, a path or a loaded model, not {type(model).__name__}")
    return predictor


def iter_detections(
    source: str | Path | int,
    model: Any = None,
    conf: float | None = None,
    iou: float | None = None,
    track: bool = False,
    *,
    min_face: float = 0.0,
    channels: str = "bgr",
    max_frames: int | None = None,
    backend: str = "auto",
    device: str = "cpu",
    imgsz: int | None = None,
    reconnect: float = 30.0,
    box_style: str | None = None,
) -> Iterator[tuple[Frame, Detections]]:
    """Yield ``(frame, detections)`` for each frame of ``source`` (anything ``maskwatch detect`` reads).

    ``frame`` is a :class:`~maskwatch.video.sources.Frame` (``index``, ``time`` in seconds, ``name`` for
    images) whose ``image`` is in ``channels`` order: BGR by default, as OpenCV draws and shows it and as
    ``load_model``'s models take it, so ``model(frame.image)`` and ``cv2.imshow`` both just work.
    ``model`` is a built-in name or path (loaded here) or a model from :func:`maskwatch.load_model`;
    ``conf``/``iou`` default to :mod:`maskwatch.defaults`, as in the CLI. With ``track`` the detections
    carry ``tracker_id`` and flicker-free labels (the tracker of ``maskwatch detect --track``).
    """
    check_channels(channels)
    conf, iou = check_thresholds(conf, iou)
    src = open_source(str(source), reconnect=reconnect)
    frames = iter(src)
    try:
        predictor = _predictor(model, backend, device, imgsz, box_style)
        tracker = FaceTracker(predictor.class_names) if track else None
        for frame in frames:
            if max_frames is not None and frame.index >= max_frames:
                break
            dets = predictor.infer([predictor.prepare(frame.image)], conf, iou)[0]
            if min_face > 0:
                dets = dets.filter(min_size=min_face)
            if tracker is not None:
                dets = tracker.update(dets)
            if channels == "bgr":
                frame = replace(frame, image=np.ascontiguousarray(frame.image[..., ::-1]))
            yield frame, dets
    finally:  # also on GeneratorExit, i.e. when the caller breaks out of its loop
        with contextlib.suppress(Exception):
            frames.close()  # type: ignore[attr-defined]
        src.close()
