"""Combine several learning bases into one (``maskwatch data merge``).

Class maps are reconciled through ``--merge``: each part applies the part of the map that names its own
classes, and a source class no part has is an error (a typo). Image names must be unique in a base, so a
base whose names clash with earlier ones has *all* its images renamed ``<base>_<name>``: renaming only the
clashing ones would split one video's frames (``<video>_t<ms>``) into two groups and let them leak
across train and test.

Two mistakes are caught rather than written: an image whose bytes are already in an earlier part
(``merge A A``, or a copy of A) is dropped, not doubled, and counted (a doubled image also lands in two
splits; copies inside one part are left alone); and two parts that each have a class the other lacks
(``no_mask`` beside ``without_mask``) are refused with the ``--merge`` that would reconcile them, since
a detector trained on both would split one kind of face between two labels. ``keep_classes`` merges them
anyway, for classes that really differ.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from maskwatch.data.classmap import apply_merge
from maskwatch.data.record import Dataset
from maskwatch.errors import MaskwatchError
from maskwatch.io import file_hash, progress


def _prefix(name: str, taken: set[str], stems: Sequence[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "base"
    candidate, n = base, 2
    while any(f"{candidate}_{s}".lower() in taken for s in stems):
        candidate, n = f"{base}{n}", n + 1
    return candidate


def _quoted(classes: Sequence[str]) -> str:
    return ", ".join(classes)


def check_classes(parts: Sequence[Dataset], names: Sequence[str]) -> None:
    """Refuse parts that each hold a class the other lacks, naming the ``--merge`` that joins them."""
    for i, a in enumerate(parts):
        for b, bname in zip(parts[i + 1 :], names[i + 1 :], strict=True):
            only_a = [c for c in a.classes if c not in b.classes]
            only_b = [c for c in b.classes if c not in a.classes]
            if only_a and only_b:
                src, dst = (only_a, only_b[0]) if len(only_b) == 1 else (only_b, only_a[0])
                raise MaskwatchError(
                    f"{names[i]} has {_quoted(only_a)} where {bname} has {_quoted(only_b)}: merged as they "
                    f"are, one kind of face gets two labels; if they mean the same add --merge "
                    f"'{','.join(src)}={dst}', or pass --keep-classes to keep them apart"
                )


@dataclass
class MergeResult:
    """The merged base, and how many images were dropped as byte-identical copies of earlier ones."""

    dataset: Dataset
    duplicates: int = 0
    relabelled_duplicates: int = 0


def merge_datasets(
    parts: Sequence[Dataset], names: Sequence[str], mapping: dict[str, str], keep_classes: bool = False
) -> MergeResult:
    """One dataset holding every part's records, splits and classes (in order of first appearance)."""
    if len(parts) != len(names):
        raise ValueError("one name per part")
    all_classes = {c for ds in parts for c in ds.classes}
    unknown = sorted(set(mapping) - all_classes)
    if unknown:
        known = ", ".join(sorted(all_classes))
        raise MaskwatchError(f"--merge names unknown class {unknown[0]!r} (classes of the inputs: {known})")
    parts = [apply_merge(ds, {k: v for k, v in mapping.items() if k in ds.classes}) for ds in parts]
    if not keep_classes:
        check_classes(parts, names)
    records, classes = [], []
    merge: dict[str, str] = {}
    splits: dict[str, list[str]] = {}
    taken: set[str] = set()
    Labelled = tuple[list[str], bytes]
    seen: dict[str, Labelled] = {}
    duplicates = relabelled = 0
    for ds, name in zip(parts, names, strict=True):
        unique = []
        own: dict[str, Labelled] = {}
        for r in progress(ds.records, f"hashing {name}"):
            key = file_hash(r.image)
            labelled = (sorted(r.labels), r.boxes.round(1).tobytes())
            if key in seen:
                duplicates += 1
                relabelled += seen[key] != labelled
                continue
            own.setdefault(key, labelled)  # copies inside one base are its owner's business (Kaggle has 4)
            unique.append(r)
        seen.update(own)
        if len(unique) < len(ds):
            kept = {r.stem for r in unique}
            ds = dataclasses.replace(
                ds, records=unique, splits={k: [s for s in v if s in kept] for k, v in ds.splits.items()}
            )
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
    return MergeResult(Dataset(records, classes, None, splits, merge), duplicates, relabelled)
