"""Helpers for tests on video and detect outputs: a development checkpoint, and reading back what a run
wrote (shared by the video, stream, export and safety tests; the fixtures built on them live in
conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import av


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
