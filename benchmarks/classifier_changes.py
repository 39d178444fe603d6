"""What the crop classifier changes, face by face, at the operating point: a model run with and without its
second stage on held-out labelled images, each labelled face (≥ ``--min-size`` px) scored right, wrong
class or missed both ways, and a contact sheet of the faces whose outcome changed
(``runs/classifier-changes.jpg``; crops of the learning base: not for the repository).

    python benchmarks/classifier_changes.py --data ../shared/data/face-mask-kaggle \\
        --merge "without_mask,mask_weared_incorrect=no_mask" --split splits/face-mask-kaggle/test.txt

Green caption: the second stage made the face right; red: it made it wrong. Default model: the built-in.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from maskwatch.data.formats import load_dataset
from maskwatch.data.layout import select_split
from maskwatch.defaults import CONF
from maskwatch.detections import Detections
from maskwatch.engine.confusion import match_image
from maskwatch.io import load_image, write_bgr_image
from maskwatch.models.crops import square_crop
from maskwatch.predict import load_predictor

TILE = 128


def outcome(truth: str, found: Detections, det: int) -> str:
    if det < 0:
        return "missed"
    return "right" if found.class_names[found.class_id[det]] == truth else "wrong class"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--merge", action="append", default=[])
    ap.add_argument("--split", help="a stems file or split folder (its test.txt)")
    ap.add_argument("--model", help="default: the built-in model")
    ap.add_argument("--box-style")
    ap.add_argument("--conf", type=float, default=CONF)
    ap.add_argument("--min-size", type=float, default=16)
    ap.add_argument("--out", default="runs/classifier-changes.jpg")
    ap.add_argument("--tiles", type=int, default=24, help="faces on the contact sheet")
    a = ap.parse_args()
    ds = load_dataset(a.data, "auto", a.merge)
    if a.split:
        ds = ds.subset(select_split(Path(a.split), "test"))
    runs = {
        flag: load_predictor(a.model, box_style=a.box_style, classifier=flag, threads=2)
        for flag in (False, True)
    }
    tally: Counter[tuple[str, str]] = Counter()
    changed: list[tuple[np.ndarray, str, str, str]] = []
    for r in ds:
        image = load_image(r.image)
        found = {flag: p.predict([image], a.conf)[0] for flag, p in runs.items()}
        keep = np.minimum(r.boxes[:, 2] - r.boxes[:, 0], r.boxes[:, 3] - r.boxes[:, 1]) >= a.min_size
        gt, labels = r.boxes[keep], [lab for lab, k in zip(r.labels, keep, strict=True) if k]
        ends = {}
        for flag, d in found.items():
            gt_match, _ = match_image(gt, np.zeros(len(gt), bool), d.xyxy, d.confidence, 0.5)
            ends[flag] = [outcome(lab, d, int(m)) for lab, m in zip(labels, gt_match, strict=True)]
        for i, (before, after) in enumerate(zip(ends[False], ends[True], strict=True)):
            tally[(before, after)] += 1
            if before != after:
                changed.append((square_crop(image, gt[i], TILE, 1.5), labels[i], before, after))
    faces = sum(tally.values())
    print(f"{len(ds)} images, {faces} labelled faces >= {a.min_size:g} px, score >= {a.conf}:")
    for name in ("right", "wrong class", "missed"):
        print(
            f"  {name:12s} detector alone {sum(v for (b, _), v in tally.items() if b == name):4d}"
            f"   with the classifier {sum(v for (_, c), v in tally.items() if c == name):4d}"
        )
    for (before, after), n in sorted(tally.items()):
        if before != after:
            print(f"  {before} -> {after}: {n}")
    fixed = [c for c in changed if c[3] == "right"]
    broken = [c for c in changed if c[2] == "right"]
    shown = (fixed[: a.tiles // 2] + broken[: a.tiles // 2])[: a.tiles]
    if not shown:
        print("no face changed outcome")
        return
    cols = min(8, len(shown))
    rows = -(-len(shown) // cols)
    sheet = np.full((rows * (TILE + 30), cols * TILE, 3), 255, np.uint8)
    for k, (crop, truth, before, after) in enumerate(shown):
        y, x = (k // cols) * (TILE + 30), (k % cols) * TILE
        sheet[y : y + TILE, x : x + TILE] = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        colour = (40, 160, 40) if after == "right" else (40, 40, 200)
        cv2.putText(
            sheet, f"truth {truth}", (x + 3, y + TILE + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 0, 0), 1
        )
        cv2.putText(
            sheet, f"{before} > {after}", (x + 3, y + TILE + 25), cv2.FONT_HERSHEY_SIMPLEX, 0.33, colour, 1
        )
    write_bgr_image(a.out, sheet, quality=88)
    print(f"wrote {a.out}: {len(fixed)} faces made right, {len(broken)} made wrong ({len(shown)} shown)")


if __name__ == "__main__":
    main()
