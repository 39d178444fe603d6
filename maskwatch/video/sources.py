"""Where frames come from: images, a folder or glob of images, a video file, a webcam, a stream URL.

Every source yields :class:`Frame` objects (RGB ``uint8``) and says what the rest of the pipeline needs
to know up front: whether it is live (frames may be dropped, it may drop and come back), its frame rate
and size (for an output video of the same shape) and how many frames to expect (for a progress bar).

Files are decoded with PyAV (FFmpeg: every codec, real timestamps, the GIL released while decoding);
webcams with OpenCV, which knows each platform's camera API. A live source that drops is reopened with
exponential back-off, and each gap is logged and kept in :attr:`LiveSource.gaps`; a URL whose content
is a single still image is processed once and ends (decided by FFmpeg's demuxer, not by the URL's name).

What a source could not read is kept for the run summary: unreadable images skipped in a folder
(:attr:`Source.skipped`), a video that ends before its announced length (:attr:`Source.truncated`).
An image named explicitly that cannot be read is an error, found before any work.
"""

from __future__ import annotations

import abc
import glob
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from maskwatch.data.layout import image_files, is_image
from maskwatch.errors import MaskwatchError
from maskwatch.io import IMAGE_EXTENSIONS, image_size, load_image

log = logging.getLogger(__name__)

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
DEFAULT_FPS = Fraction(25)


@dataclass
class Frame:
    """One decoded frame. ``index`` counts frames as the source delivered them (a gap in the indices of
    processed frames is a dropped frame); ``time`` is seconds from the start (None for still images),
    media time for files; ``timestamp`` is the wall-clock time (Unix seconds) a live frame arrived
    (None for files)."""

    index: int
    time: float | None
    image: np.ndarray
    name: str | None = None
    timestamp: float | None = None


class Source(abc.ABC):
    """An iterable of :class:`Frame`; iterate once, then :meth:`close`."""

    description: str
    kind: str
    live: bool = False
    rate: Fraction | None = None
    size: tuple[int, int] | None = None
    total: int | None = None
    #: the files read, so no output may be, contain or lie inside one of them
    inputs: tuple[Path, ...] = ()
    #: files skipped as unreadable (a folder or glob of images)
    skipped: list[str]
    #: (decoded, announced) frames when a video ended early
    truncated: tuple[int, int] | None = None

    @abc.abstractmethod
    def __iter__(self) -> Iterator[Frame]: ...

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device or file; safe to call from another thread and more than once."""

    @property
    def fps(self) -> float | None:
        return float(self.rate) if self.rate else None


class ImageSource(Source):
    """Still images in a fixed order. In a folder or glob an unreadable image is skipped with a warning
    and counted; one image named explicitly (``explicit``) must be readable, and is checked on opening."""

    kind = "images"

    def __init__(
        self, paths: list[Path], description: str, explicit: bool = False, folder: Path | None = None
    ) -> None:
        if not paths:
            raise MaskwatchError(f"{description}: no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.paths = paths
        self.description = description
        self.explicit = explicit
        self.total = len(paths)
        self.inputs = tuple(paths) + ((folder,) if folder is not None else ())
        self.skipped = []
        if explicit:
            for path in paths:
                image_size(path)  # the header: an empty or non-image file fails here, before any work

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            try:
                image = load_image(path)
            except MaskwatchError as e:
                if self.explicit:
                    raise
                log.warning("skipped: %s", e)
                self.skipped.append(str(path))
                continue
            yield Frame(i, None, image, path.name)

    def close(self) -> None:
        """Nothing to release: each image is opened and closed as it is read."""


def _natural_key(path: Path) -> list[Any]:
    """Sort ``img2`` before ``img10``, as a file browser does."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(path))]


def _ffmpeg_message(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e)


class VideoFileSource(Source):
    """A video file decoded by PyAV. The first frame is decoded on opening, so an unknown codec or a
    corrupt file is reported before any output is created."""

    kind = "video"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(self.path)
        self.inputs = (self.path,)
        self.skipped = []
        if not self.path.is_file():
            raise MaskwatchError(f"{self.path}: video not found")
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as e:
            raise MaskwatchError(f"{self.path}: not a readable video ({_ffmpeg_message(e)})") from None
        if not self.container.streams.video:
            self.container.close()
            raise MaskwatchError(f"{self.path}: no video stream in the file")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # FFmpeg frame threads: decoding keeps up with the model
        self.rate = self.stream.average_rate or self.stream.guessed_rate or DEFAULT_FPS
        self.size = (self.stream.width, self.stream.height)
        base = self.stream.time_base
        duration = float(self.stream.duration * base) if self.stream.duration and base else None
        self.total = self.stream.frames or (round(duration * float(self.rate)) if duration else None)
        self._start = float(self.stream.start_time * base) if self.stream.start_time and base else 0.0
        self._lock = threading.Lock()
        self._closed = self._iterating = False
        self._frames = self.container.decode(self.stream)
        try:
            self._first = next(self._frames)
        except StopIteration:
            self.container.close()
            raise MaskwatchError(f"{self.path}: the video has no frames") from None
        except (av.FFmpegError, OSError, ValueError) as e:
            self.container.close()
            codec = getattr(self.stream.codec_context, "name", "?")
            raise MaskwatchError(
                f"{self.path}: cannot decode the {codec} video ({_ffmpeg_message(e)})"
            ) from None

    def __iter__(self) -> Iterator[Frame]:
        with self._lock:
            if self._closed:
                return
            self._iterating = True
        index, reason = 0, ""
        try:
            for index, frame in enumerate(itertools.chain([self._first], self._frames)):
                t = frame.time - self._start if frame.time is not None else index / float(self.rate)
                yield Frame(index, t, frame.to_ndarray(format="rgb24"))
                if self._closed:
                    return
        except (av.FFmpegError, OSError, ValueError) as e:
            # A truncated or damaged file: keep what was decoded instead of losing the whole run.
            reason = f" ({_ffmpeg_message(e)})"
        finally:
            self.container.close()
        # Only a natural end gets here: was everything the container announced decoded?
        decoded = index + 1
        exact = bool(self.stream.frames)  # MP4 and MKV count frames; a duration estimate may be off by one
        if self.total and (decoded < self.total if exact else decoded < 0.98 * self.total - 1):
            self.truncated = (decoded, self.total)
            log.warning(
                "%s: decoded %d of %d frames (file truncated?)%s", self.path, decoded, self.total, reason
            )
        elif reason:
            log.warning("%s: decoding stopped at frame %d%s", self.path, decoded, reason)

    def close(self) -> None:
        """Closing the container while another thread decodes from it would crash FFmpeg, so during an
        iteration this only asks the iterating thread to stop (it closes the container itself)."""
        with self._lock:
            self._closed = True
            if not self._iterating:
                self.container.close()


class StillImage(Iterator[np.ndarray]):
    """What an opener returns for a URL whose content is one still image rather than a stream."""

    def __init__(self, image: np.ndarray, name: str) -> None:
        self.image, self.name, self._done = image, name, False

    def __next__(self) -> np.ndarray:
        if self._done:
            raise StopIteration
        self._done = True
        return self.image


# An opener connects to a live source: it returns an iterator of RGB frames (a StillImage for a URL that
# serves a picture) and the nominal rate.
Opener = Callable[[], tuple[Iterator[np.ndarray], Fraction | None]]


def _is_still(container: Any) -> bool:
    """Whether FFmpeg chose a single-picture demuxer (``jpeg_pipe``, ``png_pipe``, ... or ``image2``)."""
    names = set(container.format.name.split(","))
    return "image2" in names or any(n.endswith("_pipe") for n in names)


class LiveSource(Source):
    """A webcam or stream: frames as they arrive, reopened with back-off when the source drops.

    The first connection fails immediately (a URL that does not answer is a user error); later drops are
    retried with delays doubling from ``backoff`` up to ``max_backoff`` seconds, for at most ``reconnect``
    seconds in total (0: never reconnect). ``time`` is seconds of wall clock since the first frame, so a
    gap shows in the timestamps too.
    """

    live = True

    def __init__(
        self,
        opener: Opener,
        description: str,
        kind: str,
        reconnect: float = 30.0,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
    ) -> None:
        self.opener = opener
        self.description = description
        self.kind = kind
        self.reconnect = reconnect
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.gaps: list[dict[str, float]] = []
        self.skipped = []
        self._closed = threading.Event()
        self._frames, rate = opener()
        self.rate = rate or DEFAULT_FPS
        if isinstance(self._frames, StillImage):  # one picture, not a stream: an image source of one
            self.live, self.kind, self.rate, self.total = False, "images", None, 1

    def __iter__(self) -> Iterator[Frame]:
        index, t0 = 0, None
        try:
            if isinstance(self._frames, StillImage):
                yield Frame(0, None, self._frames.image, self._frames.name)
                return
            while not self._closed.is_set():
                reason = "stream ended"
                try:
                    for image in self._frames:
                        now = time.monotonic()
                        t0 = now if t0 is None else t0
                        if self.size is None:
                            self.size = (image.shape[1], image.shape[0])
                        yield Frame(index, now - t0, image, timestamp=time.time())
                        index += 1
                        if self._closed.is_set():
                            return
                except (av.FFmpegError, OSError, ValueError) as e:
                    reason = _ffmpeg_message(e)
                if self._closed.is_set() or not self._reopen(index, reason, t0):
                    return
        finally:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()  # release the connection or camera now, in the thread that reads it

    def _reopen(self, index: int, reason: str, t0: float | None) -> bool:
        """Retry the opener with back-off; False once ``reconnect`` seconds have passed without success."""
        if self.reconnect <= 0:
            log.warning("%s: %s after frame %d; not reconnecting", self.description, reason, index - 1)
            return False
        start = time.monotonic()
        delay = self.backoff
        attempt = 0
        while True:
            waited = time.monotonic() - start
            if waited >= self.reconnect:
                log.warning("%s: gave up reconnecting after %.1f s", self.description, waited)
                return False
            attempt += 1
            log.warning(
                "%s: %s after frame %d; reconnecting in %.1f s (attempt %d)",
                self.description, reason, index - 1, delay, attempt,
            )  # fmt: skip
            if self._closed.wait(min(delay, max(0.0, self.reconnect - waited))):
                return False
            try:
                self._frames, _ = self.opener()
            except MaskwatchError as e:
                reason = str(e).removeprefix(f"{self.description}: ")
                delay = min(delay * 2, self.max_backoff)
                continue
            gap = time.monotonic() - start
            at = start - t0 if t0 is not None else 0.0
            self.gaps.append({"after_frame": index - 1, "at": round(at, 3), "seconds": round(gap, 3)})
            log.warning("%s: reconnected; gap of %.1f s after frame %d", self.description, gap, index - 1)
            return True

    def close(self) -> None:
        self._closed.set()


def url_opener(url: str, timeout: float = 10.0) -> Opener:
    """Open a network stream with FFmpeg; ``timeout`` bounds both connecting and each read, so a stalled
    stream counts as dropped instead of hanging the run."""

    def open_stream() -> tuple[Iterator[np.ndarray], Fraction | None]:
        options = {"rtsp_transport": "tcp"} if url.startswith("rtsp") else {}
        try:
            container = av.open(url, options=options, timeout=(timeout, timeout))
        except (av.FFmpegError, OSError, ValueError) as e:
            raise MaskwatchError(f"{url}: cannot open the stream ({_ffmpeg_message(e)})") from None
        if not container.streams.video:
            container.close()
            raise MaskwatchError(f"{url}: no video stream")
        stream = container.streams.video[0]
        if _is_still(container):
            try:
                image = next(container.decode(stream)).to_ndarray(format="rgb24")
            except (StopIteration, av.FFmpegError, OSError, ValueError) as e:
                raise MaskwatchError(f"{url}: unreadable image ({e})") from None
            finally:
                container.close()
            name = Path(url.split("?", 1)[0].rstrip("/")).name or "image.jpg"
            return StillImage(image, name), None

        def frames() -> Iterator[np.ndarray]:
            try:
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24")
            finally:
                container.close()

        return frames(), stream.average_rate or stream.guessed_rate

    return open_stream


def webcam_opener(index: int) -> Opener:
    """Open a local camera with OpenCV (V4L2, AVFoundation, Media Foundation: whatever the OS has)."""

    def open_camera() -> tuple[Iterator[np.ndarray], Fraction | None]:
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # its own warnings: one line is ours
        try:
            cap = cv2.VideoCapture(index)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not cap.isOpened():
            cap.release()
            raise MaskwatchError(f"webcam {index}: cannot open the camera (is one connected at that index?)")
        fps = cap.get(cv2.CAP_PROP_FPS)

        def frames() -> Iterator[np.ndarray]:
            try:
                while True:
                    ok, bgr = cap.read()
                    if not ok:
                        return
                    yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            finally:
                cap.release()

        return frames(), Fraction(fps).limit_denominator(1001) if fps and fps > 0 else None

    return open_camera


def open_source(spec: str | Path, reconnect: float = 30.0, timeout: float = 10.0) -> Source:
    """Turn a command-line SOURCE into a :class:`Source`: a webcam index (``0``), a stream URL, a folder
    or glob of images, an image, or a video file (anything else that exists)."""
    spec = str(spec)
    if spec.isdigit():
        return LiveSource(webcam_opener(int(spec)), f"webcam {spec}", "webcam", reconnect)
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme not in URL_SCHEMES:
            raise MaskwatchError(f"{spec}: unsupported URL scheme {scheme!r} (use {', '.join(URL_SCHEMES)})")
        return LiveSource(url_opener(spec, timeout), spec, "stream", reconnect)
    path = Path(spec)
    if path.is_dir():
        return ImageSource(sorted(image_files(path), key=_natural_key), spec, folder=path)
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return ImageSource([path], spec, explicit=True)
        return VideoFileSource(path)
    if glob.has_magic(spec):
        matches = [Path(p) for p in glob.glob(spec, recursive=True)]
        images = [p for p in matches if is_image(p) and p.is_file()]
        if not images and matches:
            raise MaskwatchError(f"{spec}: the pattern matches no images (only images can be globbed)")
        return ImageSource(sorted(images, key=_natural_key), spec)
    raise MaskwatchError(
        f"{spec}: no such file or folder (SOURCE is an image, a folder or glob of images, a video file, "
        "a webcam index or a stream URL)"
    )
