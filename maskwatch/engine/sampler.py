"""Repeat-factor sampling for class imbalance, as Detectron2's ``RepeatFactorTrainingSampler``.

An image is repeated ``r = max(1, sqrt(t / f_c))`` times per epoch for the rarest class ``c`` it contains,
where ``f_c`` is the fraction of images containing ``c``; fractional repeats are drawn stochastically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def repeat_factors(
    image_labels: Sequence[Sequence[int] | np.ndarray], num_classes: int, threshold: float
) -> np.ndarray:
    n = max(len(image_labels), 1)
    freq = np.zeros(num_classes)
    for labs in image_labels:
        for c in set(labs):
            if c >= 0:
                freq[c] += 1
    freq /= n
    class_r = np.array([max(1.0, math.sqrt(threshold / f)) if f > 0 else 1.0 for f in freq])
    return np.array([max([class_r[c] for c in set(labs) if c >= 0], default=1.0) for labs in image_labels])


def epoch_indices(factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's shuffled image indices, each image repeated by its (stochastically rounded) factor."""
    whole = np.floor(factors)
    reps = (whole + (rng.random(len(factors)) < factors - whole)).astype(int)
    idx = np.repeat(np.arange(len(factors)), reps)
    rng.shuffle(idx)
    return idx
