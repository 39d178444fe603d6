"""Video frames for a learning base: one frame every few seconds, near-identical frames skipped.

Files are named ``<videostem>_t<milliseconds, 8 digits>.jpg``: :mod:`maskwatch.data.split` groups on this
pattern so that frames of one video never straddle train and test. A static scene yields near-identical
frames that add no information but leak between splits; a frame is kept only when its 32×32 grayscale
thumbnail differs from the last kept one by at least ``min_change`` (mean absolute difference, 0-255).

Frames are written to a staging folder beside ``out`` and moved in when the whole video is done, so a
failure leaves ``out`` as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from maskwatch.errors import MaskwatchError

THUMB = (32, 32)


@dataclass
class FramesResult:
    written: list[Path] = field(default_factory=list)
    skipped_similar: int = 0
    decoded: int = 0


def frame_name(stem: str, seconds: float) -> str:
    return f"{stem}_t{round(seconds * 1000):08d}.jpg"


def _thumb(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L").resize(THUMB, Image.Resampling.BILINEAR), dtype=np.float32)


def _decoded(container: Any, stream: Any, video: Path) -> Iterator[Any]:
    """The stream's frames; a decoding error mid-stream is the user's broken file, not a bug."""
    try:
        yield from container.decode(stream)
    except av.FFmpegError as e:
        raise MaskwatchError(f"{video}: unreadable video ({e})") from None


def extract_frames(
    video: str | Path,
    out: str | Path,
    every: float = 1.0,
    max_frames: int | None = None,
    min_change: float = 3.0,
    quality: int = 95,
) -> FramesResult:
    """Save a frame every ``every`` seconds (0: every frame) of ``video`` into ``out``, at most
    ``max_frames``, skipping frames within ``min_change`` of the last saved one."""
    video, out = Path(video), Path(out)
    if every < 0 or min_change < 0 or (max_frames is not None and max_frames < 1):
        raise MaskwatchError("--every and --min-change must be >= 0 and --max >= 1")
    if not video.is_file():
        raise MaskwatchError(f"{video}: video not found")
    try:
        container = av.open(str(video))
    except (av.FFmpegError, OSError) as e:
        raise MaskwatchError(f"{video}: unreadable video ({e})") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    result = FramesResult()
    try:
        with container:
            if not container.streams.video:
                raise MaskwatchError(f"{video}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = float(stream.average_rate or 25)
            next_t, last = 0.0, None
            with tqdm(total=stream.frames or None, unit="frame", desc=video.name, disable=None) as bar:
                for frame in _decoded(container, stream, video):
                    bar.update()
                    t = float(frame.time) if frame.time is not None else result.decoded / rate
                    t = max(t, 0.0)  # some files start at a negative time (edit lists)
                    result.decoded += 1
                    if t + 1e-6 < next_t:
                        continue
                    next_t = (np.floor(t / every + 1e-6) + 1) * every if every > 0 else t  # a fixed time grid
                    im = frame.to_image()
                    thumb = _thumb(im)
                    if last is not None and float(np.abs(thumb - last).mean()) < min_change:
                        result.skipped_similar += 1
                        continue
                    last = thumb
                    im.save(staging / frame_name(video.stem, t), quality=quality)
                    result.written.append(out / frame_name(video.stem, t))
                    if max_frames is not None and len(result.written) >= max_frames:
                        break
        if result.decoded == 0:
            raise MaskwatchError(f"{video}: no frames could be decoded")
        out.mkdir(parents=True, exist_ok=True)
        for p in result.written:
            (staging / p.name).replace(p)
    except OSError as e:
        raise MaskwatchError(f"{out}: cannot write frames ({e})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
