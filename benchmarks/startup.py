"""Start-up, memory and whole-command speed of ``maskwatch detect`` as a user runs it (issue 12).

    python benchmarks/startup.py --runs 7 --json startup.json
    python benchmarks/startup.py --cpus 0,1      # pin every command to two cores, as on the target box

1. ``maskwatch detect IMAGE --jsonl out.jsonl`` in a fresh process, ``--runs`` times: wall time and peak
   RSS of that process (``os.wait4``'s rusage), min / median / max. Targets: median <= 0.5 s, <= 200 MB.
2. The 928-frame street clip resized to 640x360 (made once in a temporary folder), whole command
   ``maskwatch detect clip.mp4 --output out.mp4 --jsonl out.jsonl``: frames / wall time, against the ONNX
   model-only FPS (``Predictor.infer`` on prepared frames, as ``benchmarks/video.py``) measured in the
   same run. Targets: >= 60 FPS and >= 80 % of model-only.

Numbers are only comparable on an otherwise idle machine; the JSON records the CPUs and load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

IMAGE = ROOT.parent / "shared/data/face-mask-kaggle/images/maksssksksss0.jpg"
CLIP = ROOT.parent / "shared/videos/street-mask-720x404.mp4"


def timed(cmd: list[str], cpus: set[int] | None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in a fresh process."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed:\n{err.read().decode()}")
    return wall, usage.ru_maxrss / 1024  # Linux: kB


def spread(values: list[float]) -> dict[str, float]:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", type=Path, default=IMAGE)
    p.add_argument("--video", type=Path, default=CLIP)
    p.add_argument("--runs", type=int, default=7, help="fresh processes per measurement (default 7)")
    p.add_argument("--video-runs", type=int, default=3, help="whole-clip runs (default 3)")
    p.add_argument("--cpus", help="comma-separated CPU ids to pin the commands to (default: all)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args(argv)
    cpus = {int(c) for c in args.cpus.split(",")} if args.cpus else None
    if cpus:
        os.sched_setaffinity(0, cpus)  # the in-process model-only measurement too
    maskwatch = [sys.executable, "-m", "maskwatch", "-q", "detect"]
    result: dict[str, Any] = {"cpus": len(os.sched_getaffinity(0)), "load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        timed([*maskwatch, str(args.image), "--jsonl", str(folder / "warm.jsonl")], cpus)  # page cache
        walls, rss = [], []
        for i in range(args.runs):
            wall, mb = timed([*maskwatch, str(args.image), "--jsonl", str(folder / f"{i}.jsonl")], cpus)
            walls.append(wall)
            rss.append(mb)
        result["image"] = {"wall_s": spread(walls), "peak_rss_mb": spread(rss), "runs": args.runs}
        print(f"detect one image: wall {_fmt(walls, 's')}; peak RSS {_fmt(rss, 'MB')}")

        from video import bench_model, resized_copy  # benchmarks/video.py

        from maskwatch.predict import load_predictor

        clip = resized_copy(args.video, (640, 360), folder, 10**9)
        predictor = load_predictor()
        model_fps = bench_model(clip, lambda x: predictor.infer([x], 0.5, 0.4), predictor.prepare, 300)
        fps = []
        for i in range(args.video_runs):
            out, jsonl = folder / f"out{i}.mp4", folder / f"out{i}.jsonl"
            wall, _ = timed([*maskwatch, str(clip), "--output", str(out), "--jsonl", str(jsonl)], cpus)
            frames = len(jsonl.read_text().splitlines())
            fps.append(frames / wall)
        result["video"] = {
            "frames": frames,
            "command_fps": spread(fps),
            "onnx_model_only_fps": model_fps,
            "share_of_model_only": statistics.median(fps) / model_fps,
        }
        print(
            f"{frames}-frame 640x360 clip, whole command: {_fmt(fps, 'FPS')}; ONNX model alone "
            f"{model_fps:.1f} FPS ({100 * statistics.median(fps) / model_fps:.0f} % of it)"
        )
    result["load_after"] = os.getloadavg()
    print(
        f"{result['cpus']} CPUs, load average {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _fmt(values: list[float], unit: str) -> str:
    s = spread(values)
    return f"median {s['median']:.2f} {unit} (min {s['min']:.2f}, max {s['max']:.2f})"


if __name__ == "__main__":
    sys.exit(main())
