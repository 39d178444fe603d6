"""The training loop: flat and readable, in the spirit of torchvision's detection references.

A run lives in ``runs/train/<name>N/``: ``config.yaml`` (fully resolved), ``metrics.jsonl`` (losses per
step, COCO AP on the validation split per epoch), ``results.png`` (their curves), ``last.pt`` (with
optimizer state, for ``--resume``) and ``best.pt``. Every random draw is seeded from (seed, epoch,
sample), so a resumed run replays exactly what an unbroken one would have done.
"""

from __future__ import annotations

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
from maskwatch.data.record import Dataset
from maskwatch.engine.augment import AugmentConfig, augment
from maskwatch.engine.evaluate import evaluate, predict_dataset
from maskwatch.engine.sampler import epoch_indices, repeat_factors
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, load_image
from maskwatch.models.base import Detector, read_checkpoint
from maskwatch.models.registry import build_detector

log = logging.getLogger("maskwatch")


@dataclass
class TrainConfig:
    data: str = ""
    format: str = "auto"
    split: str | None = None  # folder with train.txt and val.txt
    merge: list[str] = field(default_factory=list)
    classes: list[str] | None = None  # model class order; default: dataset order
    model: str = "maskface-mnet"
    weights: str | None = None  # initial weights: a maskwatch checkpoint or the architecture's own file
    epochs: int = 30
    batch: int = 8
    imgsz: int = 640
    crop: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    workers: int = 0  # DataLoader processes that augment while the model trains (0: in the main process)
    device: str = "cpu"
    seed: int = 0
    repeat_threshold: float = 0.3  # repeat-factor sampling; 0 disables it
    focal_gamma: float = 0.0  # > 0: focal loss for the class head instead of hard-negative mining
    max_steps_per_epoch: int | None = None
    out: str = "runs/train"
    name: str = "exp"
    resume: bool = False


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs with YAML-typed values, checked against :class:`TrainConfig` fields."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in names:
            raise MaskwatchError(
                f"bad override {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(names))}"
            )
        out[key] = yaml.safe_load(value)
    return out


def make_config(config_file: str | None, **kwargs: Any) -> TrainConfig:
    """Defaults, then the YAML ``--config`` file, then explicit options (None means not given)."""
    values: dict[str, Any] = {}
    if config_file:
        try:
            loaded = yaml.safe_load(Path(config_file).read_text())
        except FileNotFoundError:
            raise MaskwatchError(f"{config_file}: config file not found") from None
        except yaml.YAMLError as e:
            raise MaskwatchError(f"{config_file}: malformed YAML ({e})") from None
        if not isinstance(loaded, dict):
            raise MaskwatchError(f"{config_file}: expected a mapping of config keys")
        values.update(loaded)
    values.update({k: v for k, v in kwargs.items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise MaskwatchError(f"unknown config key {unknown[0]!r}")
    return TrainConfig(**values)


def next_run_dir(out: str, name: str) -> Path:
    base = Path(out)
    i = 1
    while (base / f"{name}{i}").exists():
        i += 1
    return base / f"{name}{i}"


def latest_run_dir(out: str, name: str) -> Path:
    runs = sorted(Path(out).glob(f"{name}*/last.pt"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise MaskwatchError(f"--resume: no {out}/{name}*/last.pt to resume from")
    return runs[-1].parent


class TrainSet:
    """Images held in memory (learning bases here are small) with label indices per box."""

    def __init__(self, ds: Dataset, class_names: list[str], aug: AugmentConfig, seed: int) -> None:
        index = {c: i for i, c in enumerate(class_names)}
        self.images = [load_image(r.image) for r in tqdm(ds.records, desc="loading images", leave=False)]
        self.boxes = [r.boxes.astype(np.float32) for r in ds.records]
        self.labels = [np.array([index[lab] for lab in r.labels], dtype=np.int64) for r in ds.records]
        self.aug, self.seed = aug, seed

    def sample(self, i: int, epoch: int, position: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng((self.seed, epoch, position))
        return augment(self.images[i], self.boxes[i], self.labels[i], self.aug, rng)


class EpochSamples(torch.utils.data.Dataset):
    """One epoch's augmented samples by position, for a DataLoader whose ``--workers`` augment in parallel.

    A sample depends only on (seed, epoch, position), so the stream is the same for any number of workers.
    """

    def __init__(self, data: TrainSet, order: np.ndarray, epoch: int) -> None:
        self.data, self.order, self.epoch = data, order, epoch

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.data.sample(int(self.order[k]), self.epoch, k)


def _as_lists(samples: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(map(list, zip(*samples, strict=True)))


def split_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset | None, list[str]]:
    """Train and validation sets; without a val split (e.g. a final fit on train+val) there is no
    validation and best.pt is the last epoch."""
    ds = load_dataset(cfg.data, cfg.format, cfg.merge)
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
    classes = cfg.classes or ds.classes
    unknown = sorted(set(ds.classes) - set(classes))
    if unknown:
        raise MaskwatchError(f"dataset class {unknown[0]!r} is not in classes {classes}; map it with --merge")
    train = ds.subset(splits["train"])
    val = ds.subset(splits["val"]) if "val" in splits else None
    if not train.num_boxes:
        raise MaskwatchError("the training split has no boxes")
    return train, val, list(classes)


def validate(det: Detector, val: Dataset, batch: int) -> dict[str, Any]:
    det.model.eval()
    return evaluate(val, predict_dataset(det, val, batch, progress=False), det.class_names)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the base rate."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


EpochCallback = Callable[[int, Path, dict[str, Any]], None]


def train(cfg: TrainConfig, on_epoch_end: Sequence[EpochCallback] = ()) -> Path:
    """Train a detector; return the run folder.

    ``on_epoch_end`` callbacks get (epoch, run folder, validation metrics) after the epoch's checkpoints
    are written, e.g. to log elsewhere or to stop early by raising.
    """
    if cfg.resume:
        run = latest_run_dir(cfg.out, cfg.name)
        state = read_checkpoint(run / "last.pt")
        cfg = TrainConfig(**{**state["config"], "resume": True})
    else:
        run = next_run_dir(cfg.out, cfg.name)
        state = None
    train_ds, val_ds, classes = split_datasets(cfg)
    torch.manual_seed(cfg.seed)
    options = {"focal_gamma": cfg.focal_gamma} if cfg.focal_gamma else {}  # a loss setting, where one is set
    det = build_detector(cfg.model, classes, cfg.imgsz, cfg.device, **options)
    if state is not None:
        det.model.load_state_dict(state["state_dict"])
    elif cfg.weights:
        init_weights(det, cfg.weights)
    run.mkdir(parents=True, exist_ok=True)
    with atomic_write(run / "config.yaml") as f:
        yaml.safe_dump(dataclasses.asdict(cfg), f, sort_keys=False)

    aug = AugmentConfig(imgsz=cfg.imgsz, crop=cfg.crop)
    data = TrainSet(train_ds, classes, aug, cfg.seed)
    factors = (
        repeat_factors(data.labels, len(classes), cfg.repeat_threshold)
        if cfg.repeat_threshold > 0
        else np.ones(len(data.labels))
    )
    steps_per_epoch = math.ceil(factors.sum() / cfg.batch)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    total = steps_per_epoch * cfg.epochs
    params = [p for p in det.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    start_epoch, best_ap, step = 0, -1.0, 0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        start_epoch, best_ap, step = state["epoch"] + 1, state["best_ap"], state["step"]
        log.info("resuming %s from epoch %d", run, start_epoch)
    extra = {
        "class_map": cfg.merge,
        "dataset_hash": train_ds.fingerprint(),
        "config": dataclasses.asdict(cfg),
    }
    metrics_path = run / "metrics.jsonl"
    t0 = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        det.model.train()
        order = epoch_indices(factors, np.random.default_rng((cfg.seed, epoch, 1 << 20)))
        loader = torch.utils.data.DataLoader(
            EpochSamples(data, order[: steps_per_epoch * cfg.batch], epoch),
            batch_size=cfg.batch,
            num_workers=cfg.workers,
            collate_fn=_as_lists,
        )
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="step")
        lines = []
        for images, boxes, labels in bar:
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, cfg)
            losses = det.loss(images, boxes, labels)
            loss = torch.stack(list(losses.values())).sum()
            if not torch.isfinite(loss):
                raise MaskwatchError(f"training diverged at step {step} (loss {loss.item()}); lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            step += 1
            row = {"step": step, "epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "loss": loss.item()}
            row.update({f"loss_{n}": round(v.item(), 5) for n, v in losses.items()})
            lines.append(json.dumps(row))
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        metrics = validate(det, val_ds, cfg.batch) if val_ds is not None else {}
        row = {"epoch": epoch + 1, "val": metrics, "minutes": round((time.time() - t0) / 60, 2)}
        lines.append(json.dumps(row))
        with open(metrics_path, "a") as f:
            f.write("".join(line + "\n" for line in lines))
        if metrics:
            tqdm.write(
                f"epoch {epoch + 1}: val AP {metrics['AP']:.1f} AP50 {metrics['AP50']:.1f} "
                + " ".join(f"{c} {m['AP']:.1f}" for c, m in metrics["per_class"].items())
            )
        ap = metrics.get("AP", float(epoch))  # without validation the latest epoch is the best
        is_best = ap > best_ap
        best_ap = max(best_ap, ap)
        if is_best:
            det.save(run / "best.pt", metrics=metrics, epoch=epoch, **extra)
        det.save(
            run / "last.pt",
            metrics=metrics,
            epoch=epoch,
            step=step,
            best_ap=best_ap,
            optimizer=opt.state_dict(),
            **extra,
        )
        plot_training(metrics_path, run / "results.png")
        for callback in on_epoch_end:
            callback(epoch + 1, run, metrics)
    return run


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
    """Start from a maskwatch checkpoint of the same architecture, or the architecture's own weights file."""
    try:
        ckpt = read_checkpoint(path)
    except MaskwatchError:
        ckpt = None
    if ckpt is not None:
        if ckpt["arch"] != det.arch or list(ckpt["class_names"]) != list(det.class_names):
            raise MaskwatchError(
                f"{path}: a {ckpt['arch']} checkpoint for {ckpt['class_names']} cannot start this run"
            )
        det.model.load_state_dict(ckpt["state_dict"])
    else:
        det.init_weights(path)
