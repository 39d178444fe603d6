"""Prometheus metrics for ``--metrics-port``, so a site's existing Prometheus/Grafana can watch the monitor.

All metrics live in the monitor's own registry (not the process-global one), so several monitors in one
process (tests, notebooks) do not collide, and only the main process serves them: workers report through
the monitor's event queue.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from maskwatch.apps.store import Window
from maskwatch.errors import MaskwatchError


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("maskwatch_frames", "Frames processed", ["camera"], registry=r)
        self.fps = Gauge("maskwatch_fps", "Frames processed per second, last second", ["camera"], registry=r)
        self.faces = Counter(
            "maskwatch_faces", "Faces seen (face-frames) by class", ["camera", "label"], registry=r
        )
        self.people = Gauge(
            "maskwatch_people",
            "People in the last closed window, by class (no_mask: unmasked by the people-counting rule)",
            ["camera", "label"],
            registry=r,
        )
        self.share = Gauge(
            "maskwatch_unmasked_share", "Unmasked share of people, last closed window", ["camera"], registry=r
        )
        self.windows = Counter("maskwatch_windows", "Windows written", ["camera"], registry=r)
        self.alerts = Counter("maskwatch_alerts", "Alert episodes opened", ["camera", "rule"], registry=r)
        self.up = Gauge(
            "maskwatch_source_up", "1 while the source delivers frames, else 0", ["camera"], registry=r
        )
        self._last: dict[str, float] = {}
        self._server: Any = None

    def serve(self, port: int) -> None:
        try:
            started = start_http_server(port, registry=self.registry)
        except OSError as e:
            raise MaskwatchError(f"--metrics-port {port}: cannot listen ({e.strerror})") from None
        self._server = started[0] if isinstance(started, tuple) else None

    def progress(self, camera: str, frames: int, faces: dict[str, int]) -> None:
        now = time.monotonic()
        last = self._last.get(camera)
        self._last[camera] = now
        self.frames.labels(camera).inc(frames)
        if last is not None and now > last:
            self.fps.labels(camera).set(frames / (now - last))
        for label, n in faces.items():
            self.faces.labels(camera, label).inc(n)

    def window(self, w: Window) -> None:
        self.windows.labels(w.camera).inc()
        self.people.labels(w.camera, "with_mask").set(w.people - w.people_no_mask)
        self.people.labels(w.camera, "no_mask").set(w.people_no_mask)
        self.share.labels(w.camera).set(w.unmasked_share)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
