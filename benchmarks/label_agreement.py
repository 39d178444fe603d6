"""How well a label set agrees with itself, and the AP that bounds for any model judged against it.

    python benchmarks/label_agreement.py ../shared/data/ilc-2021 ../shared/data/face-mask-kaggle

The faces a set draws twice, in near-duplicate images labelled separately, are compared box to box
(:func:`maskwatch.data.duplicates.find_duplicates`, what ``maskwatch data duplicates`` prints; pairs whose
labels were copied are left out). Two numbers follow, each with a 95 % bootstrap interval over the
near-duplicate groups:

- **agreement**: one drawing scored against the other as COCO scores a model (the share of face pairs
  matching at each IoU threshold 0.50:0.95, averaged);
- **ceiling**: the AP an ideal model would score against one drawing: it finds every face, gives every
  class right and draws the labellers' mean box, while the label it is judged against scatters around
  that box side by side as one labeller does (the spread measured on the pairs, sd of their difference
  over sqrt(2)). Simulated on the measured faces' own shapes. Given as a range: the ideal model's
  scores ranking its best-placed boxes first (AP at each threshold = the share of faces it matches
  there) or telling them nothing (that share squared: precision = recall all along).
"""

from __future__ import annotations

import argparse

import numpy as np

from maskwatch.boxes import paired_iou
from maskwatch.data.duplicates import DuplicateReport, face_scale, find_duplicates, side_spread
from maskwatch.data.formats import load_dataset

THRESHOLDS = np.arange(0.5, 0.96, 0.05)
DRAWS = 50  # simulated labels per measured face


def faces_by_group(report: DuplicateReport) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per near-duplicate group: the IoUs of its faces drawn twice and their two boxes (N×4 each)."""
    group_of = {i: g for g, members in enumerate(report.groups) for i in members}
    out: dict[int, list] = {}
    for c in report.copies:
        if not c.copied:
            out.setdefault(group_of[c.a], []).extend(c.faces)
    return [
        (np.array([f.iou for f in fs]), np.stack([f.box_a for f in fs]), np.stack([f.box_b for f in fs]))
        for fs in out.values()
    ]


def agreement(ious: np.ndarray) -> float:
    return float(np.mean([(ious >= t).mean() for t in THRESHOLDS]))


def ceiling(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """The ideal model's AP with scores that rank its best-placed boxes first, with scores blind to
    placement, and the shares of faces it matches at IoU 0.5 and 0.75 (see the module docstring)."""
    scale, spread = face_scale(a, b), side_spread(a, b)
    mean = (a + b) / 2
    model = np.repeat(mean, DRAWS, axis=0)
    label = model + rng.normal(0.0, 1.0, model.shape) * spread * np.repeat(scale, DRAWS, axis=0)
    ious = paired_iou(model, label)
    share = np.array([(ious >= t).mean() for t in THRESHOLDS])
    return float(share.mean()), float((share**2).mean()), float(share[0]), float(share[5])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="+", help="learning bases (any format maskwatch reads)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the groups")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for data in a.data:
        groups = faces_by_group(find_duplicates(load_dataset(data)))
        if not groups:
            print(f"{data}: no face drawn twice in near-duplicate images")
            continue
        ious = np.concatenate([g[0] for g in groups])
        boxes_a = np.concatenate([g[1] for g in groups])
        boxes_b = np.concatenate([g[2] for g in groups])
        agree_boot, ceil_boot = [], []
        for _ in range(a.bootstrap):
            pick = rng.integers(0, len(groups), len(groups))
            agree_boot.append(agreement(np.concatenate([groups[i][0] for i in pick])))
            ceil_boot.append(
                ceiling(
                    np.concatenate([groups[i][1] for i in pick]),
                    np.concatenate([groups[i][2] for i in pick]),
                    rng,
                )
            )
        lo_a, hi_a = np.percentile(agree_boot, [2.5, 97.5])
        best, blind, ap50, ap75 = ceiling(boxes_a, boxes_b, rng)
        cb = np.array(ceil_boot)
        lo_best, hi_best = np.percentile(cb[:, 0], [2.5, 97.5])
        lo_blind, hi_blind = np.percentile(cb[:, 1], [2.5, 97.5])
        print(
            f"{data}: {len(ious)} faces drawn twice in {len(groups)} near-duplicate groups\n"
            f"  IoU of the two drawings: median {np.median(ious):.2f}; ≥ 0.5 {np.mean(ious >= 0.5):.0%}, "
            f"≥ 0.75 {np.mean(ious >= 0.75):.0%}, ≥ 0.9 {np.mean(ious >= 0.9):.0%}\n"
            f"  agreement, one drawing scored against the other (0.50:0.95): {100 * agreement(ious):.1f} % "
            f"({100 * lo_a:.1f}–{100 * hi_a:.1f})\n"
            f"  ceiling, an ideal model against one drawing: AP {100 * blind:.1f} ({100 * lo_blind:.1f}–"
            f"{100 * hi_blind:.1f}) to {100 * best:.1f} ({100 * lo_best:.1f}–{100 * hi_best:.1f}); "
            f"its faces matched at IoU 0.5: {ap50:.0%}, at 0.75: {ap75:.0%}"
        )


if __name__ == "__main__":
    main()
