"""The training config: one nested, typed description of a run, saved as the run's ``config.yaml``.

Everything that shapes a run lives here: data sources and merge map, architecture and its loss options,
augmentation, optimizer, LR schedule, gradient clip, sampling, seed. A config is built from the defaults,
then a YAML file, then command-line options, then ``KEY=VALUE`` overrides (nested keys with dots:
``optimizer.lr=3e-4``, ``augment.scale=[0.5,1.5]``, ``model.options.focal_gamma=2``), and every value is
type-checked against the field it sets before any data is read or any run folder is made.

Configs written before the sections existed (flat ``lr``, ``crop``, ``warmup_steps``, ``focal_gamma``,
``model: NAME``) still load: :data:`LEGACY_KEYS` maps them to their new place, so old runs resume.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from maskwatch.engine.augment import AugmentConfig
from maskwatch.errors import MaskwatchError
from maskwatch.models.crops import CLASSIFIER_ARCHS

_YAML11_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
FORMATS = ("auto", "voc", "yolo", "coco", "createml")
OPTIMIZERS = ("adamw", "sgd")


@dataclass
class ModelConfig:
    arch: str = "maskface-mnet"
    # Architecture-specific settings passed to the detector at construction (for maskface-mnet: the loss
    # settings, e.g. focal_gamma); empty means the architecture's own defaults.
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    name: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9  # sgd only
    clip_grad_norm: float = 10.0  # max global gradient norm; 0 disables clipping


@dataclass
class ScheduleConfig:
    """Linear warm-up, then cosine decay from ``lr`` to ``final_lr`` × ``lr`` at the last step."""

    warmup_steps: int = 50
    final_lr: float = 0.01


@dataclass
class SourceConfig:
    """A learning base used for training only (never held out), e.g. a second source in cross-validation."""

    data: str = ""
    format: str = "auto"
    merge: list[str] = field(default_factory=list)
    # Which of its images train: a split folder (its train.txt and val.txt: test.txt stays held out, so
    # the source can be scored on it) or one stems file; empty: every image.
    split: str | None = None
    # The box style its labels are drawn in: one of model.options.box_styles (a regressor of its own);
    # empty: the main learning base's style (the first).
    box_style: str = ""
    # Sampling weight of its images against the main base's (0.5: each seen every other epoch on average),
    # to balance a large extra source without lengthening every epoch.
    weight: float = 1.0
    # False: its unboxed regions are not taught as background (label sets that box only the nearer faces
    # in crowds); its boxed faces still train the class and box heads.
    negatives: bool = True


@dataclass
class ClassifierConfig:
    """The second stage: a crop classifier that re-decides each face's class, trained after the detector on
    the same images' labelled faces and saved inside its checkpoint (``epochs`` 0: none; None: the
    default, :data:`CLASSIFIER_EPOCHS` for ``maskface-mnet``, whose body starts it, none for the others)."""

    epochs: int | None = None
    arch: str = "mnet"  # mnet | mobilenet_v2 | mobilenet_v2_14 (maskwatch.models.classifier)
    # Backbone start: a state-dict file (the WIDER FACE RetinaFace file, torchvision's ImageNet
    # MobileNetV2); empty with mnet: the body of the detector just trained.
    weights: str | None = None
    size: int = 96  # crop side in pixels
    alpha: float = 0.7  # weight of the classifier's class probabilities against the detector's
    # The detector's most confident mistakes on each training image (of sources with negatives: true)
    # taught as a background output: the crop re-ranks the faces too. 0: classes only.
    negatives: int = 3
    # With a background output: per image, this many of the detector's second boxes on a labelled face
    # that a better-scored box already found (duplicates, parts of the face) join the background.
    second_boxes: int = 0
    beta: float = 0.5  # weight of the classifier's face probability in a face's score (with negatives)
    # The classifier also draws each face's box from its crop (one head per box style), and a face's
    # box moves this far to it (0: the detector's boxes, no box head).
    refine: float = 0.5
    batch: int = 64
    lr: float = 1e-3


@dataclass
class TrainConfig:
    data: str = ""
    format: str = "auto"
    split: str | None = None  # folder with train.txt and val.txt
    merge: list[str] = field(default_factory=list)
    classes: list[str] | None = None  # model class order; default: dataset order
    extra: list[SourceConfig] = field(default_factory=list)  # always in the training set
    model: ModelConfig = field(default_factory=ModelConfig)
    classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
    weights: str | None = None  # initial weights: a maskwatch checkpoint or the architecture's own file
    epochs: int = 30
    batch: int = 8
    imgsz: int = 640
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    repeat_threshold: float = 0.3  # repeat-factor sampling; 0 disables it
    # Decay of an exponential moving average of the weights (e.g. 0.998: about the last 500 steps), the
    # model that is validated and saved; 0 disables it (the last step's weights are the model).
    ema: float = 0.0
    max_steps_per_epoch: int | None = None
    seed: int = 0
    workers: int = 0  # DataLoader processes that augment while the model trains (0: in the main process)
    device: str = "cpu"
    out: str = "runs/train"
    name: str = "exp"
    resume: bool | str = False  # True: the latest <out>/<name>N run; a path: that run folder or its last.pt


# Flat keys of configs (and checkpoints) written before the sections existed -> their dotted place now.
LEGACY_KEYS = {
    "lr": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
    "warmup_steps": "schedule.warmup_steps",
    "crop": "augment.crop",
    "focal_gamma": "model.options.focal_gamma",
}
# What a resumed run may change: how long it runs and where, and its crop-classifier stage (trained after the
# detector, it does not change the detector); anything else would not be the same run.
RESUMABLE = {"epochs", "workers", "device", "resume", "out", "name", "classifier"}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp`` (ints are accepted where floats are expected,
    YAML lists where tuples are); raises a one-line error naming the dotted key."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(tp):
            try:
                return _coerce(value, member, key)
            except MaskwatchError:
                continue
        raise MaskwatchError(f"config key {key}: expected {_type_name(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return _from_dict(tp, value, key + ".")  # type: ignore[arg-type]
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(tp)
            return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, list | tuple) and len(value) == len(args):
            return tuple(
                _coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
    elif origin is dict:
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return dict(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _YAML11_FLOAT.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 3e-4 (no dot) as a string; everyone means the number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this checker does not know is a programming error
        raise TypeError(f"unsupported config type {tp!r} for {key}")
    raise MaskwatchError(f"config key {key}: expected {_type_name(tp)}, got {value!r}")


def _from_dict(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise MaskwatchError(
            f"unknown config key {prefix + unknown[0]!r} (known: {', '.join(prefix + k for k in hints)})"
        )
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in values.items()})


def config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A typed :class:`TrainConfig` from a (possibly partial, possibly legacy-flat) nested dict."""
    merged = dataclasses.asdict(TrainConfig())
    for key, value in _dotted(values).items():
        _set(merged, key, value)
    cfg: TrainConfig = _from_dict(TrainConfig, merged)
    return cfg


def _dotted(values: dict[str, Any]) -> dict[str, Any]:
    """Legacy keys moved to their section; ``model: NAME`` read as ``model.arch``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "model" and isinstance(value, str):
            key = "model.arch"
        if key == "focal_gamma" and value == 0:
            continue  # the old flat default meant "off": every architecture's own default
        out[LEGACY_KEYS.get(key, key)] = value
    return out


def _set(tree: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = tree
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MaskwatchError(f"config key {'.'.join(parents[: i + 1])} is not a section (in {key!r})")
        node = child
    if isinstance(node.get(leaf), dict) and isinstance(value, dict):
        for k, v in value.items():  # a section given as a mapping updates it key by key
            _set(node[leaf], k, v)
    else:
        node[leaf] = value


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (nested keys with dots) with YAML-typed values; checked in :func:`make_config`."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise MaskwatchError(f"bad override {pair!r}: expected KEY=VALUE, e.g. optimizer.lr=0.0003")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise MaskwatchError(f"bad override {pair!r}: the value is not valid YAML") from None
    return out


def read_config_file(path: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise MaskwatchError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MaskwatchError(f"{path}: unreadable config file ({e})") from None
    except yaml.YAMLError as e:
        raise MaskwatchError(f"{path}: malformed YAML ({e})") from None
    if not isinstance(loaded, dict):
        raise MaskwatchError(f"{path}: expected a mapping of config keys")
    return loaded


def given_keys(config_file: str | None, **kwargs: Any) -> dict[str, Any]:
    """The keys a user gave: the YAML ``--config`` file, then explicit options and overrides (dotted keys
    allowed; None means not given), legacy names moved to their place."""
    given = _dotted(read_config_file(config_file)) if config_file else {}
    given.update(_dotted({k: v for k, v in kwargs.items() if v is not None}))
    return given


def make_config(config_file: str | None, **kwargs: Any) -> TrainConfig:
    """Defaults, then the YAML ``--config`` file, then explicit options and overrides, type- and
    range-checked. With ``resume``, the run's own saved config is the base and only :data:`RESUMABLE` keys
    may change (``epochs`` extends the schedule)."""
    given = given_keys(config_file, **kwargs)
    cfg = config_from_dict(given)
    if cfg.resume:
        cfg = _resume_config(cfg, given)
    check_config(cfg)
    return cfg


def _resume_config(cfg: TrainConfig, given: dict[str, Any]) -> TrainConfig:
    from maskwatch.models.base import read_checkpoint

    run = resume_run_dir(cfg.resume, cfg.out, cfg.name)
    state = read_checkpoint(run / "last.pt")
    resumed = resumed_config(state["config"], given, run)
    done = int(state["epoch"]) + 1
    if resumed.epochs < done or (resumed.epochs == done and not classifier_left(resumed, state)):
        raise MaskwatchError(
            f"--resume: {run} has already trained {done} of {state['config'].get('epochs')} epoch(s); "
            f"pass --epochs N with N > {done} to train longer"
        )
    return resumed


def resumed_config(saved: dict[str, Any], given: dict[str, Any], run: Path) -> TrainConfig:
    """The config ``saved`` with a run folder ``run``: keys the user ``given`` again must equal the saved
    ones, except :data:`RESUMABLE` keys (how long it runs, and where), which they replace."""
    base = config_from_dict({k: v for k, v in saved.items() if k != "resume"})
    candidate = dataclasses.asdict(base)
    for key, value in given.items():
        if key.split(".")[0] not in RESUMABLE:
            _set(candidate, key, value)
    check_resumable(_from_dict(TrainConfig, candidate), saved, run)
    staged = dataclasses.asdict(base)
    for key, value in given.items():
        if key.split(".")[0] == "classifier":
            _set(staged, key, value)
    return dataclasses.replace(
        base,
        classifier=_from_dict(TrainConfig, staged).classifier,
        epochs=int(given.get("epochs", base.epochs)),
        workers=int(given["workers"]) if "workers" in given else base.workers,
        device=str(given["device"]) if "device" in given else base.device,
        resume=str(run),
    )


CLASSIFIER_EPOCHS = 6  # the second stage's default length, where the architecture can start it


def classifier_epochs(cfg: TrainConfig) -> int:
    """How many epochs the run's crop classifier trains (0: the run has none)."""
    if cfg.classifier.epochs is not None:
        return cfg.classifier.epochs
    return CLASSIFIER_EPOCHS if cfg.model.arch == "maskface-mnet" else 0


def classifier_left(cfg: TrainConfig, state: dict[str, Any]) -> bool:
    """Whether a run whose detector is trained (``state``: its ``last.pt``) still has its crop-classifier
    stage to run: one stopped in that stage resumes into it, and a finished run given other classifier
    settings trains that stage again (its detector unchanged)."""
    return bool(classifier_epochs(cfg)) and not has_classifier(state, cfg.classifier)


def has_classifier(state: dict[str, Any], wanted: ClassifierConfig) -> bool:
    """Whether a checkpoint holds a crop classifier trained with the settings ``wanted``."""
    made = config_from_dict(state.get("config") or {}).classifier
    saved = state.get("classifier") or {}
    # a config saved before a setting existed reads as its default: the classifier itself says what it has
    return (
        bool(saved)
        and made == wanted
        and saved.get("background", False) == (wanted.negatives > 0)
        and bool(saved.get("box_styles")) == (wanted.refine > 0)
    )


def check_resumable(cfg: TrainConfig, saved: dict[str, Any], run: Path | None = None) -> None:
    """A resumed run is the run it continues: only :data:`RESUMABLE` keys may differ from its saved config."""
    old = {k: v for k, v in dataclasses.asdict(config_from_dict(saved)).items() if k not in RESUMABLE}
    new = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RESUMABLE}
    changed = _first_difference(old, new)
    if changed:
        key, before, after = changed
        run = run or Path(str(cfg.resume))
        raise MaskwatchError(
            f"--resume continues {run} as it was configured; {key} cannot change (saved {before!r}, "
            f"given {after!r}); to fine-tune from it, start a new run with --weights {run / 'last.pt'}"
        )


def _first_difference(a: Any, b: Any, key: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted key whose value differs between two config trees, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() | b.keys():
            found = _first_difference(a.get(k), b.get(k), f"{key}.{k}" if key else k)
            if found:
                return found
        return None
    return None if a == b else (key, a, b)


def check_config(cfg: TrainConfig) -> None:
    """Ranges and choices, so a bad value is a one-line error before any data loads."""
    from maskwatch.models.names import MODEL_NAMES

    checks: list[tuple[bool, str]] = [
        (cfg.epochs >= 1, f"epochs must be at least 1, got {cfg.epochs}"),
        (cfg.batch >= 1, f"batch must be at least 1, got {cfg.batch}"),
        (cfg.imgsz >= 32, f"imgsz must be at least 32, got {cfg.imgsz}"),
        (cfg.augment.crop >= 32, f"augment.crop must be at least 32, got {cfg.augment.crop}"),
        (
            0 < cfg.augment.scale[0] <= cfg.augment.scale[1],
            f"augment.scale must be (low, high) with 0 < low <= high, got {list(cfg.augment.scale)}",
        ),
        (0 <= cfg.augment.flip <= 1, f"augment.flip is a probability in [0, 1], got {cfg.augment.flip}"),
        (cfg.augment.crop_tries >= 1, f"augment.crop_tries must be at least 1, got {cfg.augment.crop_tries}"),
        (cfg.optimizer.lr > 0, f"lr must be positive, got {cfg.optimizer.lr}"),
        (
            cfg.optimizer.weight_decay >= 0,
            f"optimizer.weight_decay must be >= 0, got {cfg.optimizer.weight_decay}",
        ),
        (cfg.optimizer.clip_grad_norm >= 0, "optimizer.clip_grad_norm must be >= 0 (0 disables clipping)"),
        (
            cfg.optimizer.name in OPTIMIZERS,
            f"optimizer.name {cfg.optimizer.name!r} is not one of {', '.join(OPTIMIZERS)}",
        ),
        (
            cfg.schedule.warmup_steps >= 0,
            f"schedule.warmup_steps must be >= 0, got {cfg.schedule.warmup_steps}",
        ),
        (
            0 <= cfg.schedule.final_lr <= 1,
            f"schedule.final_lr is a fraction in [0, 1], got {cfg.schedule.final_lr}",
        ),
        (cfg.repeat_threshold >= 0, f"repeat_threshold must be >= 0, got {cfg.repeat_threshold}"),
        (0 <= cfg.ema < 1, f"ema is a decay in [0, 1) (0 disables it), got {cfg.ema}"),
        (
            cfg.max_steps_per_epoch is None or cfg.max_steps_per_epoch >= 1,
            f"max_steps_per_epoch must be at least 1, got {cfg.max_steps_per_epoch}",
        ),
        (cfg.workers >= 0, f"workers must be >= 0, got {cfg.workers}"),
        (
            cfg.model.arch in MODEL_NAMES,
            f"unknown model {cfg.model.arch!r} (choose from {', '.join(MODEL_NAMES)})",
        ),
        (
            re.fullmatch(r"cpu|auto|cuda(:\d+)?", cfg.device) is not None,
            f"device {cfg.device!r} is not one of cpu, cuda, cuda:N, auto",
        ),
        (bool(cfg.name) and "/" not in cfg.name, f"name {cfg.name!r} must be a non-empty folder name"),
        (classifier_epochs(cfg) >= 0, f"classifier.epochs must be >= 0, got {cfg.classifier.epochs}"),
        (
            cfg.classifier.arch in CLASSIFIER_ARCHS,
            f"classifier.arch {cfg.classifier.arch!r} is not one of {', '.join(CLASSIFIER_ARCHS)}",
        ),
        (cfg.classifier.size >= 32, f"classifier.size must be at least 32, got {cfg.classifier.size}"),
        (0 <= cfg.classifier.alpha <= 1, f"classifier.alpha is in [0, 1], got {cfg.classifier.alpha}"),
        (cfg.classifier.negatives >= 0, f"classifier.negatives must be >= 0, got {cfg.classifier.negatives}"),
        (
            cfg.classifier.second_boxes >= 0,
            f"classifier.second_boxes must be >= 0, got {cfg.classifier.second_boxes}",
        ),
        (
            not cfg.classifier.second_boxes or cfg.classifier.negatives > 0,
            "classifier.second_boxes teaches the background output: it needs classifier.negatives > 0",
        ),
        (0 <= cfg.classifier.beta < 1, f"classifier.beta is in [0, 1), got {cfg.classifier.beta}"),
        (0 <= cfg.classifier.refine <= 1, f"classifier.refine is in [0, 1], got {cfg.classifier.refine}"),
        (cfg.classifier.batch >= 1, f"classifier.batch must be at least 1, got {cfg.classifier.batch}"),
        (cfg.classifier.lr > 0, f"classifier.lr must be positive, got {cfg.classifier.lr}"),
        (
            not classifier_epochs(cfg) or cfg.classifier.arch == "mnet" or bool(cfg.classifier.weights),
            f"classifier.arch {cfg.classifier.arch} needs classifier.weights (its ImageNet state dict)",
        ),
        (
            not classifier_epochs(cfg) or bool(cfg.classifier.weights) or cfg.model.arch == "maskface-mnet",
            f"classifier.weights: {cfg.model.arch} has no MobileNet-0.25 body to start the classifier from",
        ),
        (
            not cfg.classifier.weights or Path(cfg.classifier.weights).is_file(),
            f"classifier.weights {cfg.classifier.weights}: file not found",
        ),
    ]
    checks += [
        (s.format in FORMATS, f"format {s.format!r} is not one of {', '.join(FORMATS)}") for s in cfg.extra
    ]
    if cfg.model.arch in MODEL_NAMES:  # the architecture's own options, before any data loads
        from maskwatch.models.registry import architectures

        accepted = architectures()[cfg.model.arch].options
        checks += [
            (
                key in accepted,
                f"model.options.{key}: {cfg.model.arch} has no such option "
                f"(accepted: {', '.join(accepted) or 'none'})",
            )
            for key in cfg.model.options
        ]
    checks += [(cfg.format in FORMATS, f"format {cfg.format!r} is not one of {', '.join(FORMATS)}")]
    checks += [(bool(s.data), "every extra source needs a data path") for s in cfg.extra]
    styles = box_styles(cfg)
    checks += [
        (
            not s.box_style or s.box_style in styles,
            f"extra source {s.data}: box_style {s.box_style!r} is not in model.options.box_styles {styles}",
        )
        for s in cfg.extra
    ]
    checks += [
        (s.weight > 0, f"extra source {s.data}: weight must be > 0, got {s.weight}") for s in cfg.extra
    ]
    checks += [
        (s.split is None or Path(s.split).exists(), f"extra source {s.data}: split {s.split} not found")
        for s in cfg.extra
    ]
    for ok, message in checks:
        if not ok:
            raise MaskwatchError(message)
    if cfg.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise MaskwatchError(f"device {cfg.device}: no CUDA device is available on this machine")
    weights = Path(cfg.weights or "")
    # A path (not a keyword such as the torchvision models' "imagenet") must exist before data loads.
    is_path = bool(weights.suffix) or len(weights.parts) > 1
    if cfg.weights and not cfg.resume and is_path and not weights.is_file():  # a resumed run has its own
        raise MaskwatchError(f"{cfg.weights}: weights file not found")


def box_styles(cfg: TrainConfig) -> list[str]:
    """The model's box style names (``model.options.box_styles``, or the architecture's default)."""
    from maskwatch.models.names import MODEL_NAMES

    if "box_styles" in cfg.model.options:
        return [str(s) for s in cfg.model.options["box_styles"]]
    if cfg.model.arch in MODEL_NAMES:
        from maskwatch.models.registry import architectures

        return [str(s) for s in architectures()[cfg.model.arch].options.get("box_styles", ["default"])]
    return ["default"]


def run_number(path: Path, name: str) -> int | None:
    """N for a folder named exactly ``<name>N`` (so ``maskface`` never matches ``maskface-trainval1``)."""
    m = re.fullmatch(re.escape(name) + r"(\d+)", path.name)
    return int(m[1]) if m else None


def next_run_dir(out: str, name: str) -> Path:
    """``<out>/<name>N`` for the first N not taken: a new run never overwrites an old one."""
    base = Path(out)
    i = 1
    while (base / f"{name}{i}").exists():
        i += 1
    return base / f"{name}{i}"


def resume_run_dir(resume: bool | str, out: str, name: str, marker: str = "last.pt") -> Path:
    """The run ``--resume`` continues: the given folder (or its ``last.pt``), or with a bare ``--resume``
    the most recent ``<out>/<name>N`` that has a ``last.pt`` (``marker``: the file that makes a folder a
    run, ``cv.json`` for a cross-validation)."""
    if isinstance(resume, str):
        path = Path(resume)
        run = path.parent if path.name == marker or path.name.endswith(".pt") else path
        if not (run / marker).is_file():
            raise MaskwatchError(f"--resume {resume}: no {marker} there to resume from")
        return run
    base = Path(out)
    runs = [p.parent for p in base.glob(f"*/{marker}") if run_number(p.parent, name) is not None]
    if not runs:
        raise MaskwatchError(f"--resume: no {out}/{name}N/{marker} to resume from (or pass --resume PATH)")
    return max(runs, key=lambda p: (p / marker).stat().st_mtime)
