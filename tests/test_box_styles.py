"""Box styles: one box regressor per label set's drawing style over shared features, picked per training
image by its source and at inference by ``--box-style``; extra sources train on their train/val parts only
and are sampled by their weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from maskwatch.cli import main
from maskwatch.data.record import SourceTag
from maskwatch.engine.train import TrainSet, load_extra, sampling_factors
from maskwatch.engine.train_config import SourceConfig, check_config, make_config
from maskwatch.errors import MaskwatchError
from maskwatch.models.registry import build_detector, load_detector
from tests.synth import make_voc_dataset

STYLES = ["loose", "tight"]


def _two_style_detector() -> object:
    torch.manual_seed(0)
    det = build_detector("maskface-mnet", ["with_mask", "no_mask"], 128, box_styles=STYLES)
    with torch.no_grad():  # make the second style's head differ from the first
        for p in det.model.StyleBboxHead.parameters():
            p.add_(torch.randn_like(p))
    return det


def test_each_image_gets_its_own_style_head() -> None:
    det = _two_style_detector()
    x = torch.randn(3, 3, 128, 128)
    with torch.no_grad():
        mixed, logits = det.model.forward_styles(x, torch.tensor([0, 1, 0]))
        det.use_box_style("loose")
        loose, logits0 = det.model(x)
        det.use_box_style("tight")
        tight, _ = det.model(x)
    assert not torch.allclose(loose, tight), "the styles' regressors differ"
    assert torch.equal(mixed[0], loose[0]) and torch.equal(mixed[2], loose[2])
    assert torch.equal(mixed[1], tight[1])
    assert torch.equal(logits, logits0), "one class head for every style"


def test_a_single_style_checkpoint_starts_every_style_and_round_trips(tmp_path: Path) -> None:
    one = build_detector("maskface-mnet", ["with_mask", "no_mask"], 128)
    two = build_detector("maskface-mnet", ["with_mask", "no_mask"], 128, box_styles=STYLES)
    two.load_state_dict(one.model.state_dict())
    for level in range(3):
        w0 = one.model.BboxHead[level].conv1x1.weight
        assert torch.equal(two.model.StyleBboxHead[0][level].conv1x1.weight, w0), "new style = first's copy"
    two.use_box_style("tight")
    two.save(tmp_path / "two.pt")
    back = load_detector(tmp_path / "two.pt")
    assert back.box_style_names() == STYLES and back.model.style == 0, "a loaded model starts in its first"
    back = load_detector(tmp_path / "two.pt", box_style="tight")
    assert back.model.style == 1
    with pytest.raises(MaskwatchError, match="--box-style 'ilc': this maskface-mnet model has loose, tight"):
        load_detector(tmp_path / "two.pt", box_style="ilc")
    # and the other way: a two-style checkpoint starts a one-style run (the extra heads are dropped)
    one.load_state_dict(back.model.state_dict())


def test_training_loss_uses_each_images_style() -> None:
    det = _two_style_detector()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8) for _ in range(2)]
    boxes = [np.array([[30, 30, 70, 80]], np.float32)] * 2
    labels = [np.array([0])] * 2
    det.model.train()
    torch.manual_seed(0)
    a = det.loss(images, boxes, labels, [0, 0])["box"]
    b = det.loss(images, boxes, labels, [0, 1])["box"]
    assert a.item() != pytest.approx(b.item()), "the second image's box loss comes from the other head"
    b.backward()
    assert det.model.StyleBboxHead[0][0].conv1x1.weight.grad is not None


@pytest.fixture(scope="module")
def extra_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_voc_dataset(tmp_path_factory.mktemp("extra"), n=5, seed=4)
    split = root / "split"
    split.mkdir()
    stems = sorted(p.stem for p in (root / "images").iterdir())
    (split / "train.txt").write_text("\n".join(stems[:3]) + "\n")
    (split / "val.txt").write_text(stems[3] + "\n")
    (split / "test.txt").write_text(stems[4] + "\n")
    return root


def test_an_extra_source_trains_on_its_train_and_val_parts_in_its_style(extra_base: Path) -> None:
    source = SourceConfig(
        data=str(extra_base), split=str(extra_base / "split"), box_style="tight", weight=0.5
    )
    ds = load_extra(source)
    test = (extra_base / "split" / "test.txt").read_text().split()
    assert len(ds) == 4 and not set(test) & {r.stem for r in ds}, "its test part stays held out"
    assert {r.source for r in ds} == {SourceTag("tight", 0.5, True)}
    one_file = load_extra(SourceConfig(data=str(extra_base), split=str(extra_base / "split" / "val.txt")))
    assert [r.stem for r in one_file] == (extra_base / "split" / "val.txt").read_text().split()
    data = TrainSet(ds, ["with_mask", "no_mask"], make_config(None).augment, 0, 128, STYLES)
    assert data.styles == [1, 1, 1, 1]
    assert data.sample(0, 0, 0)[3:] == (1, True)
    factors = sampling_factors(ds, data.labels, 2, 0.0)
    assert np.allclose(factors, 0.5), "weight 0.5: each image every other epoch on average"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("extra=[{data: D, box_style: nope}]", "box_style 'nope' is not in model.options.box_styles"),
        ("extra=[{data: D, weight: 0}]", "weight must be > 0"),
        ("extra=[{data: D, split: /nonexistent/split}]", "split /nonexistent/split not found"),
    ],
)
def test_bad_source_settings_are_refused_before_data_loads(
    extra_base: Path, override: str, message: str
) -> None:
    from maskwatch.engine.train_config import parse_overrides

    overrides = parse_overrides([override.replace("D", str(extra_base))])
    with pytest.raises(MaskwatchError, match=message):
        check_config(make_config(None, data=str(extra_base), **overrides))


def test_cli_refuses_an_unknown_box_style_in_one_line(
    dev_model: Path, dev_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from maskwatch.assets import sample_dir

    for args in (
        ["detect", str(sample_dir()), "--model", str(dev_model), "--box-style", "ilc", "--jsonl", "-"],
        ["detect", str(sample_dir()), "--model", str(dev_onnx), "--box-style", "ilc", "--jsonl", "-"],
        ["export", "--model", str(dev_model), "--box-style", "ilc", "--out", str(tmp_path / "m.onnx")],
    ):
        assert main(args) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--box-style 'ilc'" in err, err
    assert not (tmp_path / "m.onnx").exists()


def test_a_chosen_style_runs_alike_on_torch_and_onnx(dev_model: Path, tmp_path: Path) -> None:
    """A second style whose head draws every box ~18 % smaller: torch and ONNX Runtime both draw it when
    asked, the first style stays the default, and an export remembers the one style it holds."""
    from maskwatch.assets import sample_dir
    from maskwatch.io import load_image
    from maskwatch.predict import load_predictor
    from maskwatch.predict.onnx import OnnxPredictor

    one = load_detector(dev_model)
    two = build_detector("maskface-mnet", one.class_names, one.imgsz, box_styles=["default", "tight"])
    two.load_state_dict(one.model.state_dict())
    with torch.no_grad():
        for head in two.model.StyleBboxHead[0]:
            head.conv1x1.bias.view(-1, 4)[:, 2:] -= 1.0  # log-size offsets: w, h x exp(-0.2)
    two.save(tmp_path / "two.pt")
    image = load_image(sorted(sample_dir().glob("*.jpg"))[0])
    default = load_predictor(tmp_path / "two.pt", "torch").predict([image])[0]
    tight = load_predictor(tmp_path / "two.pt", "torch", box_style="tight").predict([image])[0]
    onnx = load_predictor(tmp_path / "two.pt", "onnx", box_style="tight")
    assert onnx.box_style == "tight"
    assert len(default) > 3 and len(tight) >= len(default)  # smaller boxes overlap less in NMS
    top = int(np.argmax(default.confidence))  # one class head: the best anchor is the same in both
    assert tight.confidence.max() == pytest.approx(default.confidence[top], abs=1e-4)
    area = tight.area[int(np.argmax(tight.confidence))] / default.area[top]
    assert area == pytest.approx(np.exp(-0.4), abs=0.02)
    got = onnx.predict([image])[0]
    assert np.allclose(got.xyxy, tight.xyxy, atol=0.5)
    assert (
        main(
            [
                "export",
                "--model",
                str(tmp_path / "two.pt"),
                "--box-style",
                "tight",
                "--out",
                str(tmp_path / "t.onnx"),
            ]
        )
        == 0
    )
    assert OnnxPredictor(tmp_path / "t.onnx").box_style == "tight"
    with pytest.raises(MaskwatchError, match="exported with box style 'tight'"):
        load_predictor(tmp_path / "t.onnx", box_style="default")


def test_a_source_without_negatives_teaches_no_background() -> None:
    """Label sets that box only the nearer faces in a crowd: their unboxed regions are ignored rather than
    taught as background, so only the class loss of their boxed faces remains."""
    det = build_detector("maskface-mnet", ["with_mask", "no_mask"], 128)
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)]
    boxes, labels = [np.array([[30, 30, 70, 80]], np.float32)], [np.array([0])]
    torch.manual_seed(0)
    with_bg = det.loss(images, boxes, labels, [0], [True])
    without = det.loss(images, boxes, labels, [0], [False])
    assert torch.equal(with_bg["box"], without["box"]), "the boxed face's regression is unchanged"
    assert without["cls"].item() < with_bg["cls"].item(), "no background term left"
    empty = det.loss(images, [np.zeros((0, 4), np.float32)], [np.zeros(0, np.int64)], [0], [False])
    assert empty["cls"].item() == 0.0, "an image with no box and no negatives teaches nothing"


def test_fine_tune_the_default_by_name_on_a_one_style_base(extra_base: Path, tmp_path: Path) -> None:
    """The user's case: ``--weights maskface-mnet`` starts from the packaged two-style default; a base with
    one box style keeps the default's first-style regressor and drops the other."""
    from maskwatch.models.registry import packaged_weights

    args = [
        "train",
        "--data",
        str(extra_base),
        "--split",
        str(extra_base / "split"),
        "--weights",
        "maskface-mnet",
    ]
    args += ["--classes", "with_mask,no_mask", "--epochs", "1", "--batch", "2", "--imgsz", "128"]
    args += ["--out", str(tmp_path), "--name", "ft", "max_steps_per_epoch=1", "optimizer.lr=1e-12"]
    args += ["augment.crop=96", "schedule.warmup_steps=1"]
    assert main(args) == 0
    tuned = torch.load(tmp_path / "ft1" / "last.pt", weights_only=False)
    shipped = torch.load(packaged_weights("maskface-mnet"), weights_only=False)
    assert tuned["options"]["box_styles"] == ["default"]
    assert not any(k.startswith("StyleBboxHead") for k in tuned["state_dict"])
    key = "BboxHead.0.conv1x1.weight"
    assert torch.allclose(tuned["state_dict"][key], shipped["state_dict"][key], atol=1e-6)
