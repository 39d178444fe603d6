"""Class merging: ``--merge "without_mask,mask_weared_incorrect=no_mask"`` maps several classes to one.

The reference design's key step was merging the two rare "no proper mask" classes into one. The map is
explicit, validated against the dataset's classes, and recorded in every file maskwatch writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from maskwatch.data.record import Dataset
from maskwatch.errors import MaskwatchError


def parse_merge(specs: Sequence[str] | None) -> dict[str, str]:
    """Parse ``"a,b=c"`` specs (several allowed) into ``{"a": "c", "b": "c"}``."""
    mapping: dict[str, str] = {}
    for spec in specs or ():
        if spec.count("=") != 1:
            raise MaskwatchError(f"--merge {spec!r}: expected 'SRC[,SRC...]=DST'")
        src, dst = (s.strip() for s in spec.split("="))
        sources = [s.strip() for s in src.split(",") if s.strip()]
        if not sources or not dst:
            raise MaskwatchError(f"--merge {spec!r}: expected 'SRC[,SRC...]=DST'")
        for s in sources:
            if s in mapping and mapping[s] != dst:
                raise MaskwatchError(f"--merge: class {s!r} is mapped to both {mapping[s]!r} and {dst!r}")
            mapping[s] = dst
    return mapping


def apply_merge(ds: Dataset, mapping: dict[str, str]) -> Dataset:
    """Rename classes through ``mapping``; a source class the dataset does not have is an error.

    The result's ``merge`` composes the dataset's earlier map with this one, so a base converted twice
    still records which original classes each output class holds.
    """
    if not mapping:
        return ds
    unknown = sorted(set(mapping) - set(ds.classes))
    if unknown:
        where = f"{ds.root}: " if ds.root else ""
        raise MaskwatchError(
            f"{where}--merge names unknown class {unknown[0]!r} (dataset classes: {', '.join(ds.classes)})"
        )
    classes: list[str] = []
    for c in ds.classes:
        new = mapping.get(c, c)
        if new not in classes:
            classes.append(new)
    records = [dataclasses.replace(r, labels=[mapping.get(lab, lab) for lab in r.labels]) for r in ds.records]
    merged = {src: mapping.get(dst, dst) for src, dst in ds.merge.items()}
    for src, dst in mapping.items():
        merged.setdefault(src, dst)
    return Dataset(records, classes, ds.root, dict(ds.splits), merged)
