"""How well a label set agrees with itself: the same face drawn twice, in near-duplicate images labelled
separately, compared box to box. It bounds the AP any model can score against those labels: a model is
judged against one drawing, and two drawings of one face disagree by this much.

    python benchmarks/label_agreement.py ../shared/data/ilc-2021 ../shared/data/face-mask-kaggle

Near-duplicates are the groups ``maskwatch data split`` keeps together (difference hash); pairs with the
same aspect ratio are scaled to one size and their faces matched one to one (IoU ≥ 0.3). Pairs whose boxes
are copies of each other (not drawn twice) are left out. "COCO agreement" is the share of face pairs
matching at each IoU threshold 0.50:0.95, averaged as COCO AP averages them, with a 95 % bootstrap interval
over the groups.
"""

from __future__ import annotations

import argparse

import numpy as np

from maskwatch.boxes import box_iou
from maskwatch.data.formats import load_dataset
from maskwatch.data.split import leakage_groups
from maskwatch.engine.confusion import match_image

THRESHOLDS = np.arange(0.5, 0.96, 0.05)


def face_pairs(data: str) -> tuple[list[np.ndarray], int]:
    """IoUs of the faces drawn twice, one array per near-duplicate group, and how many pairs were copies."""
    ds = load_dataset(data)
    per_group, copies = [], 0
    for group in leakage_groups(ds):
        first = ds.records[group[0]]
        found: list[float] = []
        for j in group[1:]:
            other = ds.records[j]
            if abs(first.width / first.height - other.width / other.height) > 0.02:
                continue  # cropped differently: the boxes cannot be compared
            if not len(first.boxes) or not len(other.boxes):
                continue
            boxes = other.boxes * (first.width / other.width)
            if boxes.shape == first.boxes.shape and np.allclose(boxes, first.boxes, atol=1):
                copies += 1
                continue
            ignore = np.zeros(len(first.boxes), dtype=bool)
            gt_match, _ = match_image(first.boxes, ignore, boxes, np.zeros(len(boxes)), 0.3)
            hit = gt_match >= 0
            ious = box_iou(first.boxes[hit], boxes[gt_match[hit]])
            found += list(np.diag(ious))
        if found:
            per_group.append(np.array(found))
    return per_group, copies


def agreement(ious: np.ndarray) -> float:
    return float(np.mean([(ious >= t).mean() for t in THRESHOLDS]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="learning bases (any format maskwatch reads)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the groups")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for data in a.data:
        groups, copies = face_pairs(data)
        if not groups:
            print(f"{data}: no face drawn twice in near-duplicate images")
            continue
        ious = np.concatenate(groups)
        boot = [
            agreement(np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))]))
            for _ in range(a.bootstrap)
        ]
        low, high = np.percentile(boot, [2.5, 97.5])
        print(
            f"{data}: {len(ious)} faces drawn twice in {len(groups)} near-duplicate groups "
            f"({copies} copied pairs left out)\n"
            f"  IoU of the two drawings: median {np.median(ious):.2f}; ≥ 0.5 {np.mean(ious >= 0.5):.0%}, "
            f"≥ 0.75 {np.mean(ious >= 0.75):.0%}, ≥ 0.9 {np.mean(ious >= 0.9):.0%}\n"
            f"  COCO agreement (0.50:0.95) {100 * agreement(ious):.1f} % ({100 * low:.1f}–{100 * high:.1f})"
        )


if __name__ == "__main__":
    main()
