"""Unit tests of the video layer's parts, on real data where the part reads any: the bounded
:class:`FrameQueue` between threads, every sink's commit (close) and abort paths, and the annotator's label
placement in a crowd and face blur at 1280x720."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import OUTPUT_MARKER
from maskwatch.video.annotate import Annotator, blur_regions, label_size, place_labels
from maskwatch.video.pipeline import END, FrameQueue
from maskwatch.video.sinks import CsvSink, ImageFolderSink, JsonlSink, LabelsSink, VideoSink
from maskwatch.video.sources import Frame

CLASSES = ("with_mask", "no_mask")

# FrameQueue ----------------------------------------------------------------------------------------------


def test_frame_queue_blocks_when_full_and_drains_after_close() -> None:
    q = FrameQueue(2)
    assert q.put(1) and q.put(2)
    done = threading.Event()

    def producer() -> None:
        q.put(3)  # blocks: the queue is full
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    time.sleep(0.2)
    assert not done.is_set(), "a full queue makes the producer wait"
    assert q.get() == 1
    t.join(timeout=2)
    assert done.is_set()
    q.close()
    assert [q.get(), q.get(), q.get()] == [2, 3, END], "close: drain, then END"
    assert q.dropped == 0


def test_frame_queue_keep_latest_drops_oldest_and_counts() -> None:
    q = FrameQueue(1, keep_latest=True)
    for i in range(5):
        assert q.put(i)  # never blocks
    assert q.dropped == 4 and q.get() == 4


def test_frame_queue_cancel_releases_both_sides() -> None:
    q = FrameQueue(1)
    q.put("a")
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(q.put("b")))
    t.start()
    time.sleep(0.1)
    q.cancel()
    t.join(timeout=2)
    assert result == [False], "a blocked producer is told the consumer gave up"
    assert q.get() is END and q.put("c") is False


# sinks: commit and abort ---------------------------------------------------------------------------------


def _frames(n: int, size: tuple[int, int] = (64, 48)) -> list[tuple[Frame, Detections]]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        dets = Detections(
            xyxy=np.array([[4, 6, 20, 30]], dtype=np.float32),
            confidence=np.array([0.9], dtype=np.float32),
            class_id=np.array([i % 2]),
            class_names=CLASSES,
        )
        out.append((Frame(i, i / 25, image, f"f{i}.png"), dets))
    return out


@pytest.mark.parametrize("kind", ["jsonl", "csv", "video"])
def test_file_sink_commit_and_abort(kind: str, tmp_path: Path) -> None:
    def make(path: Path):  # type: ignore[no-untyped-def]
        return {"jsonl": JsonlSink, "csv": CsvSink, "video": lambda p: VideoSink(p, rate=25)}[kind](path)

    committed, aborted = tmp_path / f"ok.{kind}", tmp_path / f"bad.{kind}"
    aborted.write_text("an earlier complete output")
    for path, finish in ((committed, "close"), (aborted, "abort")):
        sink = make(path)
        for frame, dets in _frames(3):
            sink.write(frame, dets, frame.image)
        assert list(tmp_path.glob(f".{path.name}.*.tmp")), "written under a temporary name meanwhile"
        getattr(sink, finish)()
    assert aborted.read_text() == "an earlier complete output", "abort leaves the previous file alone"
    if kind == "video":
        with av.open(str(committed)) as c:
            assert sum(1 for _ in c.decode(c.streams.video[0])) == 3
    else:
        assert len(committed.read_text().splitlines()) == 3 + (kind == "csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([committed.name, aborted.name])


@pytest.mark.parametrize("cls", [ImageFolderSink, LabelsSink])
def test_folder_sink_commit_abort_and_ownership(cls: type, tmp_path: Path) -> None:
    out = tmp_path / "out"
    sink = cls(out)
    for frame, dets in _frames(2):
        sink.write(frame, dets, frame.image)
    sink.abort()
    assert not out.exists() and not list(tmp_path.iterdir()), "abort leaves nothing"
    sink = cls(out)
    for frame, dets in _frames(2):
        sink.write(frame, dets, frame.image)
    sink.close()
    ext = ".png" if cls is ImageFolderSink else ".txt"
    assert sorted(p.name for p in out.iterdir()) == sorted([OUTPUT_MARKER, f"f0{ext}", f"f1{ext}"])
    cls(out)  # a folder maskwatch wrote may be replaced ...
    (out / OUTPUT_MARKER).unlink()
    with pytest.raises(MaskwatchError, match="not written by maskwatch"):
        cls(out)  # ... one it did not write may not


def test_labels_sink_writes_normalised_yolo_lines(tmp_path: Path) -> None:
    frame, dets = _frames(1, size=(200, 100))[0]
    frame.name = None  # a video frame
    sink = LabelsSink(tmp_path / "labels", stem="clip", save_conf=True)
    sink.write(frame, dets, None)
    sink.close()
    (line,) = (tmp_path / "labels" / "clip_0.txt").read_text().splitlines()
    cls, cx, cy, w, h, conf = line.split()
    assert cls == "0" and float(conf) == pytest.approx(0.9)
    assert [float(v) for v in (cx, cy, w, h)] == pytest.approx([12 / 200, 18 / 100, 16 / 200, 24 / 100])


# annotator -----------------------------------------------------------------------------------------------


def _crowd(n_rows: int = 4, n_cols: int = 10) -> Detections:
    """Faces packed shoulder to shoulder, rows overlapping, as in a stadium stand."""
    boxes = []
    for r in range(n_rows):
        for c in range(n_cols):
            x, y = 40 + c * 120 + (r % 2) * 30, 80 + r * 130
            boxes.append([x, y, x + 90, y + 110])
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, dtype=np.float32),
        confidence=np.linspace(0.5, 0.99, n).astype(np.float32),
        class_id=np.arange(n) % 2,
        class_names=CLASSES,
        tracker_id=np.arange(n) + 100,
    )


def test_labels_never_overlap_in_a_crowd() -> None:
    dets = _crowd()
    w, h = 1280, 720
    scale, thick = max(0.4, h / 900), max(1, round(h / 300))
    texts = [
        f"{CLASSES[c]} {s:.2f} #{t}"
        for c, s, t in zip(dets.class_id, dets.confidence, dets.tracker_id, strict=True)
    ]
    sizes = [label_size(t, scale, thick) for t in texts]
    boxes = [tuple(int(v) for v in b) for b in dets.xyxy]
    rects = place_labels(boxes, sizes, w, h)  # type: ignore[arg-type]
    for i, a in enumerate(rects):
        assert a[0] >= 0 and a[2] <= w and a[1] >= 0 and a[3] <= h, "inside the frame"
        for b in rects[i + 1 :]:
            assert not (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]), (a, b)
    # what a naive layout (every tag above its box) would have done: the test's crowd does overlap
    naive = [(x1, y1 - s[1], x1 + s[0], y1) for (x1, y1, _, _), s in zip(boxes, sizes, strict=True)]
    assert any(
        a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
        for i, a in enumerate(naive)
        for b in naive[i + 1 :]
    )


def test_still_image_gets_no_fps_overlay() -> None:
    """The pipeline passes no FPS for a still image; the annotator then draws no FPS figure."""
    image = np.full((360, 640, 3), 128, np.uint8)
    dets = _crowd(1, 2)
    ann = Annotator(CLASSES)
    with_fps, without = ann(image, dets, 12.3), ann(image, dets, None)
    band = slice(0, 40)
    assert (with_fps[band] != without[band]).any(), "the FPS text changes the panel"
    assert np.array_equal(without, ann(image, dets, None))


def _detail_energy(gray: np.ndarray, face_side: int) -> float:
    """Energy of features smaller than a fifth of the face (eyes, mouth): the image minus its own blur
    at that scale."""
    sigma = face_side / 10
    low = cv2.GaussianBlur(gray.astype(np.float64), (0, 0), sigma)
    return float(((gray - low) ** 2).mean())


def test_blur_leaves_no_facial_detail_at_720p(kaggle: Path) -> None:
    """A real unmasked face from the Kaggle base (maksssksksss609, 148x162 px), enlarged to 300 px in a
    1280x720 frame as a close-up shows it: after --blur, what is left of detail at eye/mouth scale is
    under 3% of the original. Also saved to look at (``MASKWATCH_KEEP=dir``)."""
    source = cv2.cvtColor(cv2.imread(str(kaggle / "images" / "maksssksksss609.jpg")), cv2.COLOR_BGR2RGB)
    largest = (91, 103, 239, 265)  # its without_mask box in annotations/maksssksksss609.xml
    x1, y1, x2, y2 = largest
    face = cv2.resize(source[y1:y2, x1:x2], (300, 300), interpolation=cv2.INTER_CUBIC)
    frame = np.full((720, 1280, 3), 90, np.uint8)
    frame[200:500, 500:800] = face
    before = _detail_energy(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[200:500, 500:800], 300)
    blur_regions(frame, np.array([[500, 200, 800, 500]], np.float32))
    after = _detail_energy(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)[200:500, 500:800], 300)
    assert before > 20, "the face has detail to lose"
    assert after < 0.03 * before, f"detail energy {after:.2f} of {before:.2f}"
    keep = os.environ.get("MASKWATCH_KEEP")
    if keep:
        cv2.imwrite(str(Path(keep) / "blur-720p.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
