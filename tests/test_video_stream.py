"""Live sources against a real local stream: an MJPEG-over-HTTP server (``multipart/x-mixed-replace``, the
format of most IP cameras) on 127.0.0.1, serving frames of the street clip, a bounded number per
connection, then refusing. Covers --realtime (frames dropped, newest processed), a dropped connection
(reconnect with back-off, gap logged), and a clean end with finalised outputs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import pytest

from maskwatch.video.pipeline import detect
from tests.media import MjpegServer, read_jsonl, read_video


@pytest.fixture(scope="module")
def jpegs(shared: Path) -> list[bytes]:
    """The first 30 frames of the street clip at 640x360, JPEG-encoded as a camera would send them."""
    out = []
    with av.open(str(shared / "videos/street-mask-720x404.mp4")) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 30:
                break
            bgr = cv2.resize(frame.to_ndarray(format="bgr24"), (640, 360), interpolation=cv2.INTER_AREA)
            out.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


@pytest.fixture
def server(request: pytest.FixtureRequest, jpegs: list[bytes]) -> Iterator[MjpegServer]:
    plan, interval = request.param
    srv = MjpegServer(jpegs, plan, interval)
    yield srv
    srv.close()


@pytest.mark.parametrize("server", [([80], 0.0)], indirect=True)
def test_realtime_drops_frames_and_processes_the_newest(
    server: MjpegServer, dev_model: Path, tmp_path: Path
) -> None:
    """80 frames as fast as the socket takes them, a model much slower than that: with --realtime most
    frames are dropped, yet the last frame sent is processed and the output holds what was processed."""
    jsonl, out = tmp_path / "rt.jsonl", tmp_path / "rt.mp4"
    s = detect(
        server.url,
        dev_model,
        output=out,
        jsonl=jsonl,
        backend="torch",
        imgsz=1280,  # a slow model (upscaled input) even on a fast machine: frames must be dropped
        realtime=True,
        reconnect=0,
        progress=False,
    )
    frames = [r["frame"] for r in read_jsonl(jsonl)]
    assert s.frames_dropped > 0 and s.frames + s.frames_dropped == 80
    assert frames == sorted(frames) and len(frames) == s.frames < 80
    assert frames[-1] == 79, "the newest frame is processed"
    assert read_video(out)[0] == s.frames


@pytest.mark.parametrize("server", [([40], 0.0)], indirect=True)
def test_without_realtime_every_frame_is_processed(
    server: MjpegServer, dev_model: Path, tmp_path: Path
) -> None:
    jsonl = tmp_path / "all.jsonl"
    s = detect(server.url, dev_model, jsonl=jsonl, backend="torch", imgsz=160, reconnect=0, progress=False)
    assert [r["frame"] for r in read_jsonl(jsonl)] == list(range(40)) and s.frames_dropped == 0


@pytest.mark.parametrize("server", [([20, 15], 0.01)], indirect=True)
def test_dropped_stream_reconnects_and_ends_cleanly(
    server: MjpegServer, dev_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server closes after 20 frames, serves 15 more on the next connection, then refuses: the run
    reconnects once (gap logged and reported), retries with back-off, gives up, and finalises everything."""
    caplog.set_level(logging.WARNING, logger="maskwatch")
    jsonl, out, report = tmp_path / "s.jsonl", tmp_path / "s.mp4", tmp_path / "s.json"
    start = time.monotonic()
    detect(
        server.url,
        dev_model,
        output=out,
        jsonl=jsonl,
        summary=report,
        backend="torch",
        imgsz=160,
        reconnect=1.6,
        progress=False,
    )
    assert time.monotonic() - start < 30
    assert [r["frame"] for r in read_jsonl(jsonl)] == list(range(35))
    assert read_video(out)[0] == 35
    summary = json.loads(report.read_text())
    assert summary["frames"] == 35 and len(summary["gaps"]) == 1 and summary["gaps"][0]["after_frame"] == 19
    messages = [r.getMessage() for r in caplog.records]
    assert any("reconnected; gap of" in m for m in messages)
    retries = [m for m in messages if "reconnecting in" in m]
    assert len(retries) >= 3, "a second attempt after the server stops answering, with a longer delay"
    assert "reconnecting in 1.0 s" in " ".join(retries), "the delay doubles (back-off)"
    assert any("gave up reconnecting" in m for m in messages)
    assert server.connections >= 3
