"""Helpers for tests on video and detect outputs: a development checkpoint, and reading back what a run
wrote (shared by the video, stream, export and safety tests; the fixtures built on them live in
conftest.py)."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
import time
from pathlib import Path

import av
import numpy as np


def make_dev_checkpoint(shared: Path, path: Path) -> Path:
    """A real face detector whose with_mask / no_mask logits differ by seeded noise (the face weights
    alone give both classes the same logit, which would make every label a tie)."""
    import torch

    from maskwatch.models.registry import build_detector

    det = build_detector("maskface-mnet", ["with_mask", "no_mask"])
    det.load_face_weights(shared / "weights/retinaface-mobilenet0.25/mobilenet0.25_Final.pth")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for head in det.model.ClassHead:
            head.conv1x1.weight.add_(torch.randn(head.conv1x1.weight.shape, generator=gen) * 0.05)
    det.save(path)
    return path


def read_video(path: Path) -> tuple[int, tuple[int, int], float]:
    """Frame count (by decoding every frame), size and frame rate, as a player sees them."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(s))
        return n, (s.width, s.height), float(s.average_rate)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class MjpegServer:
    """Serve ``plan[i]`` JPEG frames on the i-th connection, ``interval`` seconds apart, then close it;
    connections beyond the plan are closed without a response (a camera that has gone away)."""

    def __init__(self, jpegs: list[bytes], plan: list[int], interval: float = 0.0) -> None:
        self.jpegs, self.plan, self.interval = jpegs, plan, interval
        self.connections = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                n = server.plan[server.connections] if server.connections < len(server.plan) else 0
                server.connections += 1
                if not n:
                    return  # close without a response
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                for i in range(n):
                    jpg = server.jpegs[i % len(server.jpegs)]
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpg)
                    self.wfile.write(head + jpg + b"\r\n")
                    time.sleep(server.interval)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def screenshot(page: Path, png: Path, size: str = "1280,900") -> np.ndarray:
    """Render ``page`` in real headless Chromium (Debian's package) and return the screenshot's RGB pixels;
    skips the test, saying so, where no Chromium is installed (CI installs it). The flags keep it off the
    network, which this machine refuses."""
    import shutil
    import subprocess
    import tempfile

    import pytest
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", f"--window-size={size}", f"--screenshot={png}", page.as_uri(),
            ],
            check=True, timeout=120, capture_output=True,
        )  # fmt: skip
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"))
