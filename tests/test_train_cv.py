"""Grouped K-fold cross-validation on a tiny synthetic learning base: folds keep near-duplicates and video
frames together, cover every image once, are deterministic; extra sources only ever train; the report's
mean ± std is the folds' own numbers aggregated."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset
from maskwatch.engine.crossval import cross_validate, format_cv, make_folds, read_cv, rescore_cv, summarise
from maskwatch.engine.errors import BACKGROUND, KINDS
from maskwatch.engine.train import HookBase, Trainer, TrainingStopped, with_extras
from maskwatch.engine.train_config import ClassifierConfig, TrainConfig, make_config
from maskwatch.errors import MaskwatchError
from tests.synth import make_voc_dataset


def _copy(root: Path, src: str, dst: str) -> None:
    """Another image file with the same pixels (a near-duplicate) and the same boxes under a new stem."""
    shutil.copy(root / "images" / f"{src}.jpg", root / "images" / f"{dst}.jpg")
    xml = (root / "annotations" / f"{src}.xml").read_text().replace(f"{src}.jpg", f"{dst}.jpg")
    (root / "annotations" / f"{dst}.xml").write_text(xml)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_voc_dataset(tmp_path_factory.mktemp("cv"), n=12, seed=3)
    _copy(root, "synth000", "dup-of-synth000")
    # two frames of one video, named as 'maskwatch data frames' names them: different pixels, one group
    _copy(root, "synth001", "clip_t00000000")
    _copy(root, "synth002", "clip_t00001000")
    return root


def test_folds_are_grouped_deterministic_and_cover_every_image_once(base: Path) -> None:
    ds = load_dataset(base)
    folds = make_folds(ds, 3, seed=0)
    stems = [s for f in folds for s in f]
    assert sorted(stems) == sorted(r.stem for r in ds) and len(stems) == len(set(stems)) == 15
    fold_of = {s: i for i, f in enumerate(folds) for s in f}
    assert fold_of["dup-of-synth000"] == fold_of["synth000"], "near-duplicates stay together"
    assert fold_of["clip_t00000000"] == fold_of["clip_t00001000"], "frames of one video stay together"
    assert fold_of["clip_t00000000"] == fold_of["synth001"] == fold_of["synth002"]
    assert all(folds), "no empty fold"
    assert make_folds(ds, 3, seed=0) == folds, "deterministic for a seed"
    assert any(make_folds(ds, 3, seed=s) != folds for s in (1, 2, 3)), "the seed matters"
    with pytest.raises(MaskwatchError, match="at least 2"):
        make_folds(ds, 1)
    with pytest.raises(MaskwatchError, match="only 15 image"):
        make_folds(ds, 16)


def test_summary_aggregates_the_folds() -> None:
    rows = [
        {"fold": 1, "images": 3, "AP": 40.0, "AP50": 80.0, "AP75": 30.0, "per_class": {"a": 50.0, "b": 30.0}},
        {
            "fold": 2,
            "images": 4,
            "AP": 50.0,
            "AP50": 90.0,
            "AP75": 40.0,
            "per_class": {"a": 60.0, "b": math.nan},
        },
        {"fold": 3, "images": 5, "AP": 60.0, "AP50": 85.0, "AP75": 50.0, "per_class": {"a": 70.0, "b": 40.0}},
    ]
    s = summarise(rows)
    assert s["k"] == 3 and s["folds"] == rows
    assert s["mean"]["AP"] == 50.0 and s["std"]["AP"] == pytest.approx(10.0)  # sample std (ddof=1)
    assert s["mean"]["AP50"] == pytest.approx(85.0) and s["std"]["AP50"] == pytest.approx(5.0)
    assert s["mean"]["per_class"]["a"] == 60.0
    # a class with no ground truth in a fold has no AP there: averaged over the folds that have it
    assert s["mean"]["per_class"]["b"] == 35.0 and s["std"]["per_class"]["b"] == pytest.approx(7.07, abs=0.01)
    table = format_cv(s)
    assert "| mean ± std |" in table and "50.0 ± 10.0" in table and "35.0 ± 7.1" in table
    assert "nan" in table.splitlines()[4], "fold 2's missing class shows as nan, not 0"
    assert "Where AP50 goes" not in table


def test_summary_averages_where_ap50_goes() -> None:
    def errors(ap50: float, bg: float, missed: int) -> dict:
        kinds = {k: {"all": 2, "at_conf": 1, "AP50_without": ap50} for k in KINDS}
        kinds[BACKGROUND]["AP50_without"] = bg
        return {
            "AP50": ap50,
            "false_detections": kinds,
            "AP50_without_any_false_detection": bg + 1,
            "faces": 10,
            "missed": missed,
            "missed_under_16px": missed,
        }

    rows = [
        {
            "fold": i,
            "images": 3,
            "AP": 1.0,
            "AP50": a,
            "AP75": 1.0,
            "per_class": {"a": 1.0},
            "errors": errors(a, b, m),
        }
        for i, (a, b, m) in enumerate([(80.0, 84.0, 1), (90.0, 92.0, 3)], start=1)
    ]
    s = summarise(rows)
    e = s["errors"]
    assert e["AP50"] == 85.0 and e["false_detections"][BACKGROUND]["AP50_without"] == 88.0
    assert e["false_detections"][BACKGROUND]["all"] == 4 and (e["faces"], e["missed"]) == (20, 4)
    table = format_cv(s)
    assert "Where AP50 goes" in table and "| mean |" in table and "+3.0" in table and "4 of 20" in table


@pytest.mark.slow
def test_cross_validation_end_to_end(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    extra = make_voc_dataset(tmp_path / "extra", n=3, seed=9)
    for p in (extra / "images").iterdir():  # distinct stems, so a leak into a held-out fold would show
        p.rename(p.with_name("x" + p.name))
    for p in (extra / "annotations").iterdir():
        p.write_text(p.read_text().replace("<filename>synth", "<filename>xsynth"))
        p.rename(p.with_name("x" + p.name))
    split = extra / "split"  # train and val parts train every fold; the test part scores each fold's model
    split.mkdir()
    for name, stem in zip(("train", "val", "test"), ("xsynth000", "xsynth001", "xsynth002"), strict=True):
        (split / f"{name}.txt").write_text(stem + "\n")
    args = ["train", "--data", str(base), "--classes", "with_mask,no_mask", "--folds", "3", "--epochs", "1"]
    args += ["--batch", "2", "--imgsz", "128", "--out", str(tmp_path / "runs"), "--name", "t"]
    args += [
        "augment.crop=96",
        "max_steps_per_epoch=1",
        "schedule.warmup_steps=1",
        f"extra=[{{data: {extra}, split: {split}, box_style: tight}}]",
        "model.options.box_styles=[loose, tight]",
        "classifier.epochs=1",  # every fold also trains its crop classifier, and is scored with it
        "classifier.size=48",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    cv = tmp_path / "runs" / "t-cv1"
    summary = json.loads((cv / "cv.json").read_text())
    assert summary["k"] == 3 and [r["fold"] for r in summary["folds"]] == [1, 2, 3]
    held = [s for f in summary["fold_images"] for s in f]
    assert sorted(held) == sorted(r.stem for r in load_dataset(base)), "only the main base is held out"
    assert [r["images"] for r in summary["folds"]] == [len(f) for f in summary["fold_images"]]
    for key in ("AP", "AP50", "AP75"):
        values = [r[key] for r in summary["folds"]]
        assert summary["mean"][key] == pytest.approx(np.mean(values), abs=0.01)
        assert summary["std"][key] == pytest.approx(np.std(values, ddof=1), abs=0.01)
    assert set(summary["mean"]["per_class"]) == {"with_mask", "no_mask"}
    for i in (1, 2, 3):
        run = cv / f"fold{i}"
        assert (run / "last.pt").is_file() and (run / "config.yaml").is_file()
        steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        assert [r["val"] for r in steps if "val" in r] == [{}], "no validation on the held-out fold"
    assert (cv / "cv.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ilc = summary["sources"][extra.name]  # the extra source, scored on its own test part by every fold
    assert [r["fold"] for r in ilc["folds"]] == [1, 2, 3] and {r["images"] for r in ilc["folds"]} == {1}
    assert ilc["mean"]["AP"] == pytest.approx(np.mean([r["AP"] for r in ilc["folds"]]), abs=0.01)
    assert f"held-out test part of {extra.name}" in out
    assert "3-fold cross-validation" in out and "| mean ± std |" in out and str(cv) in out
    assert summary["config"]["extra"][0]["data"] == str(extra)
    # each fold trained on the other folds plus the extra source (the checkpoint records its data's hash)
    main_ds, extra_ds = load_dataset(base), load_dataset(extra).subset(["xsynth000", "xsynth001"])
    for i in range(3):
        others = [s for j, f in enumerate(summary["fold_images"]) if j != i for s in f]
        expected = with_extras(main_ds.subset(others), [extra_ds]).fingerprint()
        assert torch.load(cv / f"fold{i + 1}" / "last.pt", weights_only=False)["dataset_hash"] == expected
    # the fold models scored again as trained reproduce the CV's numbers; with TTA the same folds are scored
    again = rescore_cv(cv, errors=True)
    for key in ("AP", "AP50", "AP75"):
        assert [r[key] for r in again["folds"]] == [r[key] for r in summary["folds"]]
        assert [r[key] for r in again["sources"][extra.name]["folds"]] == [r[key] for r in ilc["folds"]]
    # where each fold's AP50 goes: pycocotools at IoU 0.5 alone gives the fold's own AP50 back
    for part in (again, again["sources"][extra.name]):
        assert [r["errors"]["AP50"] for r in part["folds"]] == pytest.approx(
            [r["AP50"] for r in part["folds"]]
        )
        assert part["errors"]["AP50"] == pytest.approx(part["mean"]["AP50"], abs=0.01)
    assert "Where AP50 goes" in format_cv(again) and "errors" not in summary
    for i in (1, 2, 3):
        assert torch.load(cv / f"fold{i}" / "last.pt", weights_only=False)["classifier"]["size"] == 48
    alone = rescore_cv(cv, classifier=False)  # the fold detectors alone
    assert [r["images"] for r in alone["folds"]] == [r["images"] for r in summary["folds"]]
    assert [r["per_class"] for r in alone["folds"]] != [r["per_class"] for r in summary["folds"]]
    retrained = rescore_cv(cv, classifier=ClassifierConfig(epochs=1, size=48))  # trained per fold again
    assert retrained["classifier"]["size"] == 48
    assert [r["AP"] for r in retrained["folds"]] == [r["AP"] for r in summary["folds"]], "not deterministic"
    third = rescore_cv(cv, classifier=ClassifierConfig(epochs=1, size=48), folds=[3])  # one fold alone
    assert [r["fold"] for r in third["folds"]] == [3] and third["folds"][0] == retrained["folds"][2]
    with pytest.raises(MaskwatchError, match=r"folds \[4\] asked, finished folds are \[1, 2, 3\]"):
        rescore_cv(cv, folds=[4])
    tta = rescore_cv(cv, tta=True)
    assert tta["tta"] is True
    assert [r["images"] for r in tta["folds"]] == [r["images"] for r in summary["folds"]]
    faces = rescore_cv(cv, agnostic=True)  # found or not, whatever the class: one class, "face"
    assert set(faces["mean"]["per_class"]) == {"face"} and faces["agnostic"] is True
    assert set(faces["sources"][extra.name]["mean"]["per_class"]) == {"face"}
    with pytest.raises(MaskwatchError, match="not a cross-validation run"):
        rescore_cv(tmp_path / "runs")


class _StopAfter(HookBase):
    """Stops the CV as Ctrl-C would, in fold ``fold`` once its epoch ``epoch`` (1-based) is saved."""

    def __init__(self, fold: int, epoch: int) -> None:
        self.fold, self.epoch = fold, epoch

    def after_epoch(self, t: Trainer) -> None:
        if t.run.name == f"fold{self.fold}" and t.epoch + 1 == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_stopped_cross_validation_resumes_as_if_unbroken(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def cfg(out: Path, **kw: object) -> TrainConfig:
        return make_config(
            None,
            data=str(base),
            classes=["with_mask", "no_mask"],
            epochs=2,
            batch=2,
            imgsz=128,
            out=str(out),
            name="t",
            **{"augment.crop": 96, "max_steps_per_epoch": 1, "schedule.warmup_steps": 1},
            **kw,
        )

    whole, summary = cross_validate(cfg(tmp_path / "a"), 3)
    with pytest.raises(TrainingStopped) as stop:  # stopped in fold 2, after its first epoch's checkpoint
        cross_validate(cfg(tmp_path / "b"), 3, hooks=[_StopAfter(fold=2, epoch=1)])
    cv = tmp_path / "b" / "t-cv1"
    assert stop.value.resume == cv, "--resume takes the CV folder, not the fold's run"
    said = f"cross-validation stopped, 1 of 3 folds finished: {cv / 'fold2'} holds 1 of 2 epochs"
    assert str(stop.value) == f"{said}; continue with: maskwatch train --resume {cv}"
    stopped = read_cv(cv)
    assert [r["fold"] for r in stopped["folds"]] == [1] and stopped["fold_images"] == summary["fold_images"]
    assert (cv / "fold2" / "last.pt").is_file() and not (cv / "fold3").exists()
    before = (cv / "fold1" / "last.pt").read_bytes()

    # the same command again with --resume continues fold 2 from its checkpoint, then fold 3
    args = ["train", "--data", str(base), "--classes", "with_mask,no_mask", "--folds", "3", "--epochs", "2"]
    args += ["--batch", "2", "--imgsz", "128", "--out", str(tmp_path / "b"), "--name", "t"]
    args += ["augment.crop=96", "max_steps_per_epoch=1", "schedule.warmup_steps=1"]
    assert main([*args, "--resume"]) == 0
    assert f"cross-validation saved to {cv}" in capsys.readouterr().out
    resumed = read_cv(cv)
    assert (cv / "fold1" / "last.pt").read_bytes() == before, "a finished fold is not trained again"
    assert resumed["folds"] == summary["folds"], "the same numbers as the unbroken CV"
    for i in (1, 2, 3):
        a = torch.load(whole / f"fold{i}" / "last.pt", weights_only=False)["state_dict"]
        b = torch.load(cv / f"fold{i}" / "last.pt", weights_only=False)["state_dict"]
        for key in a:
            torch.testing.assert_close(a[key], b[key], msg=f"fold {i}: {key}")
    assert (cv / "cv.png").is_file() and not (tmp_path / "b" / "t-cv2").exists()

    # refused in one line: nothing left to do, another K, a changed recipe, no CV there
    for extra, message in (
        (["--resume", str(cv)], "all 3 folds are finished"),
        (["--resume", str(whole), "--folds", "4"], "a 3-fold cross-validation, not --folds 4"),
        (["--resume", str(whole), "optimizer.lr=0.5"], "optimizer.lr cannot change"),
        (["--resume", str(whole), "--epochs", "3"], "epochs cannot change in a cross-validation"),
        (["--resume", str(tmp_path / "nothing")], "no last.pt there to resume from"),
    ):
        assert main(["train", *extra]) == 1, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
