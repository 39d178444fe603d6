"""Where results go: an annotated video or image folder, a JSONL and a CSV of detections, YOLO label
files, a window.

Every file sink writes under a temporary name beside its target and renames it in :meth:`Sink.close`, so
a run that crashes leaves no half-written file, and one that is stopped (Ctrl-C, SIGTERM, a stream that
ends) still leaves complete, playable files up to the last processed frame. :meth:`Sink.abort` discards.
A pipe, a device or ``-`` (stdout) is never renamed over: JSONL and CSV stream into it line by line
(:func:`~maskwatch.io.open_output`). A folder sink replaces an existing folder only if it is empty or a
maskwatch output (:func:`~maskwatch.io.check_replaceable`), and marks the folders it writes.
"""

from __future__ import annotations

import abc
import contextlib
import csv
import json
import logging
import os
import re
import sys
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import av
import cv2
import numpy as np

from maskwatch.boxes import xyxy_to_cxcywh
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import OUTPUT_MARKER, atomic_dir, check_replaceable, is_stream, open_output
from maskwatch.video.sources import Frame

log = logging.getLogger(__name__)


class Sink(abc.ABC):
    """Receives every processed frame in order, from the pipeline's writer thread."""

    #: whether :meth:`write` needs the annotated image (drawn once per frame for all sinks that do)
    needs_image = False
    path: Path | None = None
    #: set by a sink whose reader has gone (``--jsonl - | head``); the pipeline then stops like Ctrl-C
    quit = False

    @abc.abstractmethod
    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Finalise: flush and move the output into place."""

    def abort(self) -> None:
        """Discard the output (the run failed)."""
        self.close()


class _Pending:
    """An :func:`~maskwatch.io.atomic_write` or :func:`~maskwatch.io.atomic_dir` kept open across calls:
    :meth:`commit` takes its success path (rename into place), :meth:`discard` its failure path (delete)."""

    def __init__(self, manager: contextlib.AbstractContextManager[Any]) -> None:
        self._stack = contextlib.ExitStack()
        self.target: Any = self._stack.enter_context(manager)

    def commit(self) -> None:
        self._stack.close()

    def discard(self) -> None:
        e = MaskwatchError("output discarded")
        self._stack.__exit__(type(e), e, None)


class FileSink(Sink):
    """A sink writing one file atomically; subclasses open it lazily with :meth:`_open`."""

    mode = "w"

    path: Path

    def __init__(self, path: str | Path) -> None:
        self.path = self.target = Path(path)
        if self.path.is_dir():
            raise MaskwatchError(f"{self.path}: is a folder; expected a file name")
        self.stream = is_stream(path)
        self._pending: _Pending | None = None

    def _open(self) -> IO[Any]:
        if self._pending is None:
            self._pending = _Pending(open_output(self.target, self.mode))
        return self._pending.target

    def close(self) -> None:
        if self.quit:  # the reader is gone: there is nothing left to flush into
            with contextlib.suppress(Exception):
                self.abort()
            return
        try:
            self._finish()
            if self._pending is not None:
                self._pending.commit()
                self._pending = None
        except BrokenPipeError:
            self._reader_gone()

    def _reader_gone(self) -> None:
        """A pipe's reader exited (``| head``): stop writing, and point stdout at /dev/null so Python's
        own flush at exit does not fail on the same pipe."""
        self.quit = True
        if str(self.path) == "-":
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)

    def abort(self) -> None:
        if self._pending is not None:
            self._pending.discard()
            self._pending = None

    def _finish(self) -> None:
        """Flush whatever the format keeps buffered before the file is renamed."""


class JsonlSink(FileSink):
    """One JSON line per processed frame, faces or not: ``{"frame", "time", ["file",] "detections"}``.

    Lines are flushed as they are written, so the temporary file is complete up to the last frame even
    if the process is killed outright.
    """

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None:
        record: dict[str, Any] = {"frame": frame.index, "time": _seconds(frame.time)}
        if frame.name is not None:
            record["file"] = frame.name
        record["detections"] = dets.to_list()
        if self.quit:
            return
        try:
            f = self._open()
            f.write(json.dumps(record) + "\n")
            f.flush()
        except BrokenPipeError:
            self._reader_gone()

    def _finish(self) -> None:
        self._open()  # a run that processed nothing still leaves an (empty) file


class CsvSink(FileSink):
    """One row per detection: ``frame,time,[file,]x1,y1,x2,y2,label,score,track`` (track empty without
    ``--track``), the flat table spreadsheets and pandas read."""

    def __init__(self, path: str | Path, with_file: bool = False) -> None:
        super().__init__(path)
        self.with_file = with_file
        self._writer: Any = None

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None:
        if self.quit:
            return
        lead = [frame.index, _seconds(frame.time)] + ([frame.name] if self.with_file else [])
        try:
            writer = self._csv_writer()
            for d in dets.to_list():
                writer.writerow([*lead, *d["box"], d["label"], d["score"], d.get("track", "")])
            if self.stream:
                self._open().flush()
        except BrokenPipeError:
            self._reader_gone()

    def _csv_writer(self) -> Any:
        if self._writer is None:
            self._writer = csv.writer(self._open(), lineterminator="\n")
            head = ["frame", "time"] + (["file"] if self.with_file else [])
            self._writer.writerow([*head, "x1", "y1", "x2", "y2", "label", "score", "track"])
        return self._writer

    def _finish(self) -> None:
        self._csv_writer()  # a run without a single face still gets the header


def _seconds(t: float | None) -> float | None:
    return None if t is None else round(t, 3)


class VideoSink(FileSink):
    """An H.264 MP4 with the input's size and frame rate, encoded by PyAV (libx264, ``superfast``: on 2 cores
    the encoder shares the CPU with the model, and ``superfast`` took the whole 640x360 detect command from
    53 to 59.5 FPS against ``veryfast`` at the same CRF).

    Timestamps follow the frames' own times, so a live run with dropped frames still plays at real speed;
    a file run writes every frame at the input's rate, giving the same frame count. An odd width or
    height, which 4:2:0 H.264 cannot hold, is encoded as 4:4:4 instead of being cropped.
    """

    mode = "wb"
    needs_image = True

    def __init__(
        self, path: str | Path, rate: Fraction | None, crf: int = 23, preset: str = "superfast"
    ) -> None:
        super().__init__(path)
        if self.stream:
            raise MaskwatchError(f"{path}: an MP4 needs a regular (seekable) file, not a pipe or device")
        self.rate = Fraction(rate or 25).limit_denominator(100000)
        self.options = {"crf": str(crf), "preset": preset}
        self._container: Any = None
        self._stream: Any = None
        self._last_pts = -1
        self.frames = 0

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None:
        image = frame.image if annotated is None else annotated
        if self._container is None:
            self._start(image.shape[1], image.shape[0])
        pts = round(frame.time * self.rate) if frame.time is not None else self.frames
        pts = max(pts, self._last_pts + 1)
        vf = av.VideoFrame.from_ndarray(image, format="rgb24")
        vf.pts = self._last_pts = pts
        self._container.mux(self._stream.encode(vf))
        self.frames += 1

    def _start(self, width: int, height: int) -> None:
        f = self._open()
        try:
            self._container = av.open(f, mode="w", format="mp4")
            stream = self._container.add_stream("libx264", rate=self.rate)
        except (av.FFmpegError, ValueError) as e:
            raise MaskwatchError(f"{self.path}: cannot create an H.264 video ({e})") from None
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        stream.time_base = 1 / self.rate
        stream.options = self.options
        self._stream = stream

    def _finish(self) -> None:
        if self._container is None:
            log.warning("%s: no frame was processed; no video written", self.path)
            return
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None

    def abort(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
            self._container = None
        super().abort()


class FolderSink(Sink):
    """A folder of per-frame files, built under a temporary name and moved into place when complete.

    An existing folder is replaced only if it is empty or carries :data:`~maskwatch.io.OUTPUT_MARKER`
    (checked here, before any work), and the new folder carries the marker, so the next run may replace it.
    """

    path: Path

    def __init__(self, path: str | Path, what: str) -> None:
        self.path = self.target = Path(path)
        if self.path.is_file() or is_stream(path):
            raise MaskwatchError(f"{self.path}: is not a folder; {what} is a folder")
        check_replaceable(self.path)
        self._pending: _Pending | None = None
        self._used: set[str] = set()

    def _file(self, name: str, index: int) -> Path:
        """Where to write ``name``: a name seen before (the same file name from two folders of a glob)
        gets the frame index appended instead of overwriting the first."""
        if self._pending is None:
            self._pending = _Pending(atomic_dir(self.target))
            (self._pending.target / OUTPUT_MARKER).write_text("written by maskwatch detect\n")
        if name in self._used:
            name = f"{Path(name).stem}-{index}{Path(name).suffix}"
        self._used.add(name)
        return Path(self._pending.target) / name

    def close(self) -> None:
        if self._pending is not None:
            self._pending.commit()
            self._pending = None

    def abort(self) -> None:
        if self._pending is not None:
            self._pending.discard()
            self._pending = None


class ImageFolderSink(FolderSink):
    """Annotated images into a folder, under the input's file names."""

    needs_image = True

    def __init__(self, path: str | Path, quality: int = 95) -> None:
        super().__init__(path, "for image sources --output")
        self.quality = quality

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None:
        target = self._file(frame.name or f"frame{frame.index:06d}.jpg", frame.index)
        image = frame.image if annotated is None else annotated
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, self.quality] if target.suffix.lower() in (".jpg", ".jpeg") else []
        )
        if not cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params):
            raise MaskwatchError(f"{target}: cannot write the image")


class LabelsSink(FolderSink):
    """YOLO label files, Ultralytics' ``--save-txt`` convention: one ``<stem>.txt`` per image, or
    ``<video stem>_<frame>.txt`` per video frame (``frame`` as in the JSONL), each line
    ``class cx cy w h [conf]`` normalised to [0, 1]. As in Ultralytics, a frame without detections gets
    no file."""

    def __init__(self, path: str | Path, stem: str = "frame", save_conf: bool = False) -> None:
        super().__init__(path, "--save-txt")
        self.stem = stem
        self.save_conf = save_conf

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None:
        if not len(dets):
            return
        h, w = frame.image.shape[:2]
        norm = xyxy_to_cxcywh(dets.xyxy.astype(np.float64)) / [w, h, w, h]
        lines = []
        for i in range(len(dets)):
            fields = [str(int(dets.class_id[i]))] + [f"{v:.6f}" for v in norm[i].tolist()]
            if self.save_conf:
                fields.append(f"{float(dets.confidence[i]):.4f}")
            lines.append(" ".join(fields) + "\n")
        name = f"{Path(frame.name).stem}.txt" if frame.name else f"{self.stem}_{frame.index}.txt"
        self._file(name, frame.index).write_text("".join(lines))


class WindowSink(Sink):
    """A live preview window (needs OpenCV with GUI support; the headless wheel has none).

    Pressing ``q`` or Esc sets :attr:`quit`, which the pipeline treats like Ctrl-C.
    """

    needs_image = True

    def __init__(self, title: str = "maskwatch") -> None:
        if re.search(r"GUI:\s+NONE", cv2.getBuildInformation()):
            raise MaskwatchError(
                "--show needs OpenCV with GUI support (pip install opencv-python, not -headless)"
            )
        self.title = title
        self.quit = False

    def write(self, frame: Frame, dets: Detections, annotated: np.ndarray | None) -> None:
        image = frame.image if annotated is None else annotated
        cv2.imshow(self.title, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            self.quit = True

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)
