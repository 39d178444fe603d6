"""Pre-labelling: run a model over unlabelled images (e.g. frames from ``maskwatch data frames``), keep the
ones most worth labelling (:mod:`maskwatch.apps.select`) and write its detections where LabelImg opens them
directly, so a person corrects boxes instead of drawing them all.

The output folder is LabelImg's own layout: each image with its ``<stem>.xml`` beside it (integer VOC
coordinates) and ``classes.txt`` with the model's classes, so ``labelImg DIR DIR/classes.txt DIR`` opens
it. VOC has no place for scores, so ``prelabel.json`` keeps each box's score and class margin (read by
``maskwatch data review``), and ``selection.csv`` each candidate's scores and why it was or was not picked.
A higher ``conf`` means fewer false boxes to delete, a lower one fewer faces to draw by hand.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maskwatch.apps.select import (
    STRATEGIES,
    UNCERTAIN_FACE,
    FaceScores,
    Pick,
    at_least_one,
    face_scores,
    select,
)
from maskwatch.data.formats import check_destination
from maskwatch.data.layout import write_sidecar
from maskwatch.data.record import Annotation, Dataset
from maskwatch.data.split import dhash
from maskwatch.data.voc import integer_box, write_voc
from maskwatch.defaults import PRELABEL_CONF
from maskwatch.detections import Detections
from maskwatch.engine.predict import predict_images
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_dir, atomic_write, progress, write_json
from maskwatch.models.base import Detector
from maskwatch.predict import Predictor

log = logging.getLogger("maskwatch")

BAND = 0.15  # a face scored within this of --conf is "near the threshold"
SCORES_FILE = "prelabel.json"
SELECTION_FILE = "selection.csv"


def check_options(conf: float, select_n: int | None, by: str, min_face: float = 0.0) -> None:
    """Bad option values, found before a model is loaded."""
    from maskwatch.video.pipeline import check_min_face  # pulls in the video stack: only when checking

    if not 0 < conf < 1:
        raise MaskwatchError(f"--conf {conf}: must be between 0 and 1")
    check_min_face(min_face)
    if select_n is not None and select_n < 1:
        raise MaskwatchError(f"--select {select_n}: must be at least 1")
    if by not in STRATEGIES:
        raise MaskwatchError(f"--by {by!r}: choose from {', '.join(STRATEGIES)}")


def check_output(images: list[Path], out: str | Path) -> None:
    """Refuse an output folder that holds the inputs or files maskwatch did not write, before inference."""
    check_destination(Dataset([Annotation(p, 1, 1) for p in images], []), Path(out))


@dataclass
class Candidate:
    """A readable image, its detections down to ``conf - BAND`` and their scores."""

    path: Path
    width: int
    height: int
    detections: Detections
    faces: FaceScores
    hash: int


@dataclass
class PrelabelResult:
    """The learning base to write (chosen images, boxes at ``conf``), every candidate and its verdict."""

    dataset: Dataset
    candidates: list[Candidate]
    conf: float
    picks: list[Pick] | None = None
    skipped: list[Path] = field(default_factory=list)
    by: str | None = None

    @property
    def near_duplicates(self) -> int:
        """Candidates left out because they nearly repeat a picked or base image."""
        return sum(p.reason.startswith("near-duplicate") for p in self.picks or [])


def rare_class_of(class_names: tuple[str, ...], base: Dataset | None) -> str:
    """The class to look for: the base's rarest class the model knows, else ``no_mask``, else the last."""
    if base is not None:
        counts = Counter(lab for r in base for lab in r.labels)
        known = [c for c in class_names if c in counts] + [c for c in class_names if c not in counts]
        if known:
            return min(known, key=lambda c: counts.get(c, 0))
    return "no_mask" if "no_mask" in class_names else class_names[-1]


def score_images(
    images: list[Path],
    detector: Detector | Predictor,
    conf: float,
    rare_class: str,
    skip_unreadable: bool = True,
    batch: int = 4,
) -> tuple[list[Candidate], list[Path]]:
    """Run the model twice, once class-agnostic (the boxes) and once per class (the second class's
    probability on the same box, for the class margin). An unreadable image inside a folder is skipped and
    counted, as ``detect`` does; one named on its own is an error."""
    low = max(conf - BAND, 0.01)
    boxes = predict_images(
        detector,
        images,
        batch,
        conf=low,
        agnostic=True,
        desc="pre-labelling",
        skip_unreadable=skip_unreadable,
    )
    if not boxes:
        raise MaskwatchError(f"none of the {len(images)} image(s) could be read")
    readable = [p.image for p in boxes]
    per_class = predict_images(detector, readable, batch, conf=0.01, agnostic=False, desc="class margins")
    candidates = [
        Candidate(
            a.image,
            a.width,
            a.height,
            a.detections,
            face_scores(a.detections, p.detections, conf, BAND, rare_class),
            dhash(a.image),
        )
        for a, p in zip(boxes, per_class, strict=True)
    ]
    kept = set(readable)
    return candidates, [Path(p) for p in images if Path(p) not in kept]


def prelabel(
    images: list[Path],
    detector: Detector | Predictor,
    conf: float = PRELABEL_CONF,
    min_face: float = 0.0,
    select_n: int | None = None,
    by: str = "mixed",
    base: Dataset | None = None,
    skip_unreadable: bool = True,
    batch: int = 4,
) -> PrelabelResult:
    """Pre-label ``images`` (all, or the ``select_n`` most worth labelling ``by`` a strategy)."""
    check_options(conf, select_n, by, min_face)
    rare = rare_class_of(detector.class_names, base)
    base_hashes = [dhash(r.image) for r in progress(base.records, "hashing the base")] if base else []
    candidates, skipped = score_images(images, detector, conf, rare, skip_unreadable, batch)
    picks = None
    chosen = list(range(len(candidates)))
    if select_n is not None:
        picks = select(
            [at_least_one(c.faces.doubt) for c in candidates],
            [at_least_one(c.faces.rare) for c in candidates],
            [c.hash for c in candidates],
            select_n,
            by,
            base_hashes,
            [c.path.name for c in candidates],
        )
        ranked = sorted((p for p in picks if p.rank is not None), key=lambda p: p.rank or 0)
        chosen = [p.index for p in ranked]
    records = []
    for i in chosen:
        c = candidates[i]
        det = c.detections.filter(conf=conf, min_size=min_face)
        records.append(Annotation(c.path, c.width, c.height, det.xyxy, det.label_names))
    return PrelabelResult(Dataset(records, list(detector.class_names)), candidates, conf, picks, skipped, by)


def _face_rows(c: Candidate, conf: float) -> list[dict[str, Any]]:
    keep = c.detections.confidence >= conf
    return [
        {
            "box": integer_box(c.detections.xyxy[i], c.width, c.height),
            "label": c.detections.class_names[c.detections.class_id[i]],
            "score": round(float(c.detections.confidence[i]), 4),
            "margin": round(float(c.faces.margin[i]), 4),
            "uncertain": bool(c.faces.doubt[i] >= UNCERTAIN_FACE),
            "written": bool(keep[i]),
        }
        for i in range(len(c.detections))
    ]


def selection_csv(result: PrelabelResult) -> str:
    """One row per candidate: picked ones first in pick order, then the rest in file order."""
    assert result.picks is not None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["rank", "image", "score", "uncertainty", "rare", "diversity", "faces", "uncertain_faces", "reason"]
    )
    order = sorted(result.picks, key=lambda p: (p.rank is None, p.rank or 0, p.index))
    for p in order:
        c = result.candidates[p.index]
        faces = int((c.detections.confidence >= result.conf).sum())
        doubtful = int((c.faces.doubt >= UNCERTAIN_FACE).sum())
        w.writerow(
            [
                p.rank or "",
                c.path.name,
                f"{p.score:.4f}" if p.rank else "",
                f"{p.uncertainty:.4f}",
                f"{p.rare:.4f}",
                f"{p.diversity:.4f}",
                faces,
                doubtful,
                p.reason,
            ]
        )
    return buf.getvalue()


def write_prelabel(result: PrelabelResult, out: str | Path, copy_images: bool = False) -> Path:
    """Write the LabelImg folder, ``prelabel.json`` and (with a selection) ``selection.csv``, atomically."""
    out = Path(out)
    ds = result.dataset
    check_destination(ds, out)
    chosen = {r.image for r in ds}
    scores = {
        "conf": result.conf,
        "classes": list(ds.classes),
        "images": {c.path.name: _face_rows(c, result.conf) for c in result.candidates if c.path in chosen},
    }
    with atomic_dir(out) as tmp:
        write_voc(ds, tmp, copy_images, beside=True, folder=out.name)
        write_sidecar(tmp, ds, "voc")
        write_json(tmp / SCORES_FILE, scores)
        if result.picks is not None:
            with atomic_write(tmp / SELECTION_FILE) as f:
                f.write(selection_csv(result))
    return out
