"""Leak-free, stratified train/val/test splits.

Two kinds of images must never straddle splits: near-duplicates (same scene re-encoded or re-cropped,
found by a 64-bit difference hash) and frames extracted from the same video (named ``<video>_t<ms>``
by ``maskwatch data frames``). They are grouped first; whole groups are then assigned so that every split
gets its share of each class, the rarest classes placed first so they appear in every split.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from maskwatch.data.record import Dataset
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, progress

SPLITS = ("train", "val", "test")
FRAME_STEM = re.compile(r"^(?P<video>.+)_t\d{8}$")


def dhash(path: Path, size: int = 8) -> int:
    """64-bit difference hash: robust to re-encoding and resizing, cheap to compute."""
    try:
        with Image.open(path) as im:
            im.draft("L", (size * 4, size * 4))
            g = np.asarray(
                ImageOps.exif_transpose(im).convert("L").resize((size + 1, size), Image.Resampling.BILINEAR)
            )
    except OSError as e:
        raise MaskwatchError(f"{path}: unreadable image ({e})") from None
    bits = (g[:, 1:] > g[:, :-1]).flatten()
    return int(sum(1 << i for i, b in enumerate(bits) if b))


_BITS_IN_BYTE = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each ``uint64`` (vectorised: a per-element Python loop made 10 000 images take minutes)."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    return _BITS_IN_BYTE[x.view(np.uint8)].reshape(-1, 8).sum(axis=1, dtype=np.int64)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def leakage_groups(ds: Dataset, max_distance: int = 6, videos: bool = True) -> list[list[int]]:
    """Indices of records that must stay together: near-duplicate images and, with ``videos``, frames of
    one video (without it, the near-duplicates alone: what :mod:`maskwatch.data.duplicates` compares)."""
    n = len(ds)
    uf = _UnionFind(n)
    by_video: dict[str, int] = {}
    for i, r in enumerate(ds.records):
        m = FRAME_STEM.match(r.stem) if videos else None
        if m:
            uf.union(i, by_video.setdefault(m["video"], i))
    hashes = np.array([dhash(r.image) for r in progress(ds.records, "hashing images")], dtype=np.uint64)
    for i in range(n):
        dist = popcount(np.bitwise_xor(hashes[i + 1 :], hashes[i]))
        for j in np.nonzero(dist <= max_distance)[0]:
            uf.union(i, i + 1 + int(j))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(uf.find(i), []).append(i)
    return list(groups.values())


def split_dataset(ds: Dataset, val: float = 0.15, test: float = 0.15, seed: int = 0) -> dict[str, list[str]]:
    """Assign every image stem to train/val/test, deterministically for a seed."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise MaskwatchError(f"--val {val} and --test {test} must be in [0, 1) and sum to less than 1")
    return assign_groups(ds, {"train": 1 - val - test, "val": val, "test": test}, seed)


def assign_groups(ds: Dataset, fractions: dict[str, float], seed: int = 0) -> dict[str, list[str]]:
    """Assign every image stem to one of the named parts (a split, or cross-validation folds), whole
    leakage groups at a time, each part getting about its fraction of every class."""
    parts = list(fractions)
    class_totals = Counter(lab for r in ds for lab in r.labels)
    rarity = sorted(class_totals, key=lambda c: class_totals[c])
    groups = leakage_groups(ds)
    rng = np.random.default_rng(seed)
    permuted = rng.permutation(len(groups))

    def rarest(g: list[int]) -> int:
        labs = {lab for i in g for lab in ds.records[i].labels}
        return min((rarity.index(c) for c in labs), default=len(rarity))

    order = sorted(permuted, key=lambda k: rarest(groups[k]))  # stable: random within each rarity level
    counts: dict[str, Counter[str]] = {s: Counter() for s in parts}
    images = dict.fromkeys(parts, 0)
    assigned: dict[str, list[str]] = {s: [] for s in parts}

    def deficit(s: str, c: str | None) -> tuple[float, float]:
        """How far part ``s`` is below its share of class ``c`` (then of images); no class: images only."""
        behind = fractions[s] * len(ds) - images[s]
        return (behind, 0.0) if c is None else (fractions[s] * class_totals[c] - counts[s][c], behind)

    for k in order:
        g = groups[k]
        labs = Counter(lab for i in g for lab in ds.records[i].labels)
        active = [s for s in parts if fractions[s] > 0]
        rare = min(labs, key=lambda c: class_totals[c]) if labs else None
        target = max(active, key=lambda s: deficit(s, rare))
        counts[target].update(labs)
        images[target] += len(g)
        assigned[target].extend(ds.records[i].stem for i in g)
    return {s: sorted(v) for s, v in assigned.items()}


def write_split(splits: dict[str, list[str]], out: Path) -> None:
    for name, stems in splits.items():
        with atomic_write(out / f"{name}.txt") as f:
            f.write("".join(f"{s}\n" for s in stems))


def read_split_file(path: Path) -> list[str]:
    if not path.is_file():
        raise MaskwatchError(f"{path}: split file not found")
    return [Path(line.strip()).stem for line in path.read_text().splitlines() if line.strip()]


def read_split_dir(directory: Path, names: Iterable[str] = SPLITS) -> dict[str, list[str]]:
    """Read ``train.txt``/``val.txt``/``test.txt`` (whichever exist) from a split folder."""
    if not directory.is_dir():
        raise MaskwatchError(f"{directory}: split folder not found")
    out = {n: read_split_file(directory / f"{n}.txt") for n in names if (directory / f"{n}.txt").is_file()}
    if not out:
        raise MaskwatchError(f"{directory}: no train.txt/val.txt/test.txt split files")
    return out
