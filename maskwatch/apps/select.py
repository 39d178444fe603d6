"""Which unlabelled images are most worth a person's time (``maskwatch data prelabel --select N --by ...``).

Labelling is the expensive step of growing a learning base, so only frames that teach the model something
are kept. Every image gets three scores in [0, 1], all computed from one model pass and a difference hash:

- **uncertainty**: the chance that at least one of its faces is wrong, ``1 - prod(1 - u_i)``. A face's
  ``u_i`` is the larger of its *class* doubt, ``1 - (p_top - p_second)`` (the margin between its two most
  likely classes: a coin flip between with_mask and no_mask scores 1), and its *threshold* doubt,
  ``1 - |score - conf| / band`` (a face scored near the threshold may be a miss or a false box; the band
  shrinks to the room left above or below ``conf``).
- **rare**: the chance the image holds at least one face of the rare class (``no_mask`` by default, or
  the rarest class of ``--base``), ``1 - prod(1 - p_rare_i)``.
- **diversity**: how unlike the image is to everything already labelled or picked, the Hamming distance
  of 64-bit difference hashes to the nearest one, divided by 32 and capped at 1 (two unrelated images
  differ in about 32 bits). It changes as images are picked, so selection is greedy.

``mixed`` ranks by ``0.4 uncertainty + 0.3 rare + 0.3 diversity``: uncertainty first (it is what
active learning gains most from), the rare class because the reference design's base needed balancing,
diversity so the pick does not collapse onto one scene. An image within 6 bits of a picked or base image
(the near-duplicate rule of :mod:`maskwatch.data.split`) is never picked: consecutive frames of a
static scene teach nothing twice. Ties go to the earlier file, so a selection is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskwatch.boxes import box_iou
from maskwatch.data.split import popcount
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError

STRATEGIES = ("uncertainty", "rare-class", "diversity", "mixed")
WEIGHTS = {"uncertainty": 0.4, "rare": 0.3, "diversity": 0.3}
NEAR_DUPLICATE_BITS = 6  # as data.split's leakage groups
UNRELATED_BITS = 32.0
UNCERTAIN_FACE = 0.5  # a face with u >= this is flagged "uncertain" in selection.csv and the review sheet
SAME_BOX_IOU = 0.7


@dataclass
class FaceScores:
    """Per detection: the margin between its two most likely classes, the rare-class probability and
    its doubt ``u`` (see the module docstring)."""

    margin: np.ndarray
    rare: np.ndarray
    doubt: np.ndarray


def face_scores(
    agnostic: Detections, per_class: Detections, conf: float, band: float, rare_class: str
) -> FaceScores:
    """Class probabilities of each (class-agnostic) face, read off the per-class detections that sit on
    the same box: a detector's per-class output keeps each class's score for one anchor, so the second
    class's score is the probability the face would have had as that class."""
    n, names = len(agnostic), agnostic.class_names
    probs = np.zeros((n, len(names)), dtype=np.float64)
    if n:
        probs[np.arange(n), agnostic.class_id] = agnostic.confidence
        if len(per_class):
            iou = box_iou(agnostic.xyxy.astype(np.float64), per_class.xyxy.astype(np.float64))
            for j in range(len(names)):
                of_j = per_class.class_id == j
                if of_j.any():
                    same = np.where(iou[:, of_j] >= SAME_BOX_IOU, per_class.confidence[of_j][None, :], 0.0)
                    probs[:, j] = np.maximum(probs[:, j], same.max(axis=1))
    ordered = -np.sort(-probs, axis=1)
    margin = ordered[:, 0] - (ordered[:, 1] if probs.shape[1] > 1 else 0.0)
    rare = probs[:, names.index(rare_class)] if rare_class in names else np.zeros(n)
    score = agnostic.confidence.astype(np.float64)
    room = np.where(score >= conf, min(band, 1.0 - conf), min(band, conf))  # 0.99 is sure at --conf 0.95
    near = np.clip(1.0 - np.abs(score - conf) / room, 0.0, 1.0)
    return FaceScores(margin, rare, np.maximum(1.0 - margin, near))


def at_least_one(p: np.ndarray) -> float:
    """Probability that at least one of independent events ``p`` happens."""
    return float(1.0 - np.prod(1.0 - np.clip(p, 0.0, 1.0)))


@dataclass
class Pick:
    """One candidate image's scores and the selection's verdict on it."""

    index: int
    uncertainty: float
    rare: float
    diversity: float = 1.0
    score: float = 0.0
    rank: int | None = None
    reason: str = ""


def _distances(hashes: np.ndarray, h: int) -> np.ndarray:
    return popcount(np.bitwise_xor(hashes, np.uint64(h))) if len(hashes) else np.zeros(0, dtype=np.int64)


def select(
    uncertainty: Sequence[float],
    rare: Sequence[float],
    hashes: Sequence[int],
    n: int,
    by: str = "mixed",
    base_hashes: Sequence[int] = (),
    names: Sequence[str] | None = None,
) -> list[Pick]:
    """Pick ``n`` images greedily; returns a :class:`Pick` per candidate (``rank`` None if not picked)."""
    if by not in STRATEGIES:
        raise MaskwatchError(f"--by {by!r}: choose from {', '.join(STRATEGIES)}")
    if n < 1:
        raise MaskwatchError(f"--select {n}: must be at least 1")
    m = len(hashes)
    names = list(names) if names is not None else [str(i) for i in range(m)]
    picks = [Pick(i, float(uncertainty[i]), float(rare[i])) for i in range(m)]
    all_hashes = np.array(hashes, dtype=np.uint64)
    # nearest labelled-or-picked image per candidate, in bits (64 = nothing to compare with yet)
    nearest = np.full(m, 64, dtype=np.int64)
    nearest_name: list[str] = ["" for _ in range(m)]
    base = np.array(base_hashes, dtype=np.uint64)
    for i in range(m):
        d = _distances(base, hashes[i])
        if len(d):
            nearest[i] = int(d.min())
            nearest_name[i] = "the learning base"
    available = np.ones(m, dtype=bool)
    for rank in range(min(n, m)):
        diversity = np.minimum(nearest / UNRELATED_BITS, 1.0)
        u = np.array([p.uncertainty for p in picks])
        r = np.array([p.rare for p in picks])
        score = {
            "uncertainty": u,
            "rare-class": r,
            "diversity": diversity,
            "mixed": WEIGHTS["uncertainty"] * u + WEIGHTS["rare"] * r + WEIGHTS["diversity"] * diversity,
        }[by]
        eligible = available & (nearest > NEAR_DUPLICATE_BITS)
        if not eligible.any():
            break
        best = int(np.flatnonzero(eligible)[np.argmax(score[eligible])])  # first of equals: deterministic
        p = picks[best]
        p.diversity, p.score, p.rank = float(diversity[best]), float(score[best]), rank + 1
        p.reason = _why(by, p)
        available[best] = False
        d = _distances(all_hashes, hashes[best])
        closer = d < nearest
        for j in np.flatnonzero(closer):
            nearest_name[j] = names[best]
        nearest = np.minimum(nearest, d)
    diversity = np.minimum(nearest / UNRELATED_BITS, 1.0)
    for p in picks:
        if p.rank is None:
            p.diversity = float(diversity[p.index])
            if nearest[p.index] <= NEAR_DUPLICATE_BITS:
                p.reason = f"near-duplicate of {nearest_name[p.index]} ({nearest[p.index]} bits)"
            else:
                p.reason = f"not in the top {n} by {by}"
    return picks


def _why(by: str, p: Pick) -> str:
    parts = {
        "uncertainty": f"uncertain faces ({p.uncertainty:.2f})",
        "rare-class": f"likely holds the rare class ({p.rare:.2f})",
        "diversity": f"unlike the base and earlier picks ({p.diversity:.2f})",
    }
    if by == "mixed":
        contrib = {
            "uncertainty": WEIGHTS["uncertainty"] * p.uncertainty,
            "rare-class": WEIGHTS["rare"] * p.rare,
            "diversity": WEIGHTS["diversity"] * p.diversity,
        }
        top = max(contrib, key=lambda k: contrib[k])
        return f"mixed {p.score:.2f}, mostly {parts[top]}"
    return parts[by]
