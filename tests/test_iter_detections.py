"""``maskwatch.video.iter_detections``: a lazy generator for the user's own loop over any source."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from maskwatch.api import Model, load_model
from maskwatch.assets import sample_dir, sample_images
from maskwatch.errors import MaskwatchError
from maskwatch.video import iter_detections
from maskwatch.video.sources import Frame


@pytest.fixture(scope="module")
def model() -> Model:
    return load_model()


def test_images_yield_frames_in_bgr_with_the_models_detections(model: Model) -> None:
    seen = list(iter_detections(sample_dir(), model))
    assert [f.name for f, _ in seen] == [p.name for p in sample_images()]
    for (frame, dets), path in zip(seen, sample_images(), strict=True):
        assert isinstance(frame, Frame) and frame.image.flags.c_contiguous
        assert dets == model(path)
        assert dets == model(frame.image)  # BGR frames go straight back into the model
    rgb_frame, _ = next(iter(iter_detections(sample_images()[0], model, channels="rgb")))
    assert np.array_equal(rgb_frame.image, seen[0][0].image[..., ::-1])


@pytest.mark.slow  # loads a second model
def test_conf_and_model_by_name(model: Model) -> None:
    path = sample_images()[0]
    ((_, by_name),) = iter_detections(path, "maskface-mnet", conf=0.99)
    assert by_name == model(path, conf=0.99)


def test_bad_arguments_fail_before_any_frame(tmp_path: Path) -> None:
    with pytest.raises(MaskwatchError, match="no such file"):
        next(iter_detections(tmp_path / "missing.mp4"))
    with pytest.raises(MaskwatchError, match="conf"):
        next(iter_detections(sample_dir(), conf=2))
    with pytest.raises(MaskwatchError, match="channels"):
        next(iter_detections(sample_dir(), channels="gbr"))
    with pytest.raises(MaskwatchError, match="model"):
        next(iter_detections(sample_dir(), model=3.5))


def open_files() -> set[str]:
    fds = Path("/proc/self/fd")
    return {str(fd.resolve()) for fd in fds.iterdir() if fd.exists()} if fds.is_dir() else set()


def test_break_after_three_frames_stops_at_once_and_leaves_nothing_open(model: Model, shared: Path) -> None:
    clip = shared / "videos" / "group-mask-960x506.mp4"  # 414 frames
    threads_before = set(threading.enumerate())
    frames = []
    for frame, dets in iter_detections(clip, model, track=True):
        frames.append((frame, dets))
        if len(frames) == 3:
            t0 = time.perf_counter()
            break
    assert time.perf_counter() - t0 < 2.0  # the other 411 frames would take over 10 s
    assert str(clip.resolve()) not in open_files()  # the generator's finally closed the video
    assert set(threading.enumerate()) <= threads_before
    assert [f.index for f, _ in frames] == [0, 1, 2]
    assert frames[0][0].time == 0.0 and frames[2][0].time == pytest.approx(2 / 25)
    assert all(d.tracker_id is not None and len(d) >= 4 for _, d in frames)


def test_an_unfinished_generator_holds_the_file_until_closed(model: Model, shared: Path) -> None:
    clip = shared / "videos" / "group-mask-960x506.mp4"
    gen = iter_detections(clip, model)
    next(gen)
    assert str(clip.resolve()) in open_files()  # so the check above can fail
    gen.close()
    assert str(clip.resolve()) not in open_files()
    assert next(gen, None) is None


def test_max_frames_and_untracked_video_frames_match_the_model(model: Model, shared: Path) -> None:
    clip = shared / "videos" / "street-mask-720x404.mp4"
    got = list(iter_detections(clip, model, max_frames=2))
    assert [f.index for f, _ in got] == [0, 1]
    for frame, dets in got:
        assert frame.image.shape == (404, 720, 3) and dets.tracker_id is None
        assert dets == model(frame.image)
