"""How long ``maskwatch eval`` takes to score 1000 images from a predictions file (no model).

Not a test: a measurement. It writes an honestly synthetic VOC learning base (1000 plain JPEGs with 1–12
faces each, Kaggle-like sizes, most of them small) and a COCO results file shaped like a detector's output
at a low evaluation threshold (each face found once per class with jitter, plus low-score false alarms),
then times the real command in-process. The target is under 10 s on 2 CPU cores.

    python benchmarks/eval_speed.py [--images 1000] [--dets 30] [--out]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.record import Annotation
from maskwatch.data.voc import write_voc_file
from maskwatch.engine.evaluate import default_workers

CLASSES = ("with_mask", "no_mask")
W, H = 640, 480


def make_data(root: Path, n_images: int, dets_per_image: int, seed: int = 0) -> Path:
    """Write ``root/images``, ``root/annotations`` and ``root/preds.json``; return the predictions path."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    blank = Image.new("RGB", (W, H), (128, 128, 128))
    results = []
    for i in range(n_images):
        n = int(rng.integers(1, 13))
        side = np.clip(rng.lognormal(3.0, 0.7, n), 6, 300)  # median 20 px: most faces are small
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - side[:, None])
        boxes = np.c_[xy, xy + side[:, None] * np.array([1.0, 1.2])].clip(0, [W, H, W, H])
        labels = rng.integers(0, 2, n)
        name = f"img{i:05d}.jpg"
        blank.save(root / "images" / name, quality=50)
        rec = Annotation(root / "images" / name, W, H, boxes, [CLASSES[k] for k in labels])
        write_voc_file(rec, root / "annotations" / f"img{i:05d}.xml", name)
        found = rng.random(n) < 0.8
        for b, k in zip(boxes[found], labels[found], strict=True):
            jitter = b + rng.normal(0, 0.08, 4) * (b[2] - b[0])
            for c in range(len(CLASSES)):  # per-class NMS keeps one box per class guess
                score = rng.uniform(0.5, 1.0) if c == k else rng.uniform(0.01, 0.5)
                x1, y1, x2, y2 = jitter.tolist()
                results.append(
                    {
                        "image_id": i + 1,
                        "category_id": c + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": score,
                    }
                )
        for _ in range(max(0, dets_per_image - 2 * int(found.sum()))):
            x, y, s = rng.uniform(0, W - 60), rng.uniform(0, H - 60), rng.uniform(8, 60)
            results.append(
                {
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [x, y, s, s * 1.2],
                    "score": float(rng.uniform(0.01, 0.6)),
                }
            )
    path = root / "preds.json"
    path.write_text(json.dumps(results))
    return path


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process and its workers) of one in-process command.

    On a machine shared with a training job the wall time depends on the other load; CPU time does not.
    """
    t0, c0 = time.perf_counter(), _cpu()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    if rc:
        raise SystemExit(f"maskwatch {' '.join(argv)} exited with {rc}")
    return time.perf_counter() - t0, _cpu() - c0


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main_benchmark() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--dets", type=int, default=30, help="detections per image (default 30)")
    ap.add_argument("--out", action="store_true", help="also time --out (plots, gallery)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        preds = make_data(root / "data", args.images, args.dets)
        n = len(json.loads(preds.read_text()))
        base = ["-q", "eval", "--data", str(root / "data"), "--predictions", str(preds)]
        runs = {
            "eval": base,
            "eval --min-size 16 --json": [*base, "--min-size", "16", "--json", str(root / "m.json")],
        }
        if args.out:
            runs["eval --min-size 16 --out"] = [*base, "--min-size", "16", "--out", str(root / "out")]
        load, workers = os.getloadavg()[0], default_workers()
        print(f"{args.images} images, {n} detections; load average {load:.1f}, {workers} worker(s)")
        for name, argv in runs.items():
            wall, cpu = timed(argv)
            print(f"{name:<28} {wall:6.2f} s wall  {cpu:6.2f} s CPU")


if __name__ == "__main__":
    main_benchmark()
