"""The annotation record and the dataset type every format reader produces and every writer consumes.

Boxes are absolute pixel ``x1, y1, x2, y2`` floats, exactly as the source wrote them (VOC coordinates are
not shifted by a pixel), so any format round-trips to the same pixels.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskwatch.detections import Detections

log = logging.getLogger("maskwatch")

#: A box with this label marks a region training neither learns as a face nor as background (KITTI's
#: ``DontCare``): an unlabelled face in a sparsely labelled crowd, a face too blurred to classify.
IGNORE_CLASS = "ignore"


@dataclass(frozen=True)
class SourceTag:
    """How training treats the images of one learning base (set from ``SourceConfig`` for extra sources).

    ``box_style``: the style its boxes are drawn in ("" = the main base's); ``weight``: how often its images
    are drawn per epoch; ``negatives``: whether its unboxed regions teach "background" (off for label sets
    that leave faces in crowds unboxed).
    """

    box_style: str = ""
    weight: float = 1.0
    negatives: bool = True


@dataclass
class Annotation:
    """One image and its labelled boxes.

    ``file_name`` is the name the image has inside the learning base when it differs from the source
    file's name (``maskwatch data merge`` renames clashing images); writers and splits use :attr:`name`.
    """

    image: Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.float64))
    labels: list[str] = field(default_factory=list)
    file_name: str | None = None
    source: SourceTag = field(default_factory=lambda: SourceTag())  # how training treats its learning base

    def __post_init__(self) -> None:
        self.image = Path(self.image)
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = list(self.labels)
        if len(self.labels) != len(self.boxes):
            raise ValueError(f"{self.image}: {len(self.boxes)} boxes but {len(self.labels)} labels")

    @property
    def name(self) -> str:
        """The image's file name in the learning base (the source name unless renamed)."""
        return self.file_name or self.image.name

    @property
    def stem(self) -> str:
        return Path(self.name).stem

    def to_detections(self, class_names: Sequence[str]) -> Detections:
        """The ground truth as :class:`~maskwatch.detections.Detections` (confidence 1), so evaluation,
        COCO export and drawing treat labelled and predicted boxes alike (supervision's
        ``DetectionDataset``, detectron2's ``Instances``). A label outside ``class_names`` is an error."""
        class_names = tuple(class_names)
        return Detections(
            self.boxes, np.ones(len(self.boxes)), class_lookup(self.labels, class_names), class_names
        )

    def scored(self, class_names: Sequence[str], min_size: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Each box's class index in ``class_names`` and whether evaluation ignores it.

        Ignored: faces below the range of interest (``min_size``) and ``ignore`` regions, unless ``ignore``
        is itself an evaluated class; an ignore region's index is -1 (it counts for no class).
        """
        regions = IGNORE_CLASS not in class_names
        region = np.array([regions and lab == IGNORE_CLASS for lab in self.labels], dtype=bool)
        ids = np.full(len(self.labels), -1, dtype=np.int64)
        ids[~region] = class_lookup(np.asarray(self.labels, dtype=object)[~region].tolist(), class_names)
        return ids, small_box_mask(self.boxes, min_size) | region

    def clipped(self) -> tuple[Annotation, int]:
        """Clip boxes to the image and drop degenerate ones; return the result and how many were dropped.

        Real annotation tools write ``xmax = width + 1`` and zero-size boxes; readers call this so every
        later stage sees valid boxes.
        """
        b = self.boxes.copy()
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, self.width)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, self.height)
        keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1]) & np.isfinite(b).all(axis=1)
        labels = [lab for lab, k in zip(self.labels, keep, strict=True) if k]
        return dataclasses.replace(self, boxes=b[keep], labels=labels), int((~keep).sum())


@dataclass
class Dataset:
    """A learning base: records, the ordered class names, and named splits (lists of image stems).

    ``merge`` is the class map applied to the source (``{"without_mask": "no_mask", ...}``), carried along
    so that every file written from this dataset can record it.
    """

    records: list[Annotation]
    classes: list[str]
    root: Path | None = None
    splits: dict[str, list[str]] = field(default_factory=dict)
    merge: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self.records)

    @property
    def num_boxes(self) -> int:
        return sum(len(r.boxes) for r in self.records)

    def box_style_ids(self, box_styles: Sequence[str]) -> list[int]:
        """Each record's box style as an index into a model's ``box_styles``: an untagged record is in the
        main learning base's style, the model's first."""
        return [box_styles.index(r.source.box_style) if r.source.box_style else 0 for r in self.records]

    def subset(self, stems: Sequence[str]) -> Dataset:
        """The records whose image stem is in ``stems``, in the order of ``stems``."""
        by_stem = {r.stem: r for r in self.records}
        missing = [s for s in stems if s not in by_stem]
        if missing:
            from maskwatch.errors import MaskwatchError

            raise MaskwatchError(
                f"split names {len(missing)} image(s) not in the dataset, e.g. {missing[0]!r}"
            )
        return Dataset([by_stem[s] for s in stems], list(self.classes), self.root, {}, dict(self.merge))

    def fingerprint(self) -> str:
        """A short hash of the boxes, labels and image names, stored in checkpoints to tie them to data."""
        h = hashlib.sha1()
        for r in sorted(self.records, key=lambda r: r.image.name):
            h.update(r.image.name.encode())
            h.update(np.round(r.boxes, 2).tobytes())
            h.update("|".join(r.labels).encode())
        return h.hexdigest()[:16]


def class_lookup(names: Sequence[str], class_names: Sequence[str]) -> np.ndarray:
    """Index of each of ``names`` in ``class_names``: the one place a class name becomes a number.

    Results, ground truth and confusion matrices all go through it, so a name the evaluated class list lacks
    is the same one-line error everywhere instead of a silent -1 or a KeyError.
    """
    index = {n: i for i, n in enumerate(class_names)}
    unknown = [n for n in dict.fromkeys(names) if n not in index]
    if unknown:
        from maskwatch.errors import MaskwatchError

        raise MaskwatchError(
            f"class {unknown[0]!r} is not one of the evaluated classes ({', '.join(class_names)}); "
            "map it with --merge"
        )
    return np.array([index[n] for n in names], dtype=np.int64)


def small_box_mask(boxes: np.ndarray, min_size: float) -> np.ndarray:
    """Boxes (N, 4 xyxy) whose shorter side is below ``min_size`` pixels: the range-of-interest test."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) < min_size


def finalize_records(records: list[Annotation], source: str) -> list[Annotation]:
    """Clip every record and warn once, with a count, about the degenerate boxes dropped."""
    out, dropped = [], 0
    for r in records:
        c, d = r.clipped()
        out.append(c)
        dropped += d
    if dropped:
        log.warning(
            "%s: dropped %d degenerate box(es) (zero or negative size after clipping)", source, dropped
        )
    return out


def classes_in_order(records: Sequence[Annotation], known: Sequence[str] = ()) -> list[str]:
    """``known`` first, then every other label in order of first appearance."""
    classes = list(known)
    seen = set(classes)
    for r in records:
        for lab in r.labels:
            if lab not in seen:
                seen.add(lab)
                classes.append(lab)
    return classes
