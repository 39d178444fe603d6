"""Speed of every architecture on this machine: inference (batch 1) and one training step (batch 2),
at a 640x480 input, random initialisation (speed does not depend on the weights).

    python benchmarks/models.py --threads 2 [--models maskface-mnet retinanet-r50-fpn] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from maskwatch.models.names import MODEL_NAMES
from maskwatch.models.registry import build_detector


def median_seconds(fn, runs: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODEL_NAMES), choices=MODEL_NAMES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(2)]
    boxes = [np.array([[100, 100, 140, 150], [300, 200, 380, 300]], dtype=np.float32)] * 2
    labels = [np.array([0, 1])] * 2
    results = {}
    print(f"640x480, {a.threads} threads, median of {a.runs}")
    print(f"{'model':22s} {'params':>8s} {'infer (b1)':>12s} {'train step (b2)':>16s}")
    for name in a.models:
        det = build_detector(name, ["with_mask", "no_mask"], imgsz=640)
        params = sum(p.numel() for p in det.model.parameters()) / 1e6
        det.model.eval()
        infer = median_seconds(lambda det=det: det.predict(images[:1], conf=0.5), a.runs)
        det.model.train()
        opt = torch.optim.SGD(det.model.parameters(), lr=1e-5)

        def step(det=det, opt=opt) -> None:
            loss = torch.stack(list(det.loss(images, boxes, labels).values())).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()

        train = median_seconds(step, max(2, a.runs // 2))
        results[name] = {
            "params_m": round(params, 2),
            "infer_s": round(infer, 3),
            "train_step_s": round(train, 3),
        }
        print(f"{name:22s} {params:7.2f}M {infer * 1000:10.0f}ms {train:15.2f}s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"threads": a.threads, "input": "640x480", "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
