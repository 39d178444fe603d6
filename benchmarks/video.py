"""Frames per second of ``maskwatch detect`` on a video: decoding alone, the model alone, the whole pipeline.

    python benchmarks/video.py ../shared/videos/street-mask-720x404.mp4 --size 640x360 --json bench.json

For each backend (torch, onnx) it measures
  - decode: PyAV decoding + RGB conversion (+ the letterbox ``prepare``), no model;
  - model: ``Predictor.infer`` (network + NMS) on frames already decoded and prepared;
  - pipeline: the threaded detect pipeline writing an annotated H.264 video and a JSONL, end to end;
and, for reference, the plain eager ``Detector.predict`` path. Targets on 2 CPU cores for the default model
on a 640x360 video: pipeline >= 30 FPS and >= 80 % of the model-only FPS. Numbers are only comparable
on an otherwise idle machine; the JSON records the CPU count and load average with them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from maskwatch.detections import Detections
from maskwatch.models.registry import load_detector
from maskwatch.predict import Predictor, load_predictor
from maskwatch.video.pipeline import DetectionPipeline, DetectOptions
from maskwatch.video.sinks import JsonlSink, VideoSink
from maskwatch.video.sources import VideoFileSource


def resized_copy(src: Path, size: tuple[int, int], folder: Path, frames: int) -> Path:
    """Re-encode the first ``frames`` frames at ``size`` so the benchmark runs on that resolution."""
    out = folder / f"{src.stem}-{size[0]}x{size[1]}.mp4"
    source = VideoFileSource(src)
    sink = VideoSink(out, source.rate)
    for frame in itertools.islice(source, frames):
        frame.image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
        sink.write(frame, Detections.empty(()), None)
    sink.close()
    source.close()
    return out


def bench_decode(video: Path, predictor: Predictor, frames: int) -> float:
    source = VideoFileSource(video)
    t = time.perf_counter()
    n = 0
    for frame in source:
        predictor.prepare(frame.image)
        n += 1
        if n == frames:
            break
    source.close()
    return n / (time.perf_counter() - t)


def bench_model(
    video: Path,
    predict: Callable[[Any], Any],
    prepare: Callable[[np.ndarray], Any],
    frames: int,
    warmup: int = 5,
) -> float:
    """Median-of-3 FPS over ``frames`` runs on up to 50 real frames of the clip."""
    source = VideoFileSource(video)
    batch = []
    for frame in source:
        batch.append(prepare(frame.image))
        if len(batch) == 50:
            break
    source.close()
    for item in batch[:warmup]:
        predict(item)
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        for i in range(frames // 3):
            predict(batch[i % len(batch)])
        rates.append((frames // 3) / (time.perf_counter() - t))
    return statistics.median(rates)


def bench_pipeline(video: Path, predictor: Predictor, frames: int, folder: Path) -> tuple[float, float]:
    source = VideoFileSource(video)
    sinks = [VideoSink(folder / "out.mp4", source.rate), JsonlSink(folder / "out.jsonl")]
    pipeline = DetectionPipeline(source, predictor, sinks, DetectOptions(max_frames=frames, progress=False))
    summary = pipeline.run()
    return summary.fps, summary.model_fps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--model", help="model name, .pt or .onnx (default maskface-mnet)")
    ap.add_argument("--size", help="re-encode the clip to WxH first (e.g. 640x360)")
    ap.add_argument("--frames", type=int, default=150, help="frames per measurement (default 150)")
    ap.add_argument("--backends", default="torch,onnx")
    ap.add_argument("--imgsz", type=int)
    ap.add_argument("--threads", type=int, help="CPU threads of the network (default: all cores)")
    ap.add_argument("--json", type=Path, help="also write the results as JSON")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        video = args.video
        if args.size:
            w, h = (int(v) for v in args.size.lower().split("x"))
            video = resized_copy(args.video, (w, h), folder, args.frames + 10)
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            clip = f"{video.name} {s.width}x{s.height} @ {float(s.average_rate):.2f} fps"
        rows = []
        for backend in args.backends.split(","):
            predictor = load_predictor(args.model, backend, imgsz=args.imgsz, threads=args.threads)
            infer = lambda p, pr=predictor: pr.infer([p], 0.5, 0.4)  # noqa: E731
            row = {"backend": backend, "decode_fps": bench_decode(video, predictor, args.frames)}
            row["model_fps"] = bench_model(video, infer, predictor.prepare, args.frames)
            pipe = bench_pipeline(video, predictor, args.frames, folder)
            row["pipeline_fps"], row["pipeline_model_fps"] = pipe
            row["pipeline_vs_model"] = row["pipeline_fps"] / row["model_fps"]
            rows.append(row)
            print(f"{backend}: done", file=sys.stderr)
        if "torch" in args.backends.split(","):
            det = load_detector(args.model)
            eager = bench_model(
                video, lambda im: det.predict([im], 0.5, 0.4), lambda im: im, args.frames
            )  # the plain Detector.predict path, preprocessing included
            rows.append({"backend": "torch eager Detector.predict", "model_fps": eager})

    print(f"\n{clip}, {args.frames} frames, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'backend':30} {'decode':>8} {'model':>8} {'pipeline':>9} {'pipe/model':>11}")
    for r in rows:
        cells = [f"{r[k]:8.1f}" if k in r else f"{'':8}" for k in ("decode_fps", "model_fps", "pipeline_fps")]
        ratio = f"{100 * r['pipeline_vs_model']:10.0f}%" if "pipeline_vs_model" in r else ""
        print(f"{r['backend']:30} {cells[0]} {cells[1]} {cells[2]:>9} {ratio}")
    if args.json:
        result = {
            "clip": clip,
            "frames": args.frames,
            "cpus": os.cpu_count(),
            "loadavg": os.getloadavg(),
            "results": rows,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
