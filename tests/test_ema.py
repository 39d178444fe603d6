"""The weights' moving average (``ema``): its arithmetic, what a run saves with it, and that a resumed
EMA run equals an unbroken one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from maskwatch.cli import main
from maskwatch.engine.ema import ModelEMA
from maskwatch.engine.train import make_config, train
from maskwatch.errors import MaskwatchError
from tests.test_train import _cfg, tiny  # noqa: F401 - the fixture


def test_the_average_follows_the_tensorflow_ramp_then_the_decay() -> None:
    model = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        model[0].weight.fill_(0.0)
    ema = ModelEMA(model, decay=0.5)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]):
        with torch.no_grad():
            model[0].weight.fill_(value)
            model[1].num_batches_tracked.fill_(n + 1)
        d = min(0.5, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
        ema.update(model)
    assert ema.updates == 12
    torch.testing.assert_close(ema.shadow["0.weight"], torch.full((1, 2), expected))
    assert ema.rate() == 0.5, "after the ramp the decay itself"
    assert int(ema.shadow["1.num_batches_tracked"]) == 12, "counters are copied, not averaged"
    with ema.applied(model) as raw:
        torch.testing.assert_close(model[0].weight, torch.full((1, 2), expected))
        torch.testing.assert_close(raw["0.weight"], torch.full((1, 2), 12.0))
    torch.testing.assert_close(model[0].weight, torch.full((1, 2), 12.0), msg="training weights put back")


@pytest.mark.slow
def test_an_ema_run_saves_the_average_and_resumes_exactly(tiny, tmp_path: Path) -> None:  # noqa: F811
    whole = train(_cfg(tiny, tmp_path / "a", ema=0.9))
    last = torch.load(whole / "last.pt", weights_only=False)
    best = torch.load(whole / "best.pt", weights_only=False)
    key = next(k for k, v in last["state_dict"].items() if v.dtype.is_floating_point and v.ndim == 4)
    assert not torch.equal(last["state_dict"][key], last["train_state_dict"][key]), "average != last step"
    torch.testing.assert_close(best["state_dict"][key], last["state_dict"][key])
    assert "train_state_dict" not in best, "best.pt is a plain model"
    metrics = [json.loads(x) for x in (whole / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in metrics if "val" in r] == [1, 2]

    def interrupt(epoch: int, run: Path, metrics: dict) -> None:
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny, tmp_path / "b", ema=0.9), on_epoch_end=[interrupt])
    resumed = torch.load(
        train(make_config(None, resume=True, out=str(tmp_path / "b"), name="t")) / "last.pt",
        weights_only=False,
    )
    for which in ("state_dict", "train_state_dict"):
        for k, v in last[which].items():
            torch.testing.assert_close(resumed[which][k], v, msg=f"{which} {k}")
    plain = torch.load(train(_cfg(tiny, tmp_path / "c")) / "last.pt", weights_only=False)
    torch.testing.assert_close(plain["state_dict"][key], last["train_state_dict"][key])


def test_a_bad_decay_is_refused_before_any_data_loads(tmp_path: Path, capsys) -> None:
    with pytest.raises(MaskwatchError, match=r"ema is a decay in \[0, 1\)"):
        make_config(None, data=str(tmp_path / "nowhere"), ema=1.0)
    assert main(["train", "--data", str(tmp_path / "nowhere"), "ema=1.5"]) == 1
    err = capsys.readouterr().err
    assert "ema is a decay in [0, 1)" in err and len(err.strip().splitlines()) == 1
