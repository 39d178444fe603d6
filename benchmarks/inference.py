"""Inference speed of a detector: images per second at a given input size, batch 1, on this machine.

    python benchmarks/inference.py --model maskface-mnet --imgsz 640 --threads 2
    python benchmarks/inference.py --data ../shared/data/face-mask-kaggle \
        --split splits/face-mask-kaggle/test.txt

With ``--data`` it times real images (letterboxed to ``--imgsz`` on the long side, their own aspect);
otherwise a square ``imgsz`` image and a 16:9 one. Reports the median over ``--runs`` after warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from maskwatch.io import load_image
from maskwatch.models.registry import load_detector
from maskwatch.predict import load_predictor


def time_images(predict, images: list[np.ndarray], runs: int, warmup: int = 5) -> float:
    """Median seconds per image of the whole call: resize, network, decoding and NMS."""
    for im in images[:warmup]:
        predict(im)
    times = []
    for i in range(runs):
        im = images[i % len(images)]
        t = time.perf_counter()
        predict(im)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="maskface-mnet")
    p.add_argument("--imgsz", type=int, default=640)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--backend",
        default="eager",
        choices=["eager", "torch", "onnx"],
        help="eager: Detector.predict; torch/onnx: the video pipeline's predictors (fused, onnxruntime)",
    )
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--data", help="learning base whose images are timed")
    p.add_argument("--split", help="stems file selecting images of --data")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.backend == "eager":
        det = load_detector(a.model)
        det.imgsz = a.imgsz

        def predict(im: np.ndarray) -> None:
            det.predict([im], conf=0.5)

        name = det.arch
    else:
        pred = load_predictor(a.model, a.backend, imgsz=a.imgsz, threads=a.threads)

        def predict(im: np.ndarray) -> None:
            pred.infer([pred.prepare(im)], conf=0.5)

        name = pred.name
    cases: dict[str, list[np.ndarray]] = {}
    if a.data:
        from pathlib import Path

        from maskwatch.data.formats import load_dataset
        from maskwatch.data.split import read_split_file

        ds = load_dataset(a.data)
        if a.split:
            ds = ds.subset(read_split_file(Path(a.split)))
        cases["dataset images"] = [load_image(r.image) for r in ds.records[:50]]
    rng = np.random.default_rng(0)
    cases[f"{a.imgsz}x{a.imgsz}"] = [rng.integers(0, 255, (a.imgsz, a.imgsz, 3), dtype=np.uint8)]
    cases["1280x720 video frame"] = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)]
    results = {}
    print(f"{name} ({a.backend}) at imgsz {a.imgsz}, {a.threads} threads, batch 1, median of {a.runs}")
    for name, images in cases.items():
        sec = time_images(predict, images, a.runs)
        results[name] = {"ms": round(sec * 1000, 2), "images_per_s": round(1 / sec, 1)}
        print(f"  {name:22s} {sec * 1000:7.1f} ms  {1 / sec:6.1f} img/s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {"model": a.model, "imgsz": a.imgsz, "threads": a.threads, "results": results}, f, indent=2
            )


if __name__ == "__main__":
    main()
