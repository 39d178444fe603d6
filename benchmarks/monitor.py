"""How many 640x360 cameras at 5 frames per second one machine monitors in real time.

    python benchmarks/monitor.py ../shared/videos/street-mask-720x404.mp4 --sources 1 2 4 8 --json m.json

The clip is re-encoded at 640x360 and looped to ``--seconds`` of video; for each N, N copies are monitored
at once (``maskwatch monitor`` with ``--fps 5 --window 2``, the default model, one process unless
``--workers``) in a fresh process, and we record:
  - realtime: media seconds of one source / wall seconds of the run; >= 1.0 means the machine kept up with
    N such cameras (files are processed as fast as possible, so this is the headroom a live run has);
  - peak RSS of the run (the process and its workers), in MB;
  - windows lost: windows expected from the frame times minus windows stored, over all cameras.
Target on 2 CPU cores: >= 8 sources in real time, no window lost, peak RSS <= 2 GB. Only comparable on an
otherwise idle machine; the JSON records the CPU count and load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2

from maskwatch.detections import Detections
from maskwatch.video.sinks import VideoSink
from maskwatch.video.sources import VideoFileSource

START = "2026-11-23T10:00:00Z"


def looped_copy(src: Path, size: tuple[int, int], seconds: float, folder: Path) -> Path:
    """``src`` resized to ``size`` and played again and again until ``seconds`` of video."""
    out = folder / f"{src.stem}-{size[0]}x{size[1]}-{seconds:g}s.mp4"
    first = VideoFileSource(src)
    rate, need = first.rate, None
    first.close()
    sink = VideoSink(out, rate)
    need = math.ceil(seconds * float(rate))
    n = 0
    while n < need:
        source = VideoFileSource(src)
        for frame in source:
            frame.image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
            frame.index, frame.time = n, n / float(rate)
            sink.write(frame, Detections.empty(()), None)
            n += 1
            if n == need:
                break
        source.close()
    sink.close()
    return out


def child(args: argparse.Namespace) -> None:
    """One measurement, in its own process so peak RSS is this run's alone."""
    from maskwatch.apps.monitor import monitor
    from maskwatch.apps.store import open_store, windows

    db = Path(args.db)
    cameras = [f"cam{i + 1}" for i in range(args.child)]
    t = time.perf_counter()
    summary = monitor(
        [args.video] * args.child,
        cameras,
        db=str(db),
        window=args.window,
        fps=args.fps,
        start_time=START,
        workers=args.workers,
        model=args.model,
        progress=False,
    )
    wall = time.perf_counter() - t
    store = open_store(db)
    stored = len(store.read(windows))
    store.close()
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_kb += resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if args.workers > 1 else 0
    print(json.dumps({"wall": wall, "frames": summary.frames, "stored": stored, "rss_mb": rss_kb / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("video", help="a clip to use as every camera")
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 2, 4, 8, 12])
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each camera's video")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", help="default: maskface-mnet, exported to ONNX once for all runs")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = looped_copy(Path(args.video), (w, h), args.seconds, folder)
        model = args.model
        if model is None:
            model = str(folder / "model.onnx")
            subprocess.run([sys.executable, "-m", "maskwatch", "-q", "export", "--out", model], check=True)
        source = VideoFileSource(video)
        times = [f.time for f in source]
        source.close()
        media = times[-1] + 1 / float(source.rate)
        expected = len({math.floor(t / args.window) for t in times})  # START is on a window boundary
        results: list[dict[str, Any]] = []
        for n in args.sources:
            cmd = [
                sys.executable,
                __file__,
                str(video),
                "--child",
                str(n),
                "--db",
                str(folder / f"{n}.sqlite"),
            ]
            cmd += ["--fps", str(args.fps), "--window", str(args.window), "--workers", str(args.workers)]
            out = subprocess.run([*cmd, "--model", model], check=True, capture_output=True, text=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            row = {
                "sources": n,
                "realtime": round(media / run["wall"], 2),
                "wall_s": round(run["wall"], 1),
                "frames": run["frames"],
                "peak_rss_mb": round(run["rss_mb"]),
                "windows_lost": n * expected - run["stored"],
            }
            results.append(row)
            print(
                f"{n:3d} sources: {row['realtime']:5.2f}x real time ({row['wall_s']} s for {media:.1f} s of "
                f"video each), peak RSS {row['peak_rss_mb']} MB, {row['windows_lost']} windows lost",
                flush=True,
            )
        kept_up = [r["sources"] for r in results if r["realtime"] >= 1.0 and r["windows_lost"] == 0]
        print(f"keeps up in real time with: {max(kept_up) if kept_up else 0} sources")
    if args.json:
        report = {
            "video": args.video,
            "size": args.size,
            "fps": args.fps,
            "seconds": round(media, 2),
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "results": results,
        }
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
