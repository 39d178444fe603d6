"""Combine several learning bases into one (``maskwatch data merge``).

Class maps are reconciled through ``--merge``: each part applies the part of the map that names its own
classes, and a source class no part has is an error (a typo). Image names must be unique in a base, so a
base whose names clash with earlier ones has *all* its images renamed ``<base>_<name>``: renaming only the
clashing ones would split one video's frames (``<video>_t<ms>``) into two groups and let them leak
across train and test.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from maskwatch.data.classmap import apply_merge
from maskwatch.data.record import Dataset
from maskwatch.errors import MaskwatchError


def _prefix(name: str, taken: set[str], stems: Sequence[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "base"
    candidate, n = base, 2
    while any(f"{candidate}_{s}".lower() in taken for s in stems):
        candidate, n = f"{base}{n}", n + 1
    return candidate


def merge_datasets(parts: Sequence[Dataset], names: Sequence[str], mapping: dict[str, str]) -> Dataset:
    """One dataset holding every part's records, splits and classes (in order of first appearance)."""
    if len(parts) != len(names):
        raise ValueError("one name per part")
    all_classes = {c for ds in parts for c in ds.classes}
    unknown = sorted(set(mapping) - all_classes)
    if unknown:
        known = ", ".join(sorted(all_classes))
        raise MaskwatchError(f"--merge names unknown class {unknown[0]!r} (classes of the inputs: {known})")
    records, classes = [], []
    merge: dict[str, str] = {}
    splits: dict[str, list[str]] = {}
    taken: set[str] = set()
    for ds, name in zip(parts, names, strict=True):
        ds = apply_merge(ds, {k: v for k, v in mapping.items() if k in ds.classes})
        stems = [r.stem for r in ds]
        renamed = {s: s for s in stems}
        if any(s.lower() in taken for s in stems):
            prefix = _prefix(name, taken, stems)
            renamed = {s: f"{prefix}_{s}" for s in stems}
        for r in ds:
            new = renamed[r.stem]
            records.append(
                r if new == r.stem else dataclasses.replace(r, file_name=new + Path(r.name).suffix)
            )
            taken.add(new.lower())
        for split, listed in ds.splits.items():
            splits.setdefault(split, []).extend(renamed[s] for s in listed)
        classes += [c for c in ds.classes if c not in classes]
        for k, v in ds.merge.items():
            merge.setdefault(k, v)
    return Dataset(records, classes, None, splits, merge)
