"""``maskwatch monitor``: sources → detection and tracking → windows in a database → debounced alerts.

Two halves joined by one event queue:

- *Cameras* (:func:`run_cameras`): one process loads the model once and runs one detection pipeline per
  source in a thread; a :class:`~maskwatch.apps.monitor.windows.WindowAggregator` on each pipeline's
  ``on_frame`` hook turns frames into windows and emits them. A source that fails is logged and the
  others go on; a stream that stays down is reopened with back-off until the monitor stops.
- *Collector* (:func:`monitor`, main process): the only writer of the database. Each closed window is
  stored with its detections and its alerts' changes in one transaction; the rule engine debounces alerts;
  notifications go to a background thread; Prometheus metrics are updated.

The cameras half runs in a thread (default), in ``workers`` processes (``multiprocessing``, each with its
own model, the sources dealt round-robin), or as Ray tasks (``engine="ray"``, ``ray.init()`` connecting to
``RAY_ADDRESS`` or starting a local instance). Only events cross the boundary, so the database, the rule
engine and the notifier behave the same in all three.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tqdm import tqdm

from maskwatch.apps.monitor.alerts import AlertEvent, Notifier, RuleEngine, check_notify_urls, load_rules
from maskwatch.apps.monitor.metrics import Metrics
from maskwatch.apps.monitor.windows import Emit, WindowAggregator
from maskwatch.apps.store import Store, Window, db_error, open_store, parse_time
from maskwatch.defaults import CONF, IOU
from maskwatch.errors import MaskwatchError
from maskwatch.video.sources import URL_SCHEMES, Frame, Source

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class CameraSpec:
    """One source to watch: its camera name, the SOURCE text and, for a file, the Unix time of its start."""

    camera: str
    source: str
    start: float | None


@dataclass(frozen=True)
class MonitorOptions:
    """What each camera process needs (picklable: it travels to worker processes and Ray tasks)."""

    model: str | None = None
    backend: str | None = None
    device: str = "cpu"
    imgsz: int | None = None
    conf: float = CONF
    iou: float = IOU
    min_face: float = 0.0
    window: float = 60.0
    fps: float | None = None
    min_unmasked: float = 1.0
    keep_detections: bool = False
    reconnect: float = 30.0
    max_retry_delay: float = 60.0


@dataclass
class MonitorSummary:
    cameras: list[str]
    windows_written: int = 0
    windows_already_stored: int = 0
    frames: int = 0
    alerts: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def text(self) -> str:
        lines = [
            f"{len(self.cameras)} cameras, {self.frames} frames in {self.seconds:.1f} s: "
            f"{self.windows_written} windows written"
            + (f" ({self.windows_already_stored} already stored)" if self.windows_already_stored else "")
            + f", {self.alerts} alerts"
        ]
        lines += [f"{camera}: failed ({reason})" for camera, reason in self.failed.items()]
        return "\n".join(lines)


def is_live(source: str) -> bool:
    """A webcam index or a stream URL (what ``open_source`` opens as a live source)."""
    return source.isdigit() or ("://" in source and source.split("://", 1)[0].lower() in URL_SCHEMES)


def file_start_time(path: Path) -> float:
    """When a recording began: the container's ``creation_time`` tag, else the file's modification time
    (so re-running a file gives the same windows)."""
    if path.is_file():
        import av

        try:
            with av.open(str(path)) as container:
                tag = container.metadata.get("creation_time")
        except (av.FFmpegError, OSError, ValueError):
            tag = None  # an image, or unreadable: open_source reports the latter
        if tag:
            try:
                return parse_time(tag)
            except MaskwatchError:
                log.debug("%s: creation_time %r is not ISO 8601", path, tag)
    return path.stat().st_mtime


def plan_cameras(
    sources: Sequence[str], cameras: Sequence[str] | None = None, start_time: str | None = None
) -> list[CameraSpec]:
    """Name each source (``--camera``, else the file stem) and fix each file's start time, checking
    everything a user can get wrong before any model loads."""
    if not sources:
        raise MaskwatchError("no SOURCE given")
    if cameras and len(cameras) != len(sources):
        raise MaskwatchError(f"{len(cameras)} --camera names for {len(sources)} sources: give one per source")
    start = parse_time(start_time) if start_time is not None else None
    specs = []
    for i, source in enumerate(map(str, sources)):
        if is_live(source):
            name = cameras[i] if cameras else source
            specs.append(CameraSpec(name, source, None))
            continue
        path = Path(source)
        if not path.exists():
            raise MaskwatchError(f"{source}: no such file or folder")
        name = cameras[i] if cameras else path.stem
        specs.append(CameraSpec(name, source, start if start is not None else file_start_time(path)))
    names = [s.camera for s in specs]
    if len(set(names)) < len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise MaskwatchError(f"two sources would be camera {dup[0]!r}: name them with --camera")
    return specs


class SampledSource(Source):
    """Keep about ``fps`` frames per second of a source (by frame time): a 25 fps camera watched at 5 fps
    costs a fifth of the model time. The frames left out are still decoded (decoding is cheap)."""

    def __init__(self, source: Source, fps: float) -> None:
        self.source = source
        self.fps_target = fps
        self.description = source.description
        self.kind = source.kind
        self.live = source.live
        self.size = source.size
        self.rate = Fraction(fps).limit_denominator(1001)
        ratio = min(1.0, fps / source.fps) if source.fps else 1.0
        self.total = math.ceil(source.total * ratio) if source.total else None

    def __iter__(self) -> Iterator[Frame]:
        last = -1
        for frame in self.source:
            t = frame.time if frame.time is not None else float(frame.index)
            slot = math.floor(t * self.fps_target + 1e-6)
            if slot > last:
                last = slot
                yield frame

    def close(self) -> None:
        self.source.close()


def run_cameras(specs: Sequence[CameraSpec], options: MonitorOptions, emit: Emit, stop: Any) -> None:
    """Watch ``specs`` in this process (one model, one thread per source) until they end or ``stop`` (a
    threading or multiprocessing Event) is set; everything is reported through ``emit``."""
    from maskwatch.predict import load_predictor

    try:
        predictor = load_predictor(options.model, options.backend, options.device, options.imgsz)
    except Exception as e:  # every camera of this process is down
        for spec in specs:
            emit(("done", spec.camera, f"cannot load the model: {e}"))
        return
    running: dict[str, Any] = {}
    threads = [
        threading.Thread(
            target=_run_camera,
            args=(spec, predictor, options, emit, stop, running),
            name=f"maskwatch-camera-{spec.camera}",
            daemon=True,
        )
        for spec in specs
    ]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if stop.wait(0.2):
            for pipeline in list(running.values()):
                pipeline.stop()
            for t in threads:
                t.join(5.0)
            break


def _run_camera(
    spec: CameraSpec,
    predictor: Any,
    options: MonitorOptions,
    emit: Emit,
    stop: Any,
    running: dict[str, Any],
) -> None:
    """One source: detect, track and cut windows; a live source is reopened with back-off when it drops."""
    from maskwatch.video.pipeline import DetectionPipeline, DetectOptions
    from maskwatch.video.sources import open_source
    from maskwatch.video.tracker import FaceTracker

    live = is_live(spec.source)
    aggregator = WindowAggregator(spec.camera, options.window, emit, spec.start, options.keep_detections)
    tracker: FaceTracker | None = None  # made on the first connection, kept across reconnects (ids go on)
    delay, error = 1.0, None
    while not stop.is_set():
        try:
            source: Source = open_source(spec.source, reconnect=options.reconnect)
        except MaskwatchError as e:
            error = str(e)
            if not live:
                break
            log.warning("%s: %s; retrying in %.0f s", spec.camera, e, delay)
            if stop.wait(delay):
                break
            delay = min(delay * 2, options.max_retry_delay)
            continue
        if options.fps:
            source = SampledSource(source, options.fps)
        if tracker is None:
            tracker = _tracker(predictor.class_names, options.min_unmasked, source.fps or 25.0)
        emit(("up", spec.camera, True))
        pipeline = DetectionPipeline(
            source,
            predictor,
            options=DetectOptions(options.conf, options.iou, options.min_face, realtime=live, progress=False),
            tracker=tracker,
            on_frame=aggregator.add,
        )
        running[spec.camera] = pipeline
        try:
            pipeline.run()
            error = None
        except Exception as e:
            error = f"{type(e).__name__}: {e}" if not isinstance(e, MaskwatchError) else str(e)
            log.error("%s: %s", spec.camera, error)
        finally:
            running.pop(spec.camera, None)
        emit(("up", spec.camera, False))
        if not live or stop.is_set():
            break
        log.warning("%s: the stream stopped; reopening in %.0f s", spec.camera, delay)
        if stop.wait(delay):
            break
        delay = min(delay * 2, options.max_retry_delay)
    if live or not stop.is_set():
        aggregator.finish()  # a stream's last window is all there will be; a file's end is its end
    else:
        aggregator.flush_progress()  # a file stopped midway: its open window is not closed, a re-run fills it
    emit(("done", spec.camera, error))


def _tracker(class_names: tuple[str, ...], min_unmasked: float, fps: float) -> Any:
    """The tracker's frame counts are tuned for 25 fps (a 15-frame vote, 30 frames of patience): keep the
    same spans in seconds when frames are sampled."""
    from maskwatch.video.tracker import FaceTracker

    scale = fps / 25.0
    return FaceTracker(
        class_names,
        max_age=max(5, round(30 * scale)),
        vote_window=max(3, round(15 * scale)),
        min_unmasked=min_unmasked,
        fps=fps,
    )


def _worker_main(
    specs: list[CameraSpec], options: MonitorOptions, events: Any, stop: Any, level: int
) -> None:
    """Entry point of a ``--workers`` process."""
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s")
    run_cameras(specs, options, events.put, stop)


def _ray_task(specs: list[CameraSpec], options: MonitorOptions, events: Any) -> None:
    """Entry point of a Ray task: events go back through a Ray queue; Ray cancels the task to stop it."""
    run_cameras(specs, options, events.put, threading.Event())


def _deal(specs: Sequence[CameraSpec], n: int) -> list[list[CameraSpec]]:
    """Spread sources round-robin over ``n`` workers (no empty worker)."""
    groups = [list(specs[i::n]) for i in range(min(n, len(specs)))]
    return [g for g in groups if g]


class _Collector:
    """The main-process half: store windows and alerts, notify, update metrics and the progress bar."""

    def __init__(
        self,
        store: Store,
        engine: RuleEngine,
        notifier: Notifier,
        metrics: Metrics | None,
        summary: MonitorSummary,
        bar: tqdm,
    ) -> None:
        self.store, self.engine, self.notifier = store, engine, notifier
        self.metrics, self.summary, self.bar = metrics, summary, bar
        self.done: set[str] = set()

    def handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "progress":
            _, camera, frames, faces = event
            self.summary.frames += frames
            self.bar.update(frames)
            if self.metrics is not None:
                self.metrics.progress(camera, frames, faces)
        elif kind == "window":
            self._window(event[1], event[2])
        elif kind == "up":
            if self.metrics is not None:
                self.metrics.up.labels(event[1]).set(1 if event[2] else 0)
        elif kind == "done":
            _, camera, error = event
            self.done.add(camera)
            if error:
                self.summary.failed[camera] = error
            self._apply(self.engine.finish(camera))

    def _window(self, window: Window, rows: list[dict[str, Any]]) -> None:
        try:
            with self.store.engine.begin() as conn:
                inserted = self.store.write_window(window, rows, conn)
                self._apply(self.engine.feed(window), conn)
        except sa.exc.DBAPIError as e:  # locked for too long, disk full, server gone: stop, say why
            raise MaskwatchError(
                f"cannot store the window {window.camera} {window.start_time} ({db_error(e)}); the windows "
                "before it are stored, re-run to go on"
            ) from None
        if inserted:
            self.summary.windows_written += 1
        else:
            self.summary.windows_already_stored += 1
            log.debug("%s %s: already stored", window.camera, window.start_time)
        if self.metrics is not None:
            self.metrics.window(window)
        self.bar.set_postfix_str(
            f"windows {self.summary.windows_written}, alerts {self.summary.alerts}", refresh=False
        )

    def _apply(self, events: list[AlertEvent], conn: Any = None) -> None:
        if conn is None:
            if events:
                with self.store.engine.begin() as c:
                    self._apply(events, c)
            return
        for ev in events:
            e = ev.episode
            if ev.kind == "open":
                if not self.store.open_alert(
                    e.camera, e.rule, e.start_time, e.peak_unmasked_share, e.people, conn
                ):
                    continue  # raised by an earlier run of the same windows: not again
                self.summary.alerts += 1
                message = (
                    f"{e.camera}: {e.rule}: {100 * e.peak_unmasked_share:.0f}% of {e.people} people "
                    f"unmasked since {e.start_time}"
                )
                log.warning("ALERT %s", message)
                self.notifier.send(f"maskwatch alert: {e.rule} on {e.camera}", message)
                if self.metrics is not None:
                    self.metrics.alerts.labels(e.camera, e.rule).inc()
            else:
                end = e.end_time if ev.kind == "close" else None
                self.store.update_alert(
                    e.camera, e.rule, e.start_time, e.peak_unmasked_share, e.people, end, conn
                )
                if ev.kind == "close":
                    log.info("alert cleared: %s on %s (%s to %s)", e.rule, e.camera, e.start_time, e.end_time)


def monitor(
    sources: Sequence[str],
    cameras: Sequence[str] | None = None,
    *,
    db: str | Path = "monitor.sqlite",
    window: float = 60.0,
    rules: str | Path | None = None,
    notify: Sequence[str] = (),
    start_time: str | None = None,
    keep_detections: bool = False,
    metrics_port: int | None = None,
    workers: int = 1,
    engine: str = "local",
    fps: float | None = None,
    model: str | None = None,
    backend: str | None = None,
    device: str = "cpu",
    imgsz: int | None = None,
    conf: float = CONF,
    iou: float = IOU,
    min_face: float = 0.0,
    min_unmasked: float = 1.0,
    reconnect: float = 30.0,
    progress: bool = True,
    notify_grace: float = 2.0,
    stop: threading.Event | None = None,
) -> MonitorSummary:
    """Everything ``maskwatch monitor`` does, as one call (see ``maskwatch monitor --help``); returns when
    every source has ended (files) or on Ctrl-C (every closed window is stored by then). ``stop``: an
    event another thread sets to end the run as Ctrl-C would (the default engine, one process).
    ``min_face`` is the camera's range of interest: faces whose shorter side is under it are neither
    counted nor tracked, so the far faces the model finds least reliably do not sway the shares."""
    from maskwatch.predict import check_imgsz
    from maskwatch.video.pipeline import check_filters

    if not window > 0:
        raise MaskwatchError(f"--window {window}: must be > 0 seconds")
    if fps is not None and not fps > 0:
        raise MaskwatchError(f"--fps {fps}: must be > 0")
    if workers < 1:
        raise MaskwatchError(f"--workers {workers}: must be at least 1")
    if engine not in ENGINES:
        raise MaskwatchError(f"--engine {engine}: use one of {', '.join(ENGINES)}")
    check_filters(conf, iou, min_face)
    check_imgsz(imgsz)
    specs = plan_cameras(sources, cameras, start_time)
    engine_rules = RuleEngine(load_rules(rules))
    check_notify_urls(notify)
    if engine == "ray":
        _import_ray()
    if stop is not None and (engine != "local" or workers > 1):
        raise MaskwatchError("monitor(stop=...) works with the local engine and one worker")
    store = open_store(db)
    options = MonitorOptions(
        model=model,
        backend=backend,
        device=device,
        imgsz=imgsz,
        conf=conf,
        iou=iou,
        min_face=min_face,
        window=window,
        fps=fps,
        min_unmasked=min_unmasked,
        keep_detections=keep_detections,
        reconnect=reconnect,
    )
    metrics = Metrics() if metrics_port is not None else None
    summary = MonitorSummary([s.camera for s in specs])
    notifier = Notifier(notify, grace=notify_grace)
    bar = tqdm(unit="frame", disable=not progress, file=sys.stderr, mininterval=0.5, dynamic_ncols=True)
    collector = _Collector(store, engine_rules, notifier, metrics, summary, bar)
    start = time.perf_counter()
    try:
        if metrics is not None:
            metrics.serve(metrics_port)  # type: ignore[arg-type]
        if engine == "ray":
            _run_ray(specs, options, workers, collector)
        elif workers > 1:
            _run_processes(specs, options, workers, collector)
        else:
            _run_thread(specs, options, collector, stop or threading.Event())
    finally:
        summary.seconds = time.perf_counter() - start
        bar.close()
        notifier.close()
        if metrics is not None:
            metrics.close()
        store.close()
    return summary


def _drain(get: Callable[[float], Any], collector: _Collector, alive: Callable[[], bool], total: int) -> None:
    """Hand events to the collector until every camera is done, or the cameras' side died."""
    while len(collector.done) < total:
        try:
            event = get(0.5)
        except queue.Empty:
            if not alive():
                break
            continue
        collector.handle(event)


def _run_thread(
    specs: list[CameraSpec], options: MonitorOptions, collector: _Collector, stop: threading.Event
) -> None:
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()
    thread = threading.Thread(
        target=run_cameras, args=(specs, options, events.put, stop), name="maskwatch-cameras", daemon=True
    )
    thread.start()
    try:
        _drain(lambda t: events.get(timeout=t), collector, thread.is_alive, len(specs))
    except BaseException as e:  # Ctrl-C, or the database failed: stop the cameras first
        stop.set()
        thread.join(10.0)
        if isinstance(e, KeyboardInterrupt):
            log.warning("interrupted: storing the windows closed so far")
            _flush(events, collector)
        raise
    _flush(events, collector)


def _flush(events: Any, collector: _Collector) -> None:
    """Store what the cameras emitted while stopping."""
    while True:
        try:
            collector.handle(events.get(timeout=0.1))
        except queue.Empty:
            return


def _run_processes(
    specs: list[CameraSpec], options: MonitorOptions, workers: int, collector: _Collector
) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork would copy threads and model state mid-flight
    events = ctx.Queue()
    stop = ctx.Event()
    level = logging.getLogger().getEffectiveLevel()
    procs = [
        ctx.Process(target=_worker_main, args=(group, options, events, stop, level), daemon=True)
        for group in _deal(specs, workers)
    ]
    for p in procs:
        p.start()
    try:
        _drain(
            lambda t: events.get(timeout=t), collector, lambda: any(p.is_alive() for p in procs), len(specs)
        )
    except BaseException as e:
        stop.set()
        for p in procs:
            p.join(10.0)
        if isinstance(e, KeyboardInterrupt):
            log.warning("interrupted: storing the windows closed so far")
            _flush(events, collector)
        raise
    finally:
        for p in procs:
            p.join(5.0)
            if p.is_alive():
                p.terminate()
    _flush(events, collector)
    for spec in specs:
        if spec.camera not in collector.done:
            collector.handle(("done", spec.camera, "its worker process died"))


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MaskwatchError("--engine ray needs Ray: pip install 'maskwatch[ray]'") from None
    return ray


def _run_ray(specs: list[CameraSpec], options: MonitorOptions, workers: int, collector: _Collector) -> None:
    """Sources as Ray tasks on the cluster ``ray.init()`` finds (``RAY_ADDRESS``), else a local one."""
    ray = _import_ray()
    from ray.util.queue import Empty, Queue

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"))
    events = Queue()
    task = ray.remote(num_cpus=1)(_ray_task)
    refs = [task.remote(group, options, events) for group in _deal(specs, workers)]

    def get(timeout: float) -> Any:
        try:
            return events.get(timeout=timeout)
        except Empty:
            raise queue.Empty from None

    def alive() -> bool:
        return bool(ray.wait(refs, num_returns=len(refs), timeout=0)[1])

    try:
        _drain(get, collector, alive, len(specs))
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref)
        raise
    for ref in refs:
        try:
            ray.get(ref)
        except Exception as e:  # a task that crashed: its cameras are failed, not the whole run
            log.error("a Ray task failed: %s", e)
    while not events.empty():
        collector.handle(events.get())
    for spec in specs:
        if spec.camera not in collector.done:
            collector.handle(("done", spec.camera, "its Ray task failed"))
    events.shutdown()
