"""``maskwatch monitor`` end to end on the real clips in ../shared/videos: window boundaries and counts,
idempotent re-runs, a restart after SIGKILL, alerts and a webhook that hangs, Prometheus metrics scraped
during a run, PostgreSQL, worker processes and a local Ray instance. Every run uses the default model,
exported to ONNX once per session (the in-memory export otherwise costs each run seconds)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import av
import pytest

from maskwatch.apps.monitor import monitor
from maskwatch.apps.store import alerts, detections, iso, open_store, parse_time, windows

pytestmark = pytest.mark.slow

START = "2026-11-23T10:00:00Z"


@pytest.fixture(scope="session")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("model") / "maskface-mnet.onnx"
    subprocess.run([sys.executable, "-m", "maskwatch", "-q", "export", "--out", str(out)], check=True)
    return str(out)


@pytest.fixture
def street(shared: Path) -> Path:
    return shared / "videos" / "street-mask-720x404.mp4"


@pytest.fixture
def group(shared: Path) -> Path:
    return shared / "videos" / "group-mask-960x506.mp4"


def quick(model: str) -> dict[str, Any]:
    """The monitor options of the quicker tests: 2 s windows, 5 frames per second."""
    return {"window": 2, "fps": 5, "start_time": START, "model": model, "progress": False}


def rows(db: str, table: Any = windows) -> list[dict[str, Any]]:
    store = open_store(db)
    try:
        out = store.read(table)
    finally:
        store.close()
    for r in out:
        r.pop("id", None)
    return out


def frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [float(f.pts * stream.time_base) for f in c.decode(stream)]


def test_windows_on_a_real_clip_and_idempotent_rerun(street: Path, onnx_model: str, tmp_path: Path) -> None:
    """--window 2 on the 9.7 s street clip: windows start every 2 s from --start-time, hold exactly the
    frames whose media time falls in them, the last one is partial and ends at the last frame; faces add
    up to the stored detections. A second run stores nothing new and doubles nothing."""
    db = str(tmp_path / "m.sqlite")
    kwargs: dict[str, Any] = {"db": db, "window": 2, "start_time": START, "keep_detections": True}
    first = monitor([str(street)], model=onnx_model, progress=False, **kwargs)
    times = frame_times(street)
    t0 = parse_time(START)
    expected = {}
    for t in times:
        key = iso(t0 + 2 * int(t // 2))
        expected[key] = expected.get(key, 0) + 1
    got = rows(db)
    assert [(w["camera"], w["start_time"], w["frames"]) for w in got] == [
        ("street-mask-720x404", k, n) for k, n in expected.items()
    ]
    assert [w["end_time"] for w in got[:-1]] == [iso(t0 + 2 * (i + 1)) for i in range(len(got) - 1)]
    assert got[-1]["end_time"] == iso(t0 + times[-1])
    dets = rows(db, detections)
    assert sum(w["faces"] for w in got) == len(dets) > 0
    assert all(w["with_mask"] + w["no_mask"] == w["faces"] for w in got)
    assert all(w["people"] >= 1 and 0 <= w["unmasked_share"] <= 1 for w in got)
    assert first.windows_written == len(got) and first.frames == len(times)

    again = monitor([str(street)], model=onnx_model, progress=False, **kwargs)
    assert again.windows_written == 0 and again.windows_already_stored == len(got)
    assert rows(db) == got and len(rows(db, detections)) == len(dets)

    # the report reads what the monitor wrote: its headline counts the same people as the rows
    from maskwatch.apps.report import build_report

    html = build_report(db, tmp_path / "report.html")
    assert "street-mask-720x404" in html
    assert f"of {sum(w['people'] for w in got):,} people counted" in html


def side(d: dict[str, Any]) -> float:
    return min(d["x2"] - d["x1"], d["y2"] - d["y1"])


def test_min_face_is_the_range_of_interest(street: Path, onnx_model: str, tmp_path: Path) -> None:
    """--min-face: the faces under it are neither stored nor counted, and exactly those: the same frames
    give the same larger faces, box for box, as a run that keeps every face."""
    every, roi = str(tmp_path / "all.sqlite"), str(tmp_path / "roi.sqlite")
    monitor([str(street)], db=every, keep_detections=True, **quick(onnx_model))
    dets = rows(every, detections)
    cut = sorted(map(side, dets))[len(dets) // 2]
    monitor([str(street)], db=roi, keep_detections=True, min_face=cut, **quick(onnx_model))
    kept = rows(roi, detections)

    def boxes(ds: list[dict[str, Any]]) -> list[tuple[float, ...]]:
        return sorted((d["frame"], d["x1"], d["y1"], d["x2"], d["y2"]) for d in ds)

    assert 0 < len(kept) < len(dets) and min(map(side, kept)) >= cut
    assert boxes(kept) == boxes([d for d in dets if side(d) >= cut])
    got = rows(roi)
    assert sum(w["faces"] for w in got) == len(kept)
    assert [w["frames"] for w in got] == [w["frames"] for w in rows(every)]  # frames still count


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_restart_after_kill_loses_and_doubles_nothing(
    group: Path, onnx_model: str, tmp_path: Path, sig: signal.Signals
) -> None:
    """SIGKILL (or Ctrl-C) a monitor once it has stored two windows, run it again: the windows and alert
    episodes are exactly those of a run that was never interrupted (Ctrl-C does not store the window it
    was filling as if it were complete)."""
    args = ["--window", "1", "--fps", "10", "--start-time", START, "--model", onnx_model, "--keep-detections"]
    cmd = [sys.executable, "-m", "maskwatch", "-q", "monitor", str(group), *args]
    clean, killed = str(tmp_path / "clean.sqlite"), str(tmp_path / "killed.sqlite")
    subprocess.run([*cmd, "--db", clean], check=True, capture_output=True)
    proc = subprocess.Popen([*cmd, "--db", killed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if Path(killed).exists() and len(_count_windows(killed)) >= 2:
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(sig)
    finally:
        code = proc.wait(timeout=60)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    partial = rows(killed)
    assert 2 <= len(partial) < len(rows(clean))
    subprocess.run([*cmd, "--db", killed], check=True, capture_output=True)
    assert rows(killed) == rows(clean)
    assert rows(killed, alerts) == rows(clean, alerts) != []
    assert len(rows(killed, detections)) == len(rows(clean, detections))


def _count_windows(db: str) -> list[Any]:
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return conn.execute("SELECT start_time FROM windows").fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


class _Hook(http.server.BaseHTTPRequestHandler):
    """A webhook: records each POST body; ``hang`` seconds before answering (a server that hangs)."""

    hang = 0.0
    bodies: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.bodies.append(json.loads(body))
        time.sleep(self.hang)
        try:
            self.send_response(200)
            self.end_headers()
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, *args: Any) -> None:
        pass


def _serve(hang: float) -> tuple[http.server.ThreadingHTTPServer, list[dict[str, Any]]]:
    bodies: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"hang": hang, "bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, bodies


def test_alerts_and_a_hanging_webhook_cost_detection_nothing(
    group: Path, onnx_model: str, tmp_path: Path
) -> None:
    """The group clip starts with four people unmasked: the small-group rule fires once (one episode over
    consecutive windows), is stored with its end, and is posted to both webhooks. One webhook hangs for
    30 s: the run takes no longer than the same run without notifications (plus the short exit grace)."""
    ok_server, ok_bodies = _serve(0.0)
    hang_server, hang_bodies = _serve(30.0)
    common = quick(onnx_model)
    try:
        t = time.perf_counter()
        monitor([str(group)], db=str(tmp_path / "quiet.sqlite"), **common)
        quiet = time.perf_counter() - t
        urls = [
            f"json://127.0.0.1:{hang_server.server_port}/hook",
            f"json://127.0.0.1:{ok_server.server_port}/hook",
        ]
        t = time.perf_counter()
        summary = monitor([str(group)], db=str(tmp_path / "loud.sqlite"), notify=urls, **common)
        loud = time.perf_counter() - t
    finally:
        ok_server.shutdown()
        hang_server.shutdown()
    assert summary.alerts >= 1
    stored = rows(str(tmp_path / "loud.sqlite"), alerts)
    assert len(stored) == summary.alerts and stored[0]["rule"] == "small-group"
    assert stored[0]["start_time"] == START and stored[0]["end_time"] is not None
    assert stored[0]["peak_unmasked_share"] > 0.25
    assert len(ok_bodies) == summary.alerts and "group-mask-960x506" in ok_bodies[0]["message"]
    assert len(hang_bodies) >= 1  # it was called, and hung
    assert loud < quiet + 6.0, f"notifications slowed the run: {loud:.1f} s vs {quiet:.1f} s"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_scraped_during_a_run(street: Path, onnx_model: str, tmp_path: Path) -> None:
    port = _free_port()
    cmd = [sys.executable, "-m", "maskwatch", "-q", "monitor", str(street), "--window", "2"]
    cmd += ["--model", onnx_model, "--db", str(tmp_path / "m.sqlite"), "--metrics-port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
                continue
            for line in text.splitlines():
                if line.startswith("maskwatch_") and 'camera="street-mask-720x404"' in line:
                    name, value = line.rsplit(" ", 1)
                    seen[name] = float(value)
            if seen.get('maskwatch_frames_total{camera="street-mask-720x404"}', 0) > 0 and any(
                k.startswith("maskwatch_unmasked_share") for k in seen
            ):
                break
            time.sleep(0.2)
    finally:
        proc.wait(timeout=180)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen['maskwatch_frames_total{camera="street-mask-720x404"}'] > 0
    assert seen['maskwatch_source_up{camera="street-mask-720x404"}'] == 1
    assert seen['maskwatch_faces_total{camera="street-mask-720x404",label="with_mask"}'] > 0
    assert seen['maskwatch_unmasked_share{camera="street-mask-720x404"}'] == 0.0
    assert seen['maskwatch_windows_total{camera="street-mask-720x404"}'] >= 1


def test_postgresql_stores_what_sqlite_stores(
    street: Path, onnx_model: str, tmp_path: Path, postgres_url: str
) -> None:
    common = quick(onnx_model)
    monitor([str(street)], db=str(tmp_path / "m.sqlite"), **common)
    monitor([str(street)], db=postgres_url, **common)
    again = monitor([str(street)], db=postgres_url, **common)
    assert again.windows_written == 0
    assert rows(postgres_url) == rows(str(tmp_path / "m.sqlite")) != []


def test_workers_and_a_failing_source(street: Path, group: Path, onnx_model: str, tmp_path: Path) -> None:
    """Two worker processes, each with its own model, give the windows one process gives; a corrupt
    source fails alone (reported), the others are stored."""
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(street.read_bytes()[:2000])
    common = quick(onnx_model)
    sources = [str(street), str(group)]
    monitor(sources, db=str(tmp_path / "one.sqlite"), **common)
    summary = monitor([*sources, str(broken)], db=str(tmp_path / "two.sqlite"), workers=2, **common)
    assert list(summary.failed) == ["broken"]
    assert rows(str(tmp_path / "two.sqlite")) == rows(str(tmp_path / "one.sqlite"))
    assert {w["camera"] for w in rows(str(tmp_path / "one.sqlite"))} == {
        "street-mask-720x404",
        "group-mask-960x506",
    }


def test_ray_engine_on_a_local_instance(street: Path, onnx_model: str, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'maskwatch[ray]')")
    common = quick(onnx_model)
    monitor([str(street)], db=str(tmp_path / "local.sqlite"), **common)
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        summary = monitor([str(street)], db=str(tmp_path / "ray.sqlite"), engine="ray", **common)
    finally:
        ray.shutdown()
    assert not summary.failed
    assert rows(str(tmp_path / "ray.sqlite")) == rows(str(tmp_path / "local.sqlite")) != []


def test_a_live_stream_gets_wall_clock_windows_and_is_retried(
    street: Path, onnx_model: str, tmp_path: Path
) -> None:
    """An MJPEG camera sends 60 frames over ~3 s and then refuses connections: the windows are cut on the
    wall clock (1 s each, aligned on whole seconds, within the run's time span), hold every processed
    frame, and the monitor keeps retrying the dead camera until it is stopped."""
    import cv2

    from tests.media import MjpegServer

    with av.open(str(street)) as c:
        jpegs = [
            cv2.imencode(".jpg", f.to_ndarray(format="bgr24"))[1].tobytes()
            for _, f in zip(range(10), c.decode(video=0), strict=False)
        ]
    server = MjpegServer(jpegs, [60], interval=0.05)
    stop = threading.Event()
    db = str(tmp_path / "live.sqlite")
    before = time.time()
    threading.Timer(8.0, stop.set).start()  # the stream is gone after ~3 s: retried at +1, +2, +4 s
    try:
        summary = monitor([server.url], ["door"], db=db, window=1, reconnect=0, stop=stop, model=onnx_model)
    finally:
        server.close()
    after = time.time()
    got = rows(db)
    assert len(got) >= 3 and sum(w["frames"] for w in got) == summary.frames > 0
    starts = [parse_time(w["start_time"]) for w in got]
    assert all(s == int(s) and before - 1 <= s <= after for s in starts)
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert server.connections >= 3, "the dead camera was retried"
    assert "cannot open the stream" in summary.failed["door"]  # it was down when the run stopped
