"""The training loop: flat and readable, in the spirit of torchvision's detection references.

A run lives in ``runs/train/<name>N/``: ``config.yaml`` (the whole resolved :class:`TrainConfig`),
``metrics.jsonl`` (losses per step, COCO AP on the validation split per epoch), ``results.png`` (their
curves), ``last.pt`` (with optimizer state, for ``--resume``) and ``best.pt``. Every random draw is seeded
from (seed, epoch, sample), so a resumed run replays exactly what an unbroken one would have done.

:func:`train` sets up; :func:`train_one_epoch` steps the optimizer; :func:`validate` scores the epoch;
logging, checkpoints, the plot and user callbacks are :class:`HookBase` hooks run around them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from maskwatch.data.formats import load_dataset
from maskwatch.data.layout import read_splits
from maskwatch.data.record import IGNORE_CLASS, Dataset, SourceTag
from maskwatch.engine.augment import IGNORE, AugmentConfig, augment
from maskwatch.engine.ema import ModelEMA
from maskwatch.engine.evaluate import FACE, as_faces, evaluate, predict_dataset
from maskwatch.engine.sampler import epoch_indices, repeat_factors
from maskwatch.engine.train_config import (
    OptimizerConfig,
    SourceConfig,
    TrainConfig,
    check_config,
    check_resumable,
    classifier_epochs,
    classifier_left,
    has_classifier,
    make_config,
    next_run_dir,
    parse_overrides,  # noqa: F401 - re-exported: the training API in one import
)
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, load_image
from maskwatch.models.base import Detector, read_checkpoint, update_checkpoint
from maskwatch.models.registry import build_detector
from maskwatch.signals import stop_signals

log = logging.getLogger("maskwatch")


# One augmented training sample: image, boxes, label indices, box style index, unboxed-is-background flag.
Sample = tuple[np.ndarray, np.ndarray, np.ndarray, int, bool]


class TrainSet:
    """Images held in memory (learning bases here are small) with label indices per box."""

    def __init__(
        self,
        ds: Dataset,
        class_names: list[str],
        aug: AugmentConfig,
        seed: int,
        imgsz: int = 640,
        box_styles: Sequence[str] = ("default",),
    ) -> None:
        index = {c: i for i, c in enumerate(class_names)} | {IGNORE_CLASS: IGNORE}
        self.styles = ds.box_style_ids(box_styles)
        self.negatives = [r.source.negatives for r in ds.records]
        self.images = [load_image(r.image) for r in tqdm(ds.records, desc="loading images", leave=False)]
        self.boxes = [r.boxes.astype(np.float32) for r in ds.records]
        self.labels: list[Any] = [
            np.array([index[lab] for lab in r.labels], dtype=np.int64) for r in ds.records
        ]
        self.aug, self.seed, self.imgsz = aug, seed, imgsz

    def sample(self, i: int, epoch: int, position: int) -> Sample:
        rng = np.random.default_rng((self.seed, epoch, position))
        image, boxes, labels = augment(
            self.images[i], self.boxes[i], self.labels[i], self.aug, rng, self.imgsz
        )
        return image, boxes, labels, self.styles[i], self.negatives[i]


class EpochSamples(torch.utils.data.Dataset):
    """One epoch's augmented samples by position, for a DataLoader whose ``--workers`` augment in parallel.

    A sample depends only on (seed, epoch, position), so the stream is the same for any number of workers.
    """

    def __init__(self, data: TrainSet, order: np.ndarray, epoch: int) -> None:
        self.data, self.order, self.epoch = data, order, epoch

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> Sample:
        return self.data.sample(int(self.order[k]), self.epoch, k)


def _as_lists(samples: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(map(list, zip(*samples, strict=True)))


def load_sources(cfg: TrainConfig) -> tuple[Dataset, list[Dataset], list[str]]:
    """The main learning base, the extra sources (training only) and the model's class order."""
    ds = load_dataset(cfg.data, cfg.format, cfg.merge)
    extras = [load_extra(s) for s in cfg.extra]
    classes = list(cfg.classes or [c for c in ds.classes if c != IGNORE_CLASS])
    for source, d in [(cfg.data, ds), *((s.data, e) for s, e in zip(cfg.extra, extras, strict=True))]:
        unknown = sorted(set(d.classes) - set(classes) - {IGNORE_CLASS})
        if unknown:
            raise MaskwatchError(
                f"{source}: dataset class {unknown[0]!r} is not in classes {classes}; map it with --merge"
            )
    return ds, extras, classes


def load_extra(source: SourceConfig) -> Dataset:
    """An extra learning base: the images its ``split`` names (a folder: train and val, so its test part
    stays held out for scoring it), each record tagged with the source's box style."""
    ds = load_dataset(source.data, source.format, source.merge)
    if source.split:
        path = Path(source.split)
        parts = read_splits(path)
        stems = (
            [s for name in ("train", "val") for s in parts.get(name, [])]
            if path.is_dir()
            else [s for listed in parts.values() for s in listed]
        )
        if not stems:
            raise MaskwatchError(f"{path}: no train.txt or val.txt to train {source.data} on")
        ds = ds.subset(stems)
    tag = SourceTag(source.box_style, source.weight, source.negatives)
    for r in ds.records:
        r.source = tag
    return ds


def with_extras(train: Dataset, extras: Sequence[Dataset]) -> Dataset:
    """The training set plus every extra source (their records appended, the main base's classes)."""
    if not extras:
        return train
    records = [r for d in (train, *extras) for r in d.records]
    return Dataset(records, list(train.classes), train.root, {}, dict(train.merge))


def split_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset | None, list[str]]:
    """Train (plus the extra sources) and validation sets; without a val split (e.g. a final fit on
    train+val) there is no validation and best.pt is the last epoch."""
    ds, extras, classes = load_sources(cfg)
    if cfg.split:
        splits = read_splits(Path(cfg.split))
    elif ds.splits:
        splits = ds.splits
    else:
        raise MaskwatchError("no split: pass --split DIR (make one with 'maskwatch data split')")
    if "train" not in splits:
        raise MaskwatchError("the split needs a train.txt")
    if "val" not in splits:
        log.warning("no val split: training without validation; best.pt will be the last epoch")
    leak = set(splits["train"]) & (set(splits.get("val", [])) | set(splits.get("test", [])))
    if leak:
        raise MaskwatchError(
            f"split leaks: {len(leak)} image(s) in train and val/test, e.g. {sorted(leak)[0]!r}"
        )
    train = with_extras(ds.subset(splits["train"]), extras)
    val = ds.subset(splits["val"]) if "val" in splits else None
    if not train.num_boxes:
        raise MaskwatchError("the training split has no boxes")
    return train, val, classes


def sampling_factors(
    ds: Dataset, labels: Sequence[np.ndarray], num_classes: int, repeat_threshold: float
) -> np.ndarray:
    """How often each image is drawn per epoch: its rare-class repeat factor times its source's weight."""
    base = (
        repeat_factors(labels, num_classes, repeat_threshold)
        if repeat_threshold > 0
        else np.ones(len(labels))
    )
    return base * np.array([r.source.weight for r in ds.records])


def validate(
    det: Detector,
    val: Dataset,
    batch: int,
    tta: bool = False,
    agnostic: bool = False,
    classifier: bool = True,
    errors: bool = False,
) -> dict[str, Any]:
    """COCO metrics of the detector on a held-out set (the epoch's validation, or a CV fold), optionally
    behind the test-time augmentation, or class-agnostic (:func:`as_faces`); behind its crop classifier
    if it has one, unless ``classifier`` is False; with ``errors``, where AP50 goes (``"errors"``)."""
    from maskwatch.predict import with_stages

    det.model.eval()
    model = with_stages(det, tta, classifier)
    found = predict_dataset(model, val, batch, progress=False)
    classes: Sequence[str] = det.class_names
    if agnostic:
        val, found = as_faces(val, found)
        classes = (FACE,)
    metrics = evaluate(val, found, classes)
    if errors:
        from maskwatch.engine.errors import error_breakdown

        metrics["errors"] = error_breakdown(val, found, classes).to_json()
    return metrics


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to ``schedule.final_lr`` of the base rate."""
    lr, warmup, final = cfg.optimizer.lr, cfg.schedule.warmup_steps, cfg.schedule.final_lr
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return lr * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def make_detector(cfg: TrainConfig, classes: Sequence[str]) -> Detector:
    """The architecture with its ``model.options``; an option it does not have is an error."""
    return build_detector(cfg.model.arch, classes, cfg.imgsz, cfg.device, **cfg.model.options)


def make_optimizer(params: list[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.Optimizer:
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class Trainer:
    """The state of a run that the loop and its hooks share."""

    cfg: TrainConfig
    run: Path
    det: Detector
    opt: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    data: TrainSet
    factors: np.ndarray
    steps_per_epoch: int
    val: Dataset | None
    extra: dict[str, Any]  # what every checkpoint records besides weights (class map, data hash, config)
    epoch: int = 0  # 0-based index of the current epoch
    step: int = 0  # optimizer steps done
    best_ap: float = -1.0
    saved_epochs: int = 0  # the epochs ``last.pt`` holds: where a stopped run's --resume would start
    metrics: dict[str, Any] = field(default_factory=dict)  # the current epoch's validation metrics
    rows: list[dict[str, Any]] = field(default_factory=list)  # the current epoch's metrics.jsonl rows
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # the last step's losses
    ema: ModelEMA | None = None  # the weights' moving average (``cfg.ema``), what is validated and saved
    # While the model holds the averaged weights (validation, checkpoints): the training weights
    train_weights: dict[str, torch.Tensor] | None = None
    t0: float = field(default_factory=time.time)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs


class HookBase:
    """Called around training, each epoch and each step, as detectron2's ``HookBase``: logging,
    checkpointing, plotting and user callbacks are hooks, so the loop itself only trains."""

    def before_train(self, t: Trainer) -> None:
        pass

    def after_train(self, t: Trainer) -> None:
        pass

    def before_epoch(self, t: Trainer) -> None:
        pass

    def after_epoch(self, t: Trainer) -> None:
        pass

    def before_step(self, t: Trainer) -> None:
        pass

    def after_step(self, t: Trainer) -> None:
        pass


class MetricsLogger(HookBase):
    """``metrics.jsonl``: one row per step (losses, lr) and one per epoch (validation metrics, minutes),
    appended once per epoch so a resumed run's file matches an unbroken one's."""

    def after_epoch(self, t: Trainer) -> None:
        t.rows.append(
            {"epoch": t.epoch + 1, "val": t.metrics, "minutes": round((time.time() - t.t0) / 60, 2)}
        )
        with open(t.run / "metrics.jsonl", "a") as f:
            f.write("".join(json.dumps(row) + "\n" for row in t.rows))
        if t.metrics:
            m = t.metrics
            tqdm.write(
                f"epoch {t.epoch + 1}: val AP {m['AP']:.1f} AP50 {m['AP50']:.1f} "
                + " ".join(f"{c} {v['AP']:.1f}" for c, v in m["per_class"].items())
            )


class Checkpointer(HookBase):
    """``best.pt`` (best validation AP; without validation the latest epoch) and ``last.pt`` (with the
    optimizer state and counters ``--resume`` needs)."""

    def after_epoch(self, t: Trainer) -> None:
        ap = t.metrics.get("AP", float(t.epoch))  # without validation the latest epoch is the best
        is_best = ap > t.best_ap
        t.best_ap = max(t.best_ap, ap)
        if is_best:
            t.det.save(t.run / "best.pt", metrics=t.metrics, epoch=t.epoch, **t.extra)
        # With EMA the checkpoint's weights are the average; the training weights ride along for --resume.
        train_weights = {} if t.train_weights is None else {"train_state_dict": t.train_weights}
        t.det.save(
            t.run / "last.pt",
            metrics=t.metrics,
            epoch=t.epoch,
            step=t.step,
            best_ap=t.best_ap,
            optimizer=t.opt.state_dict(),
            **train_weights,
            **t.extra,
        )
        t.saved_epochs = t.epoch + 1


class TrainClassifier(HookBase):
    """The second stage (:func:`classifier_epochs` > 0): a crop classifier trained on the faces of the
    detector's training images once the detector is done, stored in ``best.pt`` and ``last.pt`` (with the
    config that made it). A resumed run keeps one trained with its settings; other settings retrain it."""

    def after_train(self, t: Trainer) -> None:
        epochs = classifier_epochs(t.cfg)
        if not epochs:
            return
        c = dataclasses.replace(t.cfg.classifier, epochs=epochs)
        from maskwatch.engine.classifier import background_examples, train_classifier
        from maskwatch.models.classifier import FaceClassifier

        state = read_checkpoint(t.run / "last.pt")
        if has_classifier(state, t.cfg.classifier):
            t.det.classifier = FaceClassifier.from_state(state["classifier"], t.det.device)
            return
        log.info("training the crop classifier (%s, %d epochs)", c.arch, c.epochs)
        # mnet without weights starts from the body of the detector just trained
        init = None if c.weights else {k: v.cpu() for k, v in t.det.model.state_dict().items()}
        negatives = background_examples(
            c, t.det, t.data.images, t.data.boxes, t.data.negatives, t.data.labels
        )
        t.det.classifier = train_classifier(
            t.data.images,
            t.data.boxes,
            t.data.labels,
            t.det.class_names,
            c,
            init,
            t.cfg.seed,
            t.det.device,
            desc=f"{t.run.name} classifier",
            negatives=negatives,
            styles=t.data.styles,
            box_styles=t.det.box_style_names(),
        )
        for name in ("best.pt", "last.pt"):
            update_checkpoint(t.run / name, classifier=t.det.classifier.state(), config=t.extra["config"])


class PlotResults(HookBase):
    def after_epoch(self, t: Trainer) -> None:
        plot_training(t.run / "metrics.jsonl", t.run / "results.png")


class EpochCallbacks(HookBase):
    """Plain functions (epoch number, run folder, validation metrics) called after each epoch's files."""

    def __init__(self, callbacks: Sequence[EpochCallback]) -> None:
        self.callbacks = list(callbacks)

    def after_epoch(self, t: Trainer) -> None:
        for callback in self.callbacks:
            callback(t.epoch + 1, t.run, t.metrics)


EpochCallback = Callable[[int, Path, dict[str, Any]], None]


def train_one_epoch(t: Trainer, hooks: Sequence[HookBase]) -> None:
    """One epoch of optimizer steps over a freshly drawn, seeded sample order."""
    cfg = t.cfg
    t.det.model.train()
    order = epoch_indices(t.factors, np.random.default_rng((cfg.seed, t.epoch, 1 << 20)))
    loader = torch.utils.data.DataLoader(
        EpochSamples(t.data, order[: t.steps_per_epoch * cfg.batch], t.epoch),
        batch_size=cfg.batch,
        num_workers=cfg.workers,
        collate_fn=_as_lists,
    )
    bar = tqdm(loader, desc=f"{t.run.name} epoch {t.epoch + 1}/{cfg.epochs}", unit="step")
    for images, boxes, labels, styles, negatives in bar:
        for h in hooks:
            h.before_step(t)
        for g in t.opt.param_groups:
            g["lr"] = lr_at(t.step, t.total_steps, cfg)
        t.losses = t.det.loss(images, boxes, labels, styles, negatives)
        loss = torch.stack(list(t.losses.values())).sum()
        if not torch.isfinite(loss):
            raise MaskwatchError(f"training diverged at step {t.step} (loss {loss.item()}); lower --lr")
        t.opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optimizer.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(t.params, cfg.optimizer.clip_grad_norm)
        t.opt.step()
        if t.ema is not None:
            t.ema.update(t.det.model)
        t.step += 1
        row = {"step": t.step, "epoch": t.epoch + 1, "lr": t.opt.param_groups[0]["lr"], "loss": loss.item()}
        row.update({f"loss_{n}": round(v.item(), 5) for n, v in t.losses.items()})
        t.rows.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}")
        for h in hooks:
            h.after_step(t)


def default_hooks(on_epoch_end: Sequence[EpochCallback] = ()) -> list[HookBase]:
    return [MetricsLogger(), Checkpointer(), PlotResults(), EpochCallbacks(on_epoch_end), TrainClassifier()]


def train(
    cfg: TrainConfig,
    on_epoch_end: Sequence[EpochCallback] = (),
    hooks: Sequence[HookBase] = (),
    datasets: tuple[Dataset, Dataset | None, Sequence[str]] | None = None,
) -> Path:
    """Train a detector; return the run folder.

    ``on_epoch_end`` callbacks get (epoch, run folder, validation metrics) after the epoch's checkpoints
    are written, e.g. to log elsewhere or to stop early by raising; ``hooks`` (:class:`HookBase`) run after
    the built-in ones. ``datasets`` (train, val or None, classes) replaces the config's data and split,
    as cross-validation does for each fold. A run that fails before its first checkpoint leaves no folder.
    """
    if cfg.resume is True:  # the latest run of that name, with its own saved config
        cfg = make_config(None, resume=True, out=cfg.out, name=cfg.name)
    check_config(cfg)
    state = None
    if cfg.resume:
        state = read_checkpoint(Path(str(cfg.resume)) / "last.pt")
        check_resumable(cfg, state["config"])
    train_ds, val_ds, classes = datasets or split_datasets(cfg)
    classes = list(classes)
    torch.manual_seed(cfg.seed)
    det = make_detector(cfg, classes)
    if state is not None:  # with EMA: the training weights (the checkpoint's own are the average)
        det.load_state_dict(state.get("train_state_dict", state["state_dict"]))
    elif cfg.weights:
        init_weights(det, cfg.weights)
    else:
        log.warning(
            "no --weights: %s starts from random initialisation (slow to converge, poor on small bases); "
            "pass --weights FILE (for maskface-mnet the WIDER FACE RetinaFace weights)",
            cfg.model.arch,
        )
    data = TrainSet(train_ds, classes, cfg.augment, cfg.seed, cfg.imgsz, det.box_style_names())
    factors = sampling_factors(train_ds, data.labels, len(classes), cfg.repeat_threshold)
    steps_per_epoch = math.ceil(factors.sum() / cfg.batch)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    params = [p for p in det.model.parameters() if p.requires_grad]
    opt = make_optimizer(params, cfg.optimizer)
    run = Path(str(cfg.resume)) if cfg.resume else next_run_dir(cfg.out, cfg.name)
    t = Trainer(
        cfg,
        run,
        det,
        opt,
        params,
        data,
        factors,
        steps_per_epoch,
        val_ds,
        {"class_map": cfg.merge, "dataset_hash": train_ds.fingerprint(), "config": dataclasses.asdict(cfg)},
    )
    start_epoch = 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        start_epoch, t.best_ap, t.step = state["epoch"] + 1, state["best_ap"], state["step"]
        t.saved_epochs = start_epoch
        log.info("resuming %s from epoch %d of %d", run, start_epoch + 1, cfg.epochs)
    if cfg.ema:
        shadow = state["state_dict"] if state is not None and "train_state_dict" in state else None
        t.ema = ModelEMA(det.model, cfg.ema, updates=t.step, shadow=shadow)
    hooks = [*default_hooks(on_epoch_end), *hooks]
    run.mkdir(parents=True, exist_ok=True)
    try:
        with stop_signals():
            _loop(t, hooks, start_epoch)
    except BaseException as e:
        kept = t.saved_epochs > 0  # last.pt exists: written this run, or the one resumed
        if not kept:
            remove_run(run)
        if isinstance(e, KeyboardInterrupt) and not isinstance(e, TrainingStopped):
            raise _stopped(run if kept else None, t.saved_epochs, cfg) from e
        raise
    return run


def _loop(t: Trainer, hooks: Sequence[HookBase], start_epoch: int) -> None:
    with atomic_write(t.run / "config.yaml") as f:
        yaml.safe_dump(dataclasses.asdict(t.cfg), f, sort_keys=False)
    for h in hooks:
        h.before_train(t)
    for epoch in range(start_epoch, t.cfg.epochs):
        t.epoch, t.rows, t.metrics = epoch, [], {}
        for h in hooks:
            h.before_epoch(t)
        train_one_epoch(t, hooks)
        with contextlib.ExitStack() as averaged:
            if t.ema is not None:  # validated and saved: the average
                t.train_weights = averaged.enter_context(t.ema.applied(t.det.model))
            t.metrics = validate(t.det, t.val, t.cfg.batch) if t.val is not None else {}
            for h in hooks:
                h.after_epoch(t)
        t.train_weights = None
    if t.ema is not None:  # the trained model is the average
        t.det.model.load_state_dict(t.ema.shadow)
    for h in hooks:
        h.after_train(t)


class TrainingStopped(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP stopped training. Still a ``KeyboardInterrupt`` (a caller's ``except
    KeyboardInterrupt`` keeps working), it says what was kept and the command that goes on from it: the
    epoch in progress is lost, and a user should not have to guess whether hours of training were too."""

    def __init__(self, kept: str, resume: Path | None, what: str = "training stopped") -> None:
        self.kept = kept
        self.resume = resume  # what ``maskwatch train --resume`` takes: a run or a cross-validation folder
        go_on = f"; continue with: maskwatch train --resume {resume}" if resume else ""
        super().__init__(f"{what}: {kept}{go_on}")


def _stopped(run: Path | None, saved: int, cfg: TrainConfig) -> TrainingStopped:
    if run is None:
        return TrainingStopped("nothing was kept, no epoch had finished", None)
    if saved < cfg.epochs:
        return TrainingStopped(f"{run} holds {saved} of {cfg.epochs} epochs", run)
    if classifier_left(cfg, read_checkpoint(run / "last.pt")):
        return TrainingStopped(f"{run} holds its {saved} epochs; its crop classifier is not trained", run)
    return TrainingStopped(f"{run} holds its {saved} epochs and is complete", None)


def remove_run(run: Path) -> None:
    """Remove a run folder that never got a checkpoint: only the files training writes, then the folder
    if nothing else is in it (never a file maskwatch did not write)."""
    for name in RUN_FILES:
        (run / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: something else is in it, leave it
        run.rmdir()


RUN_FILES = ("config.yaml", "metrics.jsonl", "results.png", "best.pt", "last.pt")


def plot_training(metrics_path: Path, out: Path) -> None:
    """``results.png``: training losses per step and validation AP per epoch, the curves people look at
    first to see whether a run converged or overfits."""
    from maskwatch.engine.report import new_figure

    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "step" in r]
    epochs = [r for r in rows if r.get("val")]
    fig = new_figure((11, 4))
    ax_loss, ax_ap = fig.subplots(1, 2)
    for key in sorted({k for r in steps for k in r if k.startswith("loss")}):
        ax_loss.plot([r["step"] for r in steps], [r[key] for r in steps], label=key, linewidth=0.8)
    ax_loss.set(xlabel="step", ylabel="loss", title="training loss")
    ax_loss.legend()
    x = [r["epoch"] for r in epochs]
    for key in ("AP", "AP50"):
        ax_ap.plot(x, [r["val"][key] for r in epochs], marker="o", markersize=3, label=key)
    for name in epochs[0]["val"]["per_class"] if epochs else ():
        ax_ap.plot(x, [r["val"]["per_class"][name]["AP"] for r in epochs], linestyle="--", label=f"AP {name}")
    ax_ap.set(xlabel="epoch", ylabel="% (validation split)", title="validation COCO AP")
    ax_ap.legend()
    with atomic_write(out, "wb") as f:
        fig.savefig(f, format="png")


def init_weights(det: Detector, path: str) -> None:
    """Start from a maskwatch checkpoint of the same architecture (a path, or a built-in model's name for its
    packaged weights: ``--weights maskface-mnet`` fine-tunes the default), or the architecture's own file."""
    from maskwatch.models.names import registered_modules
    from maskwatch.models.registry import packaged_weights

    if not Path(path).exists() and path in registered_modules() and packaged_weights(path).is_file():
        path = str(packaged_weights(path))
    try:
        ckpt = read_checkpoint(path)
    except MaskwatchError:
        ckpt = None
    if ckpt is not None:
        if ckpt["arch"] != det.arch or list(ckpt["class_names"]) != list(det.class_names):
            raise MaskwatchError(
                f"{path}: a {ckpt['arch']} checkpoint for {ckpt['class_names']} cannot start this run"
            )
        det.load_state_dict(ckpt["state_dict"])
    else:
        det.init_weights(path)
