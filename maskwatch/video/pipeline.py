"""The detect pipeline: decoding, inference and encoding in three threads joined by bounded queues.

    decode thread:  source -> Frame -> predictor.prepare (letterbox)   -> input queue
    main thread:    predictor.infer -> min-face filter -> tracker -> stats -> output queue
    encode thread:  annotate (draw, blur, overlay) -> sinks (video, JSONL, CSV, window)

PyAV, OpenCV, torch and ONNX Runtime all release the GIL in their native code, so the three stages run
in parallel and the model is not kept waiting for I/O. The queues are bounded, so a slow encoder slows
decoding instead of filling memory. With ``realtime`` the input queue keeps only the newest frame: a live
source is never fallen behind, and every frame the model skips is counted as dropped. Inference runs in
the main thread so Ctrl-C lands there: the run then stops taking frames, the encoder drains what it has,
and every output is finalised, the same way as when a stream ends. SIGTERM (``docker stop``,
``systemctl stop``, ``timeout``) and SIGHUP (a closed terminal) are treated as Ctrl-C.

Applications (``maskwatch monitor``) hook in with two callbacks, both called on the inference thread (keep
them quick; hand slow work such as database writes or notifications to a queue): ``on_frame(frame,
detections)`` after each frame is detected and tracked, and ``on_track_end(track)`` when a tracked person
leaves the view or the run ends. A frame from a live source carries ``timestamp``, its wall-clock time
(Unix seconds); ``time`` stays seconds since the start (media time for files).

Sinks are opened on the thread that writes them: a sink's constructor only checks its destination, and
its file, encoder or connection is created on its first ``write`` (the encode thread), because some
handles may only be used on the thread that made them (a ``sqlite3`` connection refuses any other).
"""

from __future__ import annotations

import collections
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from maskwatch.defaults import CONF, IOU
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import check_output, is_stream, write_json
from maskwatch.predict import Predictor, check_imgsz, load_predictor
from maskwatch.signals import stop_signals
from maskwatch.video.annotate import Annotator
from maskwatch.video.sinks import (
    CsvSink,
    ImageFolderSink,
    JsonlSink,
    LabelsSink,
    Sink,
    VideoSink,
    WindowSink,
)
from maskwatch.video.sources import Frame, LiveSource, Source, open_source
from maskwatch.video.tracker import FaceTracker, Track

FrameHook = Callable[[Frame, Detections], None]
TrackHook = Callable[[Track], None]

log = logging.getLogger(__name__)

END = object()


class FrameQueue:
    """A bounded hand-off between two threads that either side can end.

    The producer calls :meth:`close` when it has no more items (the consumer drains, then gets
    :data:`END`); the consumer calls :meth:`cancel` when it gives up (the producer's :meth:`put` returns
    False). With ``keep_latest`` a full queue drops its oldest item instead of blocking the producer.
    """

    def __init__(self, maxsize: int, keep_latest: bool = False) -> None:
        self.maxsize = maxsize
        self.keep_latest = keep_latest
        self.dropped = 0
        self._items: collections.deque[Any] = collections.deque()
        self._cond = threading.Condition()
        self._closed = self._cancelled = False

    def put(self, item: Any) -> bool:
        with self._cond:
            while len(self._items) >= self.maxsize and not self.keep_latest and not self._cancelled:
                self._cond.wait()
            if self._cancelled:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self) -> Any:
        with self._cond:
            while not self._items and not self._closed and not self._cancelled:
                self._cond.wait()
            if self._cancelled or not self._items:
                return END
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._cond.notify_all()


class RateMeter:
    """Frames per second over the last ``window`` frames: what the overlay and the live line show."""

    def __init__(self, window: int = 30) -> None:
        self._times: collections.deque[float] = collections.deque(maxlen=window)

    def tick(self) -> float | None:
        self._times.append(time.perf_counter())
        if len(self._times) < 2:
            return None
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


@dataclass
class DetectOptions:
    """What to keep of the model's output, and how to pace the run."""

    conf: float = CONF
    iou: float = IOU
    min_face: float = 0.0
    realtime: bool = False
    max_frames: int | None = None
    progress: bool = True
    queue_size: int = 8
    #: keep only these class ids (``--classes``); None keeps all
    classes: tuple[int, ...] | None = None
    #: process every N-th frame of a video or stream (``--vid-stride``)
    vid_stride: int = 1


@dataclass
class RunSummary:
    """What a run saw, for the console and as a JSON report (``--summary``)."""

    source: str
    model: str
    backend: str
    class_names: tuple[str, ...]
    live: bool = False
    frames: int = 0
    frames_dropped: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0
    media_seconds: float | None = None
    faces: int = 0
    labels: dict[str, int] = field(default_factory=dict)
    frames_with_faces: int = 0
    max_faces: int = 0
    people: dict[str, int] | None = None
    persons: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    outputs: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    truncated: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.labels = self.labels or dict.fromkeys(self.class_names, 0)

    def add(self, frame: Frame, dets: Detections) -> None:
        self.frames += 1
        self.faces += len(dets)
        for name, n in dets.counts().items():
            self.labels[name] = self.labels.get(name, 0) + n
        self.frames_with_faces += bool(len(dets))
        self.max_faces = max(self.max_faces, len(dets))
        if frame.time is not None:
            self.media_seconds = round(frame.time, 3)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def model_fps(self) -> float:
        return self.frames / self.model_seconds if self.model_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "model": self.model,
            "backend": self.backend,
            "live": self.live,
            "frames": self.frames,
            "frames_dropped": self.frames_dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "model_fps": round(self.model_fps, 2),
            "media_seconds": self.media_seconds,
            "faces": {"total": self.faces, **self.labels},
            "frames_with_faces": self.frames_with_faces,
            "max_faces_in_frame": self.max_faces,
        }
        if self.people is not None:
            out["people"] = {"total": sum(self.people.values()), **self.people, "persons": self.persons}
        if self.gaps:
            out["gaps"] = self.gaps
        if self.skipped:
            out["skipped_files"] = {"count": len(self.skipped), "files": self.skipped}
        if self.truncated is not None:
            out["truncated"] = {"decoded": self.truncated[0], "expected": self.truncated[1]}
        out["interrupted"] = self.interrupted
        out["outputs"] = self.outputs
        return out

    def text(self) -> str:
        """A few lines for the console."""
        labels = ", ".join(f"{n} {name}" for name, n in self.labels.items())
        speed = f"{self.fps:.1f} FPS; model alone {self.model_fps:.1f} FPS"
        lines = [
            f"{self.frames} frames in {self.seconds:.1f} s ({speed})"
            + (f", {self.frames_dropped} dropped to keep up" if self.frames_dropped else "")
            + (" — interrupted" if self.interrupted else ""),
            f"{self.faces} faces seen ({labels}); {self.frames_with_faces} frames with a face, "
            f"at most {self.max_faces} at once",
        ]
        if self.people is not None:
            people = ", ".join(f"{n} {name}" for name, n in self.people.items())
            lines.append(f"{sum(self.people.values())} people tracked ({people})")
            lines += [
                f"  person {p['id']}: unmasked {100 * p['unmasked_share']:.0f}% of {p['frames']} frames "
                f"(longest stretch {p['longest_unmasked_seconds']:.1f} s)"
                for p in self.persons
                if p["unmasked_share"] > 0
            ]
        if self.gaps:
            lines.append(
                f"{len(self.gaps)} reconnects, {sum(g['seconds'] for g in self.gaps):.1f} s without frames"
            )
        if self.skipped:
            lines.append(f"{len(self.skipped)} unreadable files skipped")
        if self.truncated is not None:
            lines.append(f"decoded {self.truncated[0]} of {self.truncated[1]} frames (file truncated?)")
        lines += [f"{kind}: {path}" for kind, path in self.outputs.items()]
        return "\n".join(lines)


class DetectionPipeline:
    """Run a predictor over a source into sinks; see the module docstring for the threads."""

    def __init__(
        self,
        source: Source,
        predictor: Predictor,
        sinks: Sequence[Sink] = (),
        options: DetectOptions | None = None,
        annotator: Annotator | None = None,
        tracker: FaceTracker | None = None,
        on_frame: FrameHook | None = None,
        on_track_end: TrackHook | None = None,
    ) -> None:
        self.source = source
        self.on_frame = on_frame
        if tracker is not None and on_track_end is not None:
            tracker.on_track_end = on_track_end
        self.predictor = predictor
        self.sinks = list(sinks)
        self.options = options or DetectOptions()
        self.annotator = annotator or Annotator(predictor.class_names)
        self.tracker = tracker
        live = self.options.realtime and source.live
        self._in = FrameQueue(1 if live else self.options.queue_size, keep_latest=live)
        self._out = FrameQueue(self.options.queue_size)
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._accepting_signals = False
        self.summary = RunSummary(
            source.description, predictor.name, predictor.backend, predictor.class_names, source.live
        )

    def stop(self) -> None:
        """End the run from another thread (as a closed stream would); outputs are finalised."""
        self._stop.set()
        self._in.cancel()

    def _on_signal(self, signum: int, _frame: Any) -> None:
        """SIGTERM/SIGHUP: stop like Ctrl-C while frames are processed; while outputs are being finalised,
        a second signal is ignored rather than allowed to kill the process half-way through a rename."""
        if self._accepting_signals:
            self._accepting_signals = False
            raise KeyboardInterrupt
        log.warning("%s: already finishing the outputs", signal.Signals(signum).name)

    def run(self) -> RunSummary:
        with stop_signals(self._on_signal):
            return self._run()

    def _run(self) -> RunSummary:
        threads = [
            threading.Thread(target=self._decode, name="maskwatch-decode", daemon=True),
            threading.Thread(target=self._encode, name="maskwatch-encode", daemon=True),
        ]
        for t in threads:
            t.start()
        start = time.perf_counter()
        try:
            self._accepting_signals = True
            self._infer()
        except KeyboardInterrupt:
            self.summary.interrupted = True
            log.warning("interrupted: finishing the outputs with the frames processed so far")
        except BaseException as e:
            self._errors.append(e)
        finally:
            self._accepting_signals = False
            self._stop.set()
            self.source.close()
            self._in.cancel()
            self._out.close()
            threads[1].join()
            threads[0].join(timeout=2.0)  # a network read may block until its timeout: do not wait for it
        self.summary.seconds = time.perf_counter() - start
        self.summary.frames_dropped = self._in.dropped
        if isinstance(self.source, LiveSource):
            self.summary.gaps = self.source.gaps
        if self.tracker is not None:
            try:
                self.tracker.finish()
            except BaseException as e:  # an application's on_track_end failed
                self._errors.append(e)
            self.summary.people = self.tracker.people()
            self.summary.persons = self.tracker.persons()
        self.summary.skipped = list(getattr(self.source, "skipped", []))
        self.summary.truncated = getattr(self.source, "truncated", None)
        self._finish_sinks()
        return self.summary

    def _decode(self) -> None:
        limit, stride = self.options.max_frames, self.options.vid_stride
        try:
            for frame in self.source:
                if self._stop.is_set() or (limit is not None and frame.index >= limit):
                    break
                if stride > 1 and frame.index % stride:
                    continue
                if not self._in.put((frame, self.predictor.prepare(frame.image))):
                    break
        except BaseException as e:
            self._errors.append(e)
        finally:
            self._in.close()

    def _infer(self) -> None:
        opts, summary = self.options, self.summary
        meter = RateMeter()
        live = self.source.live
        bar = tqdm(
            total=None if live else self._expected_frames(),
            unit="frame",
            disable=not opts.progress,
            file=sys.stderr,
            mininterval=0.5,
            dynamic_ncols=True,
        )
        last_postfix = 0.0
        try:
            while not self._stop.is_set():
                item = self._in.get()
                if item is END:
                    break
                frame, prepared = item
                t = time.perf_counter()
                dets = self.predictor.infer([prepared], opts.conf, opts.iou)[0]
                summary.model_seconds += time.perf_counter() - t
                if opts.min_face > 0:
                    dets = dets.filter(min_size=opts.min_face)
                if opts.classes is not None:
                    dets = dets[np.isin(dets.class_id, opts.classes)]
                if self.tracker is not None:
                    dets = self.tracker.update(dets, frame.time)
                if self.on_frame is not None:
                    self.on_frame(frame, dets)
                fps = meter.tick() if frame.time is not None else None  # no FPS on a still image
                if not self._out.put((frame, dets, fps)):
                    break  # the encoder failed; its error is in self._errors
                bar.update(1)
                if t - last_postfix > 0.5:
                    last_postfix = t
                    bar.set_postfix_str(self._status(), refresh=False)
                if any(getattr(s, "quit", False) for s in self.sinks):
                    break
        finally:
            bar.set_postfix_str(self._status(), refresh=False)
            bar.close()

    def _expected_frames(self) -> int | None:
        """For the progress bar's ETA: the source's frame count, capped by ``max_frames``."""
        known = [n for n in (self.source.total, self.options.max_frames) if n is not None]
        return min(known) if known else None

    def _status(self) -> str:
        s = self.summary
        parts = [f"{name} {n}" for name, n in dict(s.labels).items()]  # a copy: the writer thread adds
        if self._in.dropped:
            parts.append(f"dropped {self._in.dropped}")
        return ", ".join(parts)

    def _encode(self) -> None:
        draw = any(s.needs_image for s in self.sinks)
        try:
            while (item := self._out.get()) is not END:
                frame, dets, fps = item
                annotated = self.annotator(frame.image, dets, fps) if draw else None
                for sink in self.sinks:
                    sink.write(frame, dets, annotated)
                # Counted here, once every output has the frame: a stop signal lands in the main thread
                # anywhere between inference and queueing, and must not count a frame nobody wrote.
                self.summary.add(frame, dets)
        except BaseException as e:
            self._errors.append(e)
            self._out.cancel()
            self._in.cancel()

    def _finish_sinks(self) -> None:
        """Finalise every output, or discard them all if the run failed, then re-raise its error."""
        if self._errors:
            for sink in self.sinks:
                try:
                    sink.abort()
                except Exception as e:  # the original error matters more
                    log.debug("abort %s: %s", sink, e)
            raise self._errors[0]
        for sink in self.sinks:
            sink.close()
            if sink.path is not None and (is_stream(sink.path) or sink.path.exists()):  # written, not meant
                self.summary.outputs[type(sink).__name__.removesuffix("Sink").lower()] = str(sink.path)


def check_filters(conf: float, iou: float, min_face: float = 0.0) -> None:
    """The options that decide which faces count, checked before a source opens or a model loads (a
    negative ``--min-face`` would silently keep every face; a ``--conf`` over 1 would silently keep none)."""
    if not 0 <= conf <= 1:
        raise MaskwatchError(f"--conf {conf:g}: must be between 0 and 1")
    if not 0 < iou <= 1:
        raise MaskwatchError(f"--iou {iou:g}: must be in (0, 1]")
    check_min_face(min_face)


def check_min_face(min_face: float) -> None:
    """``--min-face`` of ``detect``, ``monitor`` and ``data prelabel``: a size, so never negative."""
    if not min_face >= 0:
        raise MaskwatchError(f"--min-face {min_face:g}: must be at least 0 px")


def class_indices(names: Sequence[str], class_names: Sequence[str]) -> tuple[int, ...]:
    """``--classes no_mask``: class names to the model's indices; an unknown name is a one-line error."""
    unknown = [n for n in names if n not in class_names]
    if unknown:
        raise MaskwatchError(
            f"--classes {', '.join(unknown)}: unknown class (the model has {', '.join(class_names)})"
        )
    return tuple(class_names.index(n) for n in names)


def detect(
    source: str | Path,
    model: str | Path | None = None,
    *,
    output: str | Path | None = None,
    jsonl: str | Path | None = None,
    csv: str | Path | None = None,
    summary: str | Path | None = None,
    backend: str | None = None,
    device: str = "cpu",
    imgsz: int | None = None,
    box_style: str | None = None,
    tta: bool = False,
    classifier: bool = True,
    conf: float = CONF,
    iou: float = IOU,
    min_face: float = 0.0,
    track: bool = False,
    min_unmasked: float = 1.0,
    blur: bool = False,
    realtime: bool = False,
    show: bool = False,
    max_frames: int | None = None,
    reconnect: float = 30.0,
    progress: bool = True,
    save_txt: str | Path | None = None,
    save_conf: bool = False,
    classes: Sequence[str] | None = None,
    vid_stride: int = 1,
    on_frame: FrameHook | None = None,
    on_track_end: TrackHook | None = None,
) -> RunSummary:
    """Everything ``maskwatch detect`` does, as one call (see ``maskwatch detect --help``).

    With ``track``, a person counts as unmasked after ``min_unmasked`` seconds voted no_mask in a row;
    ``on_frame`` and ``on_track_end`` are the pipeline's hooks (see the module docstring)."""
    check_filters(conf, iou, min_face)
    check_imgsz(imgsz)
    if vid_stride < 1:
        raise MaskwatchError(f"--vid-stride {vid_stride}: must be at least 1")
    if max_frames is not None and max_frames < 0:
        raise MaskwatchError(f"--max-frames {max_frames}: must be at least 0")
    src = open_source(source, reconnect=reconnect)
    sinks: list[Sink] = []
    try:  # outputs are checked before the model loads (an export takes seconds); files appear lazily
        images = src.kind == "images"
        named = {
            "--output": output,
            "--jsonl": jsonl,
            "--csv": csv,
            "--summary": summary,
            "--save-txt": save_txt,
        }
        seen: dict[str, str] = {}
        for option, path in named.items():
            if path is None:
                continue
            check_output(
                path, option, src.inputs, folder=option == "--save-txt" or (option == "--output" and images)
            )
            key = str(Path(path).resolve()) if not is_stream(path) else str(path)
            if key in seen:  # two outputs into one file, or both on stdout, would interleave
                raise MaskwatchError(f"{option} {path}: is also {seen[key]}; give each output its own path")
            seen[key] = option
        if output is not None:
            sinks.append(ImageFolderSink(output) if images else VideoSink(output, src.rate))
        if jsonl is not None:
            sinks.append(JsonlSink(jsonl))
        if csv is not None:
            sinks.append(CsvSink(csv, with_file=images))
        if save_txt is not None:
            stem = Path(str(source)).stem if src.kind == "video" else src.kind
            sinks.append(LabelsSink(save_txt, stem, save_conf))
        if show:
            sinks.append(WindowSink())
        predictor = load_predictor(
            model, backend, device, imgsz, box_style=box_style, tta=tta, classifier=classifier
        )
        class_ids = None if classes is None else class_indices(classes, predictor.class_names)
    except BaseException:
        src.close()
        raise
    if realtime and not src.live:
        log.info("--realtime only applies to webcams and streams; every frame of %s is processed", source)
    pipeline = DetectionPipeline(
        src,
        predictor,
        sinks,
        DetectOptions(
            conf, iou, min_face, realtime, max_frames, progress, classes=class_ids, vid_stride=vid_stride
        ),
        Annotator(predictor.class_names, blur=blur),
        FaceTracker(predictor.class_names, min_unmasked=min_unmasked, fps=float(src.rate or 25))
        if track
        else None,
        on_frame,
        on_track_end,
    )
    result = pipeline.run()
    if summary is not None:
        result.outputs["summary"] = str(summary)
        write_json(summary, result.to_dict())
    return result
