"""Train a checkpoint's crop classifier again with other settings, its detector kept, on a recipe's
training images, and write the result as a new checkpoint: what ``maskwatch train --resume RUN
classifier.KEY=VALUE`` does for a run folder, for a file that has none, such as the shipped weights. It
measures a classifier setting on the shipped detector and the test parts, with ``maskwatch eval``.

    python benchmarks/reclassify.py --config configs/maskface-mnet-kilc.yaml --out runs/sb3.pt \\
        classifier.second_boxes=3
    maskwatch eval --model runs/sb3.pt ...   # the test-part commands of MODEL_CARD.md
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from maskwatch.engine.classifier import train_classifier_on
from maskwatch.engine.train import split_datasets
from maskwatch.engine.train_config import make_config, parse_overrides
from maskwatch.errors import MaskwatchError
from maskwatch.io import check_output
from maskwatch.models.base import read_checkpoint, write_checkpoint
from maskwatch.models.registry import load_detector, packaged_weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the recipe whose training images teach the classifier")
    p.add_argument("--model", default=str(packaged_weights("maskface-mnet")), help="checkpoint (.pt)")
    p.add_argument("--out", required=True, help="the new checkpoint")
    p.add_argument("overrides", nargs="*", help="KEY=VALUE config overrides, e.g. classifier.second_boxes=3")
    a = p.parse_args()
    try:
        check_output(a.out, "--out", [a.model, a.config])
        if Path(a.out).exists():
            raise MaskwatchError(f"--out {a.out}: exists; choose a new file name")
        cfg = make_config(a.config, **parse_overrides(a.overrides))
        ckpt = read_checkpoint(a.model)
        det = load_detector(a.model, "cpu")
    except MaskwatchError as e:
        sys.exit(f"error: {e}")
    train_ds, _, _ = split_datasets(cfg)
    t0 = time.process_time()
    det.classifier = train_classifier_on(
        train_ds,
        det.class_names,
        cfg.classifier,
        detector=det,
        init=det.model.state_dict(),
        seed=cfg.seed,
        device=det.device,
        desc="classifier",
    )
    ckpt["classifier"] = det.classifier.state()
    ckpt["config"] = {**(ckpt.get("config") or {}), "classifier": dataclasses.asdict(cfg.classifier)}
    write_checkpoint(a.out, ckpt)
    minutes = (time.process_time() - t0) / 60
    print(f"{a.out}: {a.model}'s detector, its classifier retrained ({minutes:.1f} CPU-min)")


if __name__ == "__main__":
    main()
