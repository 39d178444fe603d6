"""Grouped K-fold cross-validation of a training recipe: one split is smaller than the noise of the
choices made with it, so recipes are compared on the mean (± std) over K held-out folds.

Folds are made of whole leakage groups (:func:`maskwatch.data.split.leakage_groups`: near-duplicates and
frames of one video stay together) and balanced per class, as ``maskwatch data split`` does. The config's
``extra`` sources join every training fold and are never held out (e.g. a second learning base whose
images must not score the first). Each fold trains without validation (its held-out part is not used to
pick an epoch) and its ``last.pt`` is scored on the held-out part. An extra source whose ``split`` folder
has a ``test.txt`` trains on its train and val parts only, and every fold's model is also scored on that
test part with the source's own box style, so each source gets its own numbers. A CV run lives in
``<out>/<name>-cvN/``: ``fold1/`` … ``foldK/`` (ordinary run folders), ``cv.json`` and ``cv.png``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.data.formats import load_dataset
from maskwatch.data.layout import select_split
from maskwatch.data.record import Dataset
from maskwatch.data.split import assign_groups
from maskwatch.engine.evaluate import json_safe
from maskwatch.engine.train import (
    HookBase,
    Trainer,
    TrainingStopped,
    load_sources,
    remove_run,
    train,
    validate,
    with_extras,
)
from maskwatch.engine.train_config import (
    ClassifierConfig,
    SourceConfig,
    TrainConfig,
    check_config,
    config_from_dict,
    given_keys,
    next_run_dir,
    resume_run_dir,
    resumed_config,
)
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, write_json
from maskwatch.models.base import Detector
from maskwatch.models.registry import load_detector
from maskwatch.signals import stop_signals

log = logging.getLogger("maskwatch")

HEADLINE = ("AP", "AP50", "AP75")


def make_folds(ds: Dataset, k: int, seed: int = 0) -> list[list[str]]:
    """``k`` disjoint lists of image stems covering ``ds`` once, whole leakage groups at a time and each
    fold with about 1/k of every class; deterministic for a seed."""
    if k < 2:
        raise MaskwatchError(f"--folds must be at least 2, got {k}")
    if k > len(ds):
        raise MaskwatchError(f"--folds {k}: the learning base has only {len(ds)} image(s)")
    parts = assign_groups(ds, {f"fold{i + 1}": 1 / k for i in range(k)}, seed)
    folds = [parts[f"fold{i + 1}"] for i in range(k)]
    if not all(folds):
        raise MaskwatchError(f"--folds {k}: too few independent image groups for {k} non-empty folds")
    return folds


def fold_row(fold: int, images: int, metrics: dict[str, Any]) -> dict[str, Any]:
    row = {
        "fold": fold,
        "images": images,
        **{k: metrics[k] for k in HEADLINE},
        "per_class": {c: m["AP"] for c, m in metrics["per_class"].items()},
    }
    if "errors" in metrics:
        row["errors"] = metrics["errors"]
    return row


def _stats(values: list[float]) -> tuple[float, float]:
    """Mean and sample std over the folds where the number exists (a class absent from a fold has none)."""
    v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if not v.size:
        return float("nan"), float("nan")
    return round(float(v.mean()), 2), round(float(v.std(ddof=1)) if v.size > 1 else 0.0, 2)


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-fold rows plus mean and std of every headline number and per-class AP; rows that carry the
    held-out parts of extra sources (``sources``) get the same summary per source."""
    classes = list(rows[0]["per_class"]) if rows else []
    mean: dict[str, Any] = {"per_class": {}}
    std: dict[str, Any] = {"per_class": {}}
    for key in HEADLINE:
        mean[key], std[key] = _stats([r[key] for r in rows])
    for c in classes:
        mean["per_class"][c], std["per_class"][c] = _stats([r["per_class"][c] for r in rows])
    summary: dict[str, Any] = {"k": len(rows), "folds": rows, "mean": mean, "std": std}
    if rows and all("errors" in r for r in rows):
        from maskwatch.engine.errors import mean_breakdown

        summary["errors"] = mean_breakdown([r["errors"] for r in rows])
    names = list(rows[0].get("sources", {})) if rows else []
    if names:
        summary["sources"] = {name: summarise([r["sources"][name] for r in rows]) for name in names}
    return summary


def held_out_sources(cfg: TrainConfig) -> list[tuple[SourceConfig, Dataset]]:
    """The test part of each extra source that has one (its ``split`` folder's ``test.txt``)."""
    parts = []
    for s in cfg.extra:
        if s.split and (Path(s.split) / "test.txt").is_file():
            ds = load_dataset(s.data, s.format, s.merge)
            parts.append((s, ds.subset(select_split(Path(s.split), "test"))))
    return parts


def source_name(source: SourceConfig) -> str:
    return Path(source.data).name or source.data


def score_sources(
    det: Detector,
    fold: int,
    parts: list[tuple[SourceConfig, Dataset]],
    batch: int,
    tta: bool = False,
    agnostic: bool = False,
    classifier: bool = True,
    errors: bool = False,
) -> dict[str, dict[str, Any]]:
    """Fold ``fold``'s model on each extra source's held-out part, with that source's box regressor."""
    rows = {}
    first = det.box_style_names()[0]
    for source, ds in parts:
        det.use_box_style(source.box_style or first)
        metrics = validate(det, ds, batch, tta, agnostic, classifier, errors)
        rows[source_name(source)] = fold_row(fold, len(ds), metrics)
    det.use_box_style(first)
    return rows


def rescore_cv(
    cv_dir: str | Path,
    tta: bool = False,
    imgsz: int | None = None,
    agnostic: bool = False,
    classifier: bool | ClassifierConfig = True,
    errors: bool = False,
    folds: Sequence[int] | None = None,
) -> dict[str, Any]:
    """A CV run's finished fold models (``foldN/last.pt``) scored again on the same held-out parts with
    settings that need no detector retraining (test-time augmentation, another input size, a crop
    classifier), so they are judged fold by fold against the CV's own numbers, or class-agnostic (were
    the faces found, whatever their class); returns a summary shaped like ``cv.json``'s.

    ``classifier``: True runs the fold models' own crop classifiers (if they have them), False none, a
    :class:`ClassifierConfig` trains one per fold on that fold's training images (the detector's) first.
    ``errors`` adds where each fold's AP50 goes (:mod:`maskwatch.engine.errors`) and its mean. ``folds``
    (1-based) scores only those, e.g. the one a resumed CV just finished (default: every finished fold).
    """
    cv_dir = Path(cv_dir)
    done = read_cv(cv_dir)
    if not done["folds"]:
        raise MaskwatchError(f"{cv_dir}: no finished fold to score yet")
    cfg = config_from_dict(done["config"])
    ds, extras, classes = load_sources(cfg)
    sources = held_out_sources(cfg)
    finished = [r["fold"] for r in done["folds"]]
    chosen = finished if folds is None else sorted(set(folds))
    if not chosen or not set(chosen) <= set(finished):
        raise MaskwatchError(f"{cv_dir}: folds {list(chosen)} asked, finished folds are {finished}")
    rows: list[dict[str, Any]] = []
    fold_images = done["fold_images"]
    for i in (n - 1 for n in chosen):
        held = fold_images[i]
        det = load_detector(cv_dir / f"fold{i + 1}" / "last.pt", cfg.device)
        det.imgsz = imgsz or det.imgsz
        if isinstance(classifier, ClassifierConfig):
            from maskwatch.engine.classifier import train_classifier_on

            train_ds = with_extras(
                ds.subset([s for j, f in enumerate(fold_images) if j != i for s in f]), extras
            )
            det.classifier = train_classifier_on(
                train_ds,
                classes,
                classifier,
                detector=det,
                init=det.model.state_dict(),
                seed=cfg.seed,
                device=det.device,
                desc=f"fold{i + 1} classifier",
            )
        log.info("fold %d/%d: %d held-out images", i + 1, len(fold_images), len(held))
        use = classifier is not False
        metrics = validate(det, ds.subset(held), cfg.batch, tta, agnostic, use, errors)
        row = fold_row(i + 1, len(held), metrics)
        if sources:
            row["sources"] = score_sources(det, i + 1, sources, cfg.batch, tta, agnostic, use, errors)
        rows.append(row)
    summary = summarise(rows)
    extra: dict[str, Any] = {"tta": tta, "imgsz": imgsz, "agnostic": agnostic}
    if isinstance(classifier, ClassifierConfig):
        extra["classifier"] = dataclasses.asdict(classifier)
    return {**summary, "fold_images": fold_images, **extra}


def cross_validate(
    cfg: TrainConfig, k: int | None, hooks: Sequence[HookBase] = ()
) -> tuple[Path, dict[str, Any]]:
    """Train ``k`` models on grouped folds of ``cfg.data`` (the config's ``split`` is not used) and score
    each on its held-out fold; returns the CV folder and the summary written to ``cv.json``. ``hooks``
    join every fold's training.

    With ``cfg.resume`` (a CV folder, see :func:`resume_cv_config`) a stopped cross-validation goes on
    (``k`` None: its own number of folds): finished folds are kept, the interrupted one continues from its
    ``last.pt``, as an unbroken CV would have run (the same folds, the same seeded draws)."""
    if cfg.resume:  # what cv.json alone can refuse, before the data are read
        cv_dir = Path(str(cfg.resume))
        done = read_cv(cv_dir)
        folds: list[list[str]] = done["fold_images"]
        rows: list[dict[str, Any]] = done["folds"]
        k = len(folds) if k is None else k
        if k != len(folds):
            raise MaskwatchError(f"--resume {cv_dir}: a {len(folds)}-fold cross-validation, not --folds {k}")
        if len(rows) == k:
            raise MaskwatchError(f"--resume {cv_dir}: all {k} folds are finished (cv.json)")
    ds, extras, classes = load_sources(cfg)
    if cfg.resume:
        missing = sorted(set(s for f in folds for s in f) - {r.stem for r in ds})
        if missing:
            raise MaskwatchError(
                f"--resume {cv_dir}: {cfg.data} lacks {len(missing)} of the CV's images "
                f"(e.g. {missing[0]!r}); the learning base changed since the CV started"
            )
        log.info("resuming %s: %d of %d folds finished", cv_dir, len(rows), k)
    else:
        if cfg.split:
            log.info(
                "--folds: the split %s is not used; every image of %s is held out once", cfg.split, cfg.data
            )
        if k is None:
            raise MaskwatchError("--folds K is required to start a cross-validation")
        folds, rows = make_folds(ds, k, cfg.seed), []
        cv_dir = next_run_dir(cfg.out, f"{cfg.name}-cv")
    cfg = dataclasses.replace(cfg, resume=False)
    sources = held_out_sources(cfg)
    fold_cfg = dataclasses.replace(cfg, out=str(cv_dir), name="fold", split=None)
    summary = _save_cv(cv_dir, rows, folds, cfg)  # the plan first: a CV stopped in fold 1 can resume
    with _stopped_cv(cv_dir, rows, len(folds)), stop_signals():
        for i in range(len(rows), len(folds)):
            held = folds[i]
            log.info("fold %d/%d: %d held-out images", i + 1, len(folds), len(held))
            train_ds = with_extras(ds.subset([s for j, f in enumerate(folds) if j != i for s in f]), extras)
            keep = _KeepDetector()
            train(
                _fold_config(fold_cfg, cv_dir / f"fold{i + 1}"),
                datasets=(train_ds, None, classes),
                hooks=[*hooks, keep],
            )
            assert keep.det is not None
            row = fold_row(i + 1, len(held), validate(keep.det, ds.subset(held), cfg.batch))
            if sources:
                row["sources"] = score_sources(keep.det, i + 1, sources, cfg.batch)
            rows.append(row)
            summary = _save_cv(cv_dir, rows, folds, cfg)  # after every fold: a stopped CV keeps its folds
    plot_cv(summary, cv_dir / "cv.png")
    return cv_dir, summary


@contextlib.contextmanager
def _stopped_cv(cv_dir: Path, rows: list[dict[str, Any]], k: int) -> Iterator[None]:
    """A stop in any fold (its training or its scoring) names the CV folder to resume, not the fold's run."""
    try:
        yield
    except KeyboardInterrupt as e:
        kept = e.kept if isinstance(e, TrainingStopped) else f"fold {len(rows) + 1} was being scored"
        what = f"cross-validation stopped, {len(rows)} of {k} folds finished"
        raise TrainingStopped(kept, cv_dir, what) from e


def _fold_config(fold_cfg: TrainConfig, run: Path) -> TrainConfig:
    """A fold's training config: resuming ``run`` when it has a checkpoint, else a new run that lands in
    ``run`` (a folder a killed fold left without a checkpoint holds only files training writes)."""
    if (run / "last.pt").is_file():
        return dataclasses.replace(fold_cfg, resume=str(run))
    if run.exists():
        remove_run(run)
    if next_run_dir(fold_cfg.out, fold_cfg.name) != run:
        raise MaskwatchError(f"{run}: cannot start this fold there (another file is in the way)")
    return fold_cfg


def _save_cv(
    cv_dir: Path, rows: list[dict[str, Any]], folds: list[list[str]], cfg: TrainConfig
) -> dict[str, Any]:
    cv_dir.mkdir(parents=True, exist_ok=True)
    summary = {**summarise(rows), "fold_images": folds, "config": dataclasses.asdict(cfg)}
    write_json(cv_dir / "cv.json", json_safe(summary))
    return summary


def read_cv(cv_dir: str | Path) -> dict[str, Any]:
    """A cross-validation's ``cv.json``: its config, folds and the rows of the folds finished so far."""
    try:
        done = json.loads((Path(cv_dir) / "cv.json").read_text())
        if not isinstance(done, dict) or not {"config", "fold_images", "folds"} <= done.keys():
            raise ValueError("missing config, fold_images or folds")
    except (OSError, ValueError) as e:
        raise MaskwatchError(f"{cv_dir}: not a cross-validation run ({e})") from None
    return done


def resume_cv_config(config_file: str | None, **kwargs: Any) -> TrainConfig:
    """The config of the cross-validation ``--resume`` names (a CV folder, or bare: the latest
    ``<out>/<name>-cvN``): the saved one, where options given again must not differ, except ``workers``
    and ``device``. The schedule cannot change either: every fold of a CV trains the same recipe."""
    given = given_keys(config_file, **kwargs)
    asked = config_from_dict(given)
    run = resume_run_dir(asked.resume, asked.out, f"{asked.name}-cv", marker="cv.json")
    saved = read_cv(run)["config"]
    cfg = resumed_config(saved, given, run)
    if cfg.classifier != config_from_dict(saved).classifier:
        raise MaskwatchError(
            f"--resume {run}: every fold trains the same crop classifier; classifier settings cannot change "
            "in a cross-validation (start a new one)"
        )
    if cfg.epochs != int(saved["epochs"]):
        raise MaskwatchError(
            f"--resume {run}: every fold trains {saved['epochs']} epochs; epochs cannot change in a "
            "cross-validation (start a new one)"
        )
    check_config(cfg)
    return cfg


class _KeepDetector(HookBase):
    """Hands a fold's trained detector back to :func:`cross_validate` (no reload from disk)."""

    det: Detector | None = None

    def after_train(self, t: Trainer) -> None:
        self.det = t.det


def _fmt(mean: float, std: float) -> str:
    return "—" if math.isnan(mean) else f"{mean:.1f} ± {std:.1f}"


def format_cv(summary: dict[str, Any], title: str = "each fold's held-out part") -> str:
    """The per-fold table and the mean ± std line, as printed on the console (and one table per extra
    source scored on its own held-out part)."""
    from maskwatch.engine.report import _pct, pipe_table

    classes = list(summary["mean"]["per_class"])
    header = ["fold", "images", *HEADLINE, *(f"AP {c}" for c in classes)]
    rows: list[list[Any]] = [
        [r["fold"], r["images"], *(_pct(r[k]) for k in HEADLINE), *(_pct(r["per_class"][c]) for c in classes)]
        for r in summary["folds"]
    ]
    m, s = summary["mean"], summary["std"]
    rows.append(
        [
            "mean ± std",
            sum(r["images"] for r in summary["folds"]),
            *(_fmt(m[k], s[k]) for k in HEADLINE),
            *(_fmt(m["per_class"][c], s["per_class"][c]) for c in classes),
        ]
    )
    text = f"{summary['k']}-fold cross-validation (COCO AP %, {title})\n" + pipe_table(header, rows)
    if "errors" in summary:
        text += "\n" + format_cv_errors(summary)
    for name, part in summary.get("sources", {}).items():
        text += "\n" + format_cv(part, f"each fold's model on the held-out test part of {name}")
    return text


def format_cv_errors(summary: dict[str, Any]) -> str:
    """Where AP50 goes, fold by fold and on average: AP50 gained without each kind of false detection."""
    from maskwatch.engine.errors import KINDS
    from maskwatch.engine.report import _pct, pipe_table

    def cells(e: dict[str, Any]) -> list[str]:
        without = [e["false_detections"][k]["AP50_without"] for k in KINDS]
        return [
            _pct(e["AP50"]),
            *(f"{v - e['AP50']:+.1f}" for v in without),
            _pct(e["AP50_without_any_false_detection"]),
            f"{e['missed']} of {e['faces']}",
        ]

    header = ["fold", "AP50", *(f"without {k}" for k in KINDS), "without any", "missed faces"]
    rows = [[r["fold"], *cells(r["errors"])] for r in summary["folds"]] + [
        ["mean", *cells(summary["errors"])]
    ]
    return "Where AP50 goes (IoU 0.5, as maskwatch eval --errors):\n" + pipe_table(header, rows)


def plot_cv(summary: dict[str, Any], out: Path) -> None:
    """``cv.png``: each fold's number as a dot and the mean ± std as a bar, per metric, so the spread
    between folds (what one split hides) is seen at a glance."""
    from maskwatch.engine.report import new_figure

    classes = list(summary["mean"]["per_class"])
    names = [*HEADLINE, *(f"AP {c}" for c in classes)]

    def value(row: dict[str, Any], i: int) -> float:
        v = row[HEADLINE[i]] if i < len(HEADLINE) else row["per_class"][classes[i - len(HEADLINE)]]
        return float("nan") if v is None else float(v)

    means = [value(summary["mean"], i) for i in range(len(names))]
    stds = [value(summary["std"], i) for i in range(len(names))]
    fig = new_figure((1.4 * len(names) + 2, 4))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x, means, yerr=stds, capsize=4, color="#9ecae1", label="mean ± std")
    for xi, m, sd in zip(x, means, stds, strict=True):  # above the error bar, not on it
        if not math.isnan(m):
            ax.text(xi, m + (0 if math.isnan(sd) else sd) + 1.5, _fmt(m, sd), ha="center", fontsize=8)
    k = len(summary["folds"])
    for j, r in enumerate(summary["folds"]):
        dx = 0.5 * (j - (k - 1) / 2) / max(k, 1)  # spread the folds' dots across the bar
        ax.plot(
            x + dx, [value(r, i) for i in range(len(names))], "o", markersize=4, label=f"fold {r['fold']}"
        )
    ax.set_xticks(x, names)
    ax.set(
        ylabel="COCO AP (%) on the held-out fold",
        title=f"{summary['k']}-fold cross-validation",
        ylim=(0, 100),
    )
    ax.legend(fontsize=8, ncols=2)
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format="png")
