"""The training engine end to end on a tiny synthetic learning base: run layout, checkpoints, resume."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from maskwatch.cli import main
from maskwatch.data.split import write_split
from maskwatch.engine.sampler import epoch_indices, repeat_factors
from maskwatch.engine.train import HookBase, Trainer, TrainingStopped, make_config, train
from maskwatch.errors import MaskwatchError
from maskwatch.models.registry import load_detector
from tests.conftest import SUBPROCESS_ENV
from tests.synth import make_voc_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = make_voc_dataset(tmp_path_factory.mktemp("tiny"), n=6)
    split = root / "split"
    write_split({"train": [f"synth{i:03d}" for i in range(4)], "val": ["synth004", "synth005"]}, split)
    return root, split


def _cfg(tiny: tuple[Path, Path], out: Path, **kw):
    root, split = tiny
    base = dict(
        data=str(root),
        split=str(split),
        classes=["with_mask", "no_mask"],
        epochs=2,
        batch=2,
        imgsz=128,
        crop=96,
        max_steps_per_epoch=2,
        warmup_steps=1,
        out=str(out),
        name="t",
    )
    return make_config(None, **{**base, **kw})


@pytest.mark.slow
def test_run_layout_and_checkpoint_contents(tiny, tmp_path: Path) -> None:
    run = train(_cfg(tiny, tmp_path))
    assert run == tmp_path / "t1"
    assert {p.name for p in run.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "results.png",
        "last.pt",
        "best.pt",
    }
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["epochs"] == 2 and cfg["model"] == {"arch": "maskface-mnet", "options": {}}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "step" in r]
    epochs = [r for r in rows if "val" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert set(epochs[0]["val"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "per_class"}
    ckpt = torch.load(run / "best.pt", weights_only=False)
    for key in ("arch", "class_names", "imgsz", "meta", "state_dict", "metrics", "dataset_hash", "class_map"):
        assert key in ckpt
    det = load_detector(run / "best.pt")
    assert det.class_names == ("with_mask", "no_mask") and det.imgsz == 128
    assert train(_cfg(tiny, tmp_path)) == tmp_path / "t2", "a new run never overwrites an old one"


@pytest.mark.slow
def test_resume_reproduces_an_unbroken_run(tiny, tmp_path: Path) -> None:
    whole = train(_cfg(tiny, tmp_path / "a"))

    def interrupt(epoch: int, run: Path, metrics: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(TrainingStopped) as stop:  # a KeyboardInterrupt that says what was kept
        train(_cfg(tiny, tmp_path / "b"), on_epoch_end=[interrupt])
    assert stop.value.resume == tmp_path / "b" / "t1" and "holds 1 of 2 epochs" in str(stop.value)
    resumed = train(make_config(None, resume=True, out=str(tmp_path / "b"), name="t"))
    a = torch.load(whole / "last.pt", weights_only=False)["state_dict"]
    b = torch.load(resumed / "last.pt", weights_only=False)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    la = (whole / "metrics.jsonl").read_text().splitlines()
    lb = (resumed / "metrics.jsonl").read_text().splitlines()
    strip = [{k: v for k, v in json.loads(x).items() if k != "minutes"} for x in la]
    assert strip == [{k: v for k, v in json.loads(x).items() if k != "minutes"} for x in lb]


@pytest.mark.slow
def test_workers_do_not_change_the_training_stream(tiny, tmp_path: Path) -> None:
    main_process = train(_cfg(tiny, tmp_path / "w0", epochs=1))
    two_workers = train(_cfg(tiny, tmp_path / "w2", epochs=1, workers=2))
    a = torch.load(main_process / "last.pt", weights_only=False)["state_dict"]
    b = torch.load(two_workers / "last.pt", weights_only=False)["state_dict"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)


@pytest.mark.slow
def test_training_without_a_val_split_keeps_the_last_epoch(tiny, tmp_path: Path) -> None:
    split = tmp_path / "trainonly"
    write_split({"train": [f"synth{i:03d}" for i in range(6)]}, split)
    run = train(_cfg(tiny, tmp_path, split=str(split)))
    best = torch.load(run / "best.pt", weights_only=False)
    assert best["epoch"] == 1, "the last of the 2 epochs"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val"] for r in rows if "val" in r] == [{}, {}]
    from PIL import Image

    with Image.open(run / "results.png") as im:  # a real plot: a PNG with more than one colour drawn
        assert im.format == "PNG" and len(im.convert("RGB").getcolors(1 << 20) or []) > 2


def test_repeat_factor_sampler_repeats_rare_class_images() -> None:
    labels = [[0]] * 90 + [[0, 1]] * 10  # class 1 in 10% of the images
    f = repeat_factors(labels, 2, threshold=0.4)
    assert f[:90] == pytest.approx(1.0) and f[90:] == pytest.approx(2.0)
    idx = epoch_indices(f, np.random.default_rng(0))
    assert len(idx) == 110 and (idx >= 90).sum() == 20


def test_cli_errors_before_training(tiny, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root, split = tiny
    assert main(["train", "--data", str(root), "--out", str(tmp_path)]) == 1
    assert "no split" in capsys.readouterr().err
    bad = tmp_path / "leaky"
    write_split({"train": ["synth000", "synth001"], "val": ["synth001"]}, bad)
    assert main(["train", "--data", str(root), "--split", str(bad), "--out", str(tmp_path)]) == 1
    assert "split leaks" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--data",
                str(root),
                "--split",
                str(split),
                "--classes",
                "with_mask",
                "--out",
                str(tmp_path),
            ]
        )
        == 1
    )
    assert "'no_mask' is not in classes" in capsys.readouterr().err
    assert main(["train", "--data", str(root), "--split", str(split), "bogus=1"]) == 1
    assert "unknown config key 'bogus'" in capsys.readouterr().err
    assert main(["train", "--data", str(root), "--epochs", "many"]) == 1
    assert "invalid int value" in capsys.readouterr().err
    base = ["train", "--data", str(root), "--split", str(split), "--out", str(tmp_path)]
    assert main([*base, "model.options.bogus=1"]) == 1
    assert "model.options.bogus: maskface-mnet has no such option" in capsys.readouterr().err
    assert main([*base, "--folds", "1"]) == 1
    assert "--folds must be at least 2" in capsys.readouterr().err
    assert main([*base, "--resume", str(tmp_path / "nothing")]) == 1
    assert "no last.pt there to resume from" in capsys.readouterr().err
    assert not list(tmp_path.glob("exp*")), "nothing is written when the input is wrong"


@pytest.mark.slow
def test_cli_trains_with_config_and_overrides(tiny, tmp_path: Path) -> None:
    root, split = tiny
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"data": str(root), "split": str(split), "epochs": 1, "batch": 2}))
    rc = main(
        [
            "train",
            "--config",
            str(config),
            "--imgsz",
            "128",
            "--out",
            str(tmp_path),
            "--name",
            "cli",
            "crop=96",
            "max_steps_per_epoch=1",
            "classes=[with_mask, no_mask]",
        ]
    )
    assert rc == 0
    cfg = yaml.safe_load((tmp_path / "cli1" / "config.yaml").read_text())
    assert cfg["augment"]["crop"] == 96 and cfg["imgsz"] == 128 and cfg["epochs"] == 1


@pytest.mark.slow
def test_resume_extends_the_schedule_or_refuses_clearly(tiny, tmp_path: Path) -> None:
    run = train(_cfg(tiny, tmp_path, epochs=1))
    # as an older maskwatch wrote it: a flat config without sections (such runs must still resume)
    ckpt = torch.load(run / "last.pt", weights_only=False)
    c = ckpt["config"]
    sections = ("model", "augment", "optimizer", "schedule", "extra")
    ckpt["config"] = {k: v for k, v in c.items() if k not in sections} | {
        "model": "maskface-mnet",
        "lr": c["optimizer"]["lr"],
        "weight_decay": c["optimizer"]["weight_decay"],
        "warmup_steps": c["schedule"]["warmup_steps"],
        "crop": c["augment"]["crop"],
        "focal_gamma": 0.0,
        "resume": False,
    }
    torch.save(ckpt, run / "last.pt")
    with pytest.raises(
        MaskwatchError, match=r"already trained 1 of 1 epoch\(s\); pass --epochs N with N > 1"
    ):
        make_config(None, resume=str(run))
    with pytest.raises(MaskwatchError, match=r"optimizer\.lr cannot change"):
        make_config(None, resume=str(run / "last.pt"), epochs=2, lr=0.5)
    longer = make_config(None, resume=str(run / "last.pt"), epochs=2)
    assert longer.epochs == 2 and longer.resume == str(run) and longer.augment.crop == 96
    assert train(longer) == run
    assert torch.load(run / "last.pt", weights_only=False)["epoch"] == 1, "the second epoch was trained"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if "val" in r] == [1, 2]
    assert yaml.safe_load((run / "config.yaml").read_text())["epochs"] == 2


class _StopAtFirstStep(HookBase):
    def after_step(self, t: Trainer) -> None:
        raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_folder(
    tiny, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keep = tmp_path / "t1" / "notes.txt"  # a user's file in a folder of the same name is never touched
    with pytest.raises(TrainingStopped, match="nothing was kept") as stop:
        train(_cfg(tiny, tmp_path / "a"), hooks=[_StopAtFirstStep()])
    assert stop.value.resume is None, "no --resume is offered for a run that left nothing"
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").iterdir())
    assert "starts from random initialisation" in caplog.text, "no --weights is said loudly"
    root, split = tiny
    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    (broken / "images" / "synth001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MaskwatchError, match="synth001"):
        train(_cfg((broken, split), tmp_path / "b"))
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())
    keep.parent.mkdir(parents=True)
    keep.write_text("mine")
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny, tmp_path, name="t"), hooks=[_StopAtFirstStep()])  # t1 exists -> runs in t2
    assert keep.read_text() == "mine" and not (tmp_path / "t2").exists()


@pytest.mark.slow
def test_hooks_see_every_step_and_epoch(tiny, tmp_path: Path) -> None:
    calls: list[str] = []

    class Record(HookBase):
        def before_train(self, t: Trainer) -> None:
            calls.append("before_train")

        def before_epoch(self, t: Trainer) -> None:
            calls.append(f"before_epoch{t.epoch}")

        def after_step(self, t: Trainer) -> None:
            calls.append(f"step{t.step}:{sorted(t.losses)}")

        def after_epoch(self, t: Trainer) -> None:
            assert (t.run / "last.pt").is_file(), "built-in hooks (checkpoints) ran first"
            calls.append(f"after_epoch{t.epoch}:{'AP' in t.metrics}")

        def after_train(self, t: Trainer) -> None:
            calls.append("after_train")

    train(_cfg(tiny, tmp_path), hooks=[Record()])
    assert calls == [
        "before_train",
        "before_epoch0",
        "step1:['box', 'cls']",
        "step2:['box', 'cls']",
        "after_epoch0:True",
        "before_epoch1",
        "step3:['box', 'cls']",
        "step4:['box', 'cls']",
        "after_epoch1:True",
        "after_train",
    ]


def test_boxes_labelled_ignore_train_as_neither_face_nor_background(tmp_path: Path) -> None:
    """A learning base may mark faces nobody classified (sparse crowd labels) as ``ignore``: they are not
    a model class, their anchors leave the loss (``tests/test_models.py``), and validation ignores them."""
    from maskwatch.data.formats import load_dataset
    from maskwatch.data.voc import write_voc_file
    from maskwatch.engine.augment import IGNORE, AugmentConfig
    from maskwatch.engine.train import TrainSet

    root = make_voc_dataset(tmp_path / "base", n=6)
    for rec in load_dataset(str(root)).records:
        rec.labels[0] = "ignore"
        write_voc_file(rec, root / "annotations" / f"{rec.stem}.xml", rec.name)
    split = root / "split"
    write_split({"train": [f"synth{i:03d}" for i in range(4)], "val": ["synth004", "synth005"]}, split)
    cfg = _cfg((root, split), tmp_path / "runs", classes=None, epochs=1, **{"classifier.epochs": 0})
    run = train(cfg)
    assert load_detector(run / "best.pt").class_names == ("with_mask", "no_mask")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "AP" in metrics[-1]["val"]  # the val images hold ignore boxes too: scored, not refused
    ds = load_dataset(str(root))
    data = TrainSet(ds, ["with_mask", "no_mask"], AugmentConfig(), seed=0, imgsz=128)
    for rec, labels in zip(ds.records, data.labels, strict=True):
        assert labels[0] == IGNORE and (labels[1:] >= 0).all() and len(labels) == len(rec.labels)


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGHUP, marks=pytest.mark.slow)])
def test_a_stop_signal_keeps_the_last_epoch_and_says_how_to_go_on(
    sig: signal.Signals, tiny, tmp_path: Path
) -> None:
    """``kill``, a service manager or a closed terminal stops training as Ctrl-C does: the epochs saved so
    far are kept and the one line printed holds the command that continues the run, which works."""
    root, split = tiny
    cmd = [sys.executable, "-m", "maskwatch", "train", "--data", str(root), "--split", str(split)]
    cmd += ["--classes", "with_mask,no_mask", "--epochs", "60", "--batch", "2", "--imgsz", "128"]
    cmd += ["--out", str(tmp_path), "--name", "t", "augment.crop=96", "max_steps_per_epoch=2"]
    proc = subprocess.Popen(
        cmd, env=SUBPROCESS_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    run, deadline = tmp_path / "t1", time.monotonic() + 120
    while not (run / "last.pt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run saved" not in out
    saved = torch.load(run / "last.pt", weights_only=False)["epoch"] + 1
    assert 1 <= saved < 60
    last = err.strip().splitlines()[-1]
    go_on = f"maskwatch train --resume {run}"
    assert last == f"maskwatch: training stopped: {run} holds {saved} of 60 epochs; continue with: {go_on}"
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")], "no half-written file"
    # the printed command goes on from there (here one epoch further, to keep the test short)
    assert main(["train", "--resume", str(run), "--epochs", str(saved + 1)]) == 0
    assert torch.load(run / "last.pt", weights_only=False)["epoch"] + 1 == saved + 1


class _StopAfterTraining(HookBase):
    def after_train(self, t: Trainer) -> None:
        raise KeyboardInterrupt


@pytest.mark.slow
def test_a_run_stopped_after_its_last_stage_says_it_is_complete(tiny, tmp_path: Path) -> None:
    """Stopped once every stage has run (in a user's ``after_train`` hook), the run is whole: the message
    says so instead of offering a ``--resume`` that would refuse."""
    with pytest.raises(TrainingStopped, match=r"holds its 1 epochs and is complete$") as stop:
        train(_cfg(tiny, tmp_path, epochs=1), hooks=[_StopAfterTraining()])
    assert stop.value.resume is None
    assert load_detector(tmp_path / "t1" / "last.pt").classifier is not None
    with pytest.raises(MaskwatchError, match="already trained 1 of 1"):
        make_config(None, resume=str(tmp_path / "t1"))
