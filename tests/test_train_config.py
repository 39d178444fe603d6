"""The training config: typed, nested, complete; bad values found before any data loads or folder is made;
run folders found by exact name; the shipped configs describe the same run they always did."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
import yaml

from maskwatch.cli import main
from maskwatch.engine.train_config import (
    ClassifierConfig,
    TrainConfig,
    check_config,
    classifier_epochs,
    config_from_dict,
    make_config,
    next_run_dir,
    parse_overrides,
    read_config_file,
    resume_run_dir,
)
from maskwatch.errors import MaskwatchError

ROOT = Path(__file__).resolve().parents[1]

# The two shipped configs as they were before the config had sections (flat keys): the new files must
# describe exactly the same run (the shipped weights were bit-identical on re-run with these values).
OLD_FLAT = {
    "maskface-mnet.yaml": {
        "data": "../shared/data/face-mask-kaggle",
        "split": "splits/face-mask-kaggle",
        "merge": ["without_mask,mask_weared_incorrect=no_mask"],
        "classes": ["with_mask", "no_mask"],
        "model": "maskface-mnet",
        "weights": "../shared/weights/retinaface-mobilenet0.25/mobilenet0.25_Final.pth",
        "epochs": 40,
        "batch": 8,
        "imgsz": 640,
        "crop": 512,
        "lr": 0.001,
        "repeat_threshold": 0.8,
        "name": "maskface",
    },
    "maskface-mnet-trainval.yaml": {
        "data": "../shared/data/face-mask-kaggle",
        "split": "splits/face-mask-kaggle-trainval",
        "merge": ["without_mask,mask_weared_incorrect=no_mask"],
        "classes": ["with_mask", "no_mask"],
        "model": "maskface-mnet",
        "weights": "runs/train/maskface1/best.pt",
        "epochs": 12,
        "batch": 8,
        "imgsz": 640,
        "crop": 512,
        "lr": 0.0003,
        "warmup_steps": 20,
        "repeat_threshold": 0.8,
        "name": "maskface-trainval",
    },
}


@pytest.mark.parametrize("name", sorted(OLD_FLAT))
def test_shipped_configs_describe_the_same_run_as_before(name: str) -> None:
    from maskwatch.models.registry import architectures

    new = config_from_dict(read_config_file(str(ROOT / "configs" / name)))
    old = config_from_dict(OLD_FLAT[name])  # legacy flat keys map onto the sections
    old = dataclasses.replace(old, classifier=ClassifierConfig(epochs=0))  # those runs had no second stage
    # the loss options are written out, and they are the architecture's own defaults (what the old run used)
    assert new.model.options == architectures()[new.model.arch].options
    new = dataclasses.replace(new, model=dataclasses.replace(new.model, options={}))
    assert new == old
    # and every knob is spelled out in the file, not left to a default
    written = yaml.safe_load((ROOT / "configs" / name).read_text())
    for section in ("augment", "optimizer", "schedule", "model"):
        assert set(written[section]) >= set(dataclasses.asdict(new)[section]) - {"momentum"}, section


def test_the_default_recipe_writes_out_every_knob() -> None:
    """configs/maskface-mnet-kilc.yaml (the shipped default's recipe) spells out every section's knobs,
    its extra source's split, style and weight, and both box styles."""
    from maskwatch.models.registry import architectures

    written = yaml.safe_load((ROOT / "configs" / "maskface-mnet-kilc.yaml").read_text())
    cfg = config_from_dict(written)
    assert set(cfg.model.options) == set(architectures()["maskface-mnet"].options)
    assert cfg.model.options["box_styles"] == ["kaggle", "ilc"]
    for section in ("augment", "optimizer", "schedule", "classifier"):
        assert set(written[section]) >= set(dataclasses.asdict(cfg)[section]) - {"momentum"}, section
    assert cfg.classifier.epochs == 6 and cfg.classifier.arch == "mnet" and cfg.epochs == 28
    (ilc,) = written["extra"]
    assert set(ilc) == set(dataclasses.asdict(cfg.extra[0])) - {"format"}
    assert ilc["box_style"] == "ilc" and (ROOT / ilc["split"] / "test.txt").is_file()


def test_nested_overrides_are_typed() -> None:
    cfg = make_config(
        None,
        data="d",
        **parse_overrides(
            [
                "optimizer.lr=3e-4",
                "augment.scale=[0.5, 1.5]",
                "model.options.focal_gamma=2",
                "optimizer.clip_grad_norm=0",
                "extra=[{data: other, merge: ['a=b']}]",
                "epochs=3",
            ]
        ),
    )
    assert cfg.optimizer.lr == 3e-4 and cfg.augment.scale == (0.5, 1.5)
    assert cfg.model.options == {"focal_gamma": 2} and cfg.optimizer.clip_grad_norm == 0.0
    assert isinstance(cfg.optimizer.clip_grad_norm, float)
    assert cfg.extra[0].data == "other" and cfg.extra[0].merge == ["a=b"] and cfg.extra[0].format == "auto"
    assert cfg.epochs == 3 and cfg.augment.crop == 512, "untouched keys keep their defaults"
    # the old flat spellings still work (configs and checkpoints written before the sections)
    legacy = make_config(
        None, data="d", lr=0.01, crop=448, warmup_steps=5, focal_gamma=1.5, model="maskface-mnet"
    )
    assert (legacy.optimizer.lr, legacy.augment.crop, legacy.schedule.warmup_steps) == (0.01, 448, 5)
    assert legacy.model.options == {"focal_gamma": 1.5}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("epochs=many", "config key epochs: expected int, got 'many'"),
        ("epochs=2.5", "config key epochs: expected int"),
        ("optimizer.lr=fast", "config key optimizer.lr: expected float"),
        ("augment.scale=[0.5]", "config key augment.scale: expected tuple"),
        ("augment.flip=yes", "config key augment.flip: expected float"),  # YAML yes is a bool
        ("augment.bogus=1", "unknown config key 'augment.bogus'"),
        ("optimiser.lr=1", "unknown config key 'optimiser'"),
        ("epochs.x=1", "epochs is not a section"),
        ("extra=[{path: x}]", "unknown config key 'extra[0].path'"),
        ("batch=0", "batch must be at least 1, got 0"),
        ("epochs=0", "epochs must be at least 1, got 0"),
        ("optimizer.lr=-1", "lr must be positive, got -1.0"),
        ("device=gpu", "device 'gpu' is not one of cpu, cuda, cuda:N, auto"),
        ("optimizer.name=adam", "optimizer.name 'adam' is not one of adamw, sgd"),
        ("weights=no/such.pt", "no/such.pt: weights file not found"),
        ("=3", "bad override '=3'"),
    ],
)
def test_bad_values_are_one_line_errors_before_anything_is_written(
    override: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # --data points at nothing: the error must come from the config check, before any data is read
    args = ["train", "--data", str(tmp_path / "no-such-base"), "--out", str(tmp_path / "runs"), override]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists(), "no run folder for a bad config"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--batch", "0"], "batch must be at least 1"),
        (["--lr", "-1"], "lr must be positive"),
        (["--device", "gpu"], "device 'gpu' is not one of"),
        (["--epochs", "0"], "epochs must be at least 1"),
        (["--epochs", "many"], "invalid int value"),
    ],
)
def test_bad_options_are_one_line_errors(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "runs"), *flags]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_config_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: [1\n")
    with pytest.raises(MaskwatchError, match="malformed YAML"):
        make_config(str(bad))
    bad.write_text("- 1\n")
    with pytest.raises(MaskwatchError, match="expected a mapping"):
        make_config(str(bad))
    bad.write_text("optimizer: 3\n")
    with pytest.raises(MaskwatchError, match="config key optimizer: expected OptimizerConfig"):
        make_config(str(bad))
    with pytest.raises(MaskwatchError, match="config file not found"):
        make_config(str(tmp_path / "none.yaml"))


def test_saved_config_round_trips() -> None:
    cfg = make_config(
        None, data="d", **parse_overrides(["augment.hsv=[0.1, 0.2, 0.3]", "model.options.focal_gamma=2"])
    )
    text = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
    assert config_from_dict(yaml.safe_load(text)) == cfg


def _fake_run(out: Path, name: str, age: float) -> Path:
    run = out / name
    run.mkdir(parents=True)
    (run / "last.pt").write_bytes(b"x")
    t = time.time() - age
    os.utime(run / "last.pt", (t, t))
    return run


def test_runs_are_found_by_exact_name_and_number(tmp_path: Path) -> None:
    _fake_run(tmp_path, "maskface1", age=300)
    mine = _fake_run(tmp_path, "maskface2", age=200)
    _fake_run(tmp_path, "maskface-trainval1", age=10)  # newer, but another run name
    _fake_run(tmp_path, "maskfaceX", age=5)
    assert resume_run_dir(True, str(tmp_path), "maskface") == mine
    assert resume_run_dir(True, str(tmp_path), "maskface-trainval") == tmp_path / "maskface-trainval1"
    assert resume_run_dir(str(mine / "last.pt"), str(tmp_path), "ignored") == mine
    assert resume_run_dir(str(mine), str(tmp_path), "ignored") == mine
    with pytest.raises(MaskwatchError, match=r"no last\.pt there"):
        resume_run_dir(str(tmp_path / "maskface9"), str(tmp_path), "maskface")
    with pytest.raises(MaskwatchError, match=r"no .*/maskN/last\.pt"):
        resume_run_dir(True, str(tmp_path), "mask")
    assert next_run_dir(str(tmp_path), "maskface") == tmp_path / "maskface3"
    assert next_run_dir(str(tmp_path), "maskface-trainval") == tmp_path / "maskface-trainval2"


def test_defaults_are_one_typed_tree() -> None:
    cfg = TrainConfig()
    assert config_from_dict({}) == cfg
    tree = dataclasses.asdict(cfg)
    assert set(tree) >= {"augment", "optimizer", "schedule", "model", "extra", "seed", "merge"}


def test_the_second_stage_is_on_by_default_where_the_architecture_can_start_it() -> None:
    assert classifier_epochs(config_from_dict({})) == 6  # maskface-mnet: its own body starts the classifier
    assert classifier_epochs(config_from_dict({"classifier": {"epochs": 0}})) == 0
    assert classifier_epochs(config_from_dict({"model": {"arch": "retinanet-r50-fpn"}})) == 0
    asked = config_from_dict({"model": {"arch": "retinanet-r50-fpn"}, "classifier": {"epochs": 2}})
    with pytest.raises(MaskwatchError, match=r"no MobileNet-0\.25 body to start the classifier from"):
        check_config(asked)
