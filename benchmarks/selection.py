"""Does choosing what to label help? Active-learning check on the Kaggle set (issue 9).

Per seed: train a model on a small random part of the train split (``--initial`` images), let it choose
``--add`` more from the rest of the train split with ``prelabel --select --by mixed --base <initial>``
(the same code path as the command), and compare with ``--add`` chosen at random. Both are retrained
from the same starting weights on initial + added with their TRUE labels (a perfect correction session),
and scored on the test split (COCO AP, 2 classes). The spread over seeds says whether the gap is real.

    python benchmarks/selection.py --seeds 0 1 2 --json selection.json     # full: about 1 h on 2 idle cores
    python benchmarks/selection.py --quick                                 # smoke test: about 1-2 min

Full schedule: 20 epochs per model at the stage-1 settings of ``configs/maskface-mnet.yaml``; ``--quick``
shrinks everything (tiny sets, one training step) and proves only that the pipeline runs, not the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.apps.prelabel import prelabel
from maskwatch.data.formats import load_dataset
from maskwatch.data.record import Dataset
from maskwatch.data.split import read_split_dir, write_split
from maskwatch.engine.evaluate import evaluate, predict_dataset
from maskwatch.engine.train import make_config, train
from maskwatch.models.registry import load_detector

ROOT = Path(__file__).resolve().parents[1]
MERGE = ["without_mask,mask_weared_incorrect=no_mask"]
CLASSES = ["with_mask", "no_mask"]


def fit(stems: list[str], args: argparse.Namespace, seed: int, work: Path, name: str) -> Path:
    """Train from the WIDER FACE weights on ``stems`` (no validation: the last epoch is kept)."""
    split = work / f"split-{name}"
    write_split({"train": sorted(stems)}, split)
    cfg = make_config(
        str(ROOT / "configs" / "maskface-mnet.yaml"),
        data=str(args.shared / "data" / "face-mask-kaggle"),
        weights=str(args.shared / "weights" / "retinaface-mobilenet0.25" / "mobilenet0.25_Final.pth"),
        split=str(split),
        epochs=args.epochs,
        max_steps_per_epoch=args.steps,
        seed=seed,
        out=str(work / "runs"),
        name=name,
    )
    return train(cfg) / "best.pt"


def test_ap(checkpoint: Path, test: Dataset) -> float:
    det = load_detector(str(checkpoint))
    return float(evaluate(test, predict_dataset(det, test, progress=False), CLASSES)["AP"])


def one_seed(ds: Dataset, train_stems: list[str], test: Dataset, args: argparse.Namespace, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    order = [train_stems[i] for i in rng.permutation(len(train_stems))]
    initial, pool = order[: args.initial], order[args.initial :][: args.pool]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.time()
        m0 = fit(initial, args, seed, work, "initial")
        by_stem = {r.stem: r for r in ds}
        chosen = prelabel(
            [by_stem[s].image for s in pool],
            load_detector(str(m0)),
            conf=args.conf,
            select_n=args.add,
            by="mixed",
            base=ds.subset(initial),
        )
        mixed = [r.stem for r in chosen.dataset]
        random = [pool[i] for i in sorted(rng.choice(len(pool), size=len(mixed), replace=False))]
        row: dict[str, Any] = {"seed": seed, "added": len(mixed), "initial_AP": test_ap(m0, test)}
        for name, added in (("mixed", mixed), ("random", random)):
            row[f"{name}_AP"] = test_ap(fit(initial + added, args, seed, work, name), test)
        rare = {
            name: sum(lab == "no_mask" for s in added for lab in by_stem[s].labels)
            for name, added in (("mixed", mixed), ("random", random))
        }
        row["no_mask_boxes_added"] = rare
        row["minutes"] = round((time.time() - t0) / 60, 1)
    print(
        f"seed {seed}: initial AP {row['initial_AP']:.1f}, +{row['added']} mixed {row['mixed_AP']:.1f}, "
        f"+{row['added']} random {row['random_AP']:.1f} (no_mask boxes added: {rare}; {row['minutes']} min)",
        flush=True,
    )
    return row


def spread(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--split", type=Path, default=ROOT / "splits" / "face-mask-kaggle")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--initial", type=int, default=150, help="images the first model is trained on")
    p.add_argument("--add", type=int, default=100, help="images added by each strategy")
    p.add_argument("--pool", type=int, help="candidates to choose from (default: the rest of train)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, help="cap on steps per epoch")
    p.add_argument("--conf", type=float, default=0.3, help="prelabel threshold (selection scores use it)")
    p.add_argument("--test-limit", type=int, help="score on the first N test images only")
    p.add_argument("--quick", action="store_true", help="tiny smoke run: proves the pipeline, not the result")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if args.quick:
        args.seeds, args.initial, args.add, args.pool = args.seeds[:1], 8, 4, 12
        args.epochs, args.steps, args.test_limit = 1, 1, 6
    ds = load_dataset(args.shared / "data" / "face-mask-kaggle", merge=MERGE)
    splits = read_split_dir(args.split)
    test = ds.subset(splits["test"][: args.test_limit])
    rows = [one_seed(ds, splits["train"], test, args, s) for s in args.seeds]
    summary = {k: spread([r[f"{k}_AP"] for r in rows]) for k in ("initial", "mixed", "random")}
    gain = spread([r["mixed_AP"] - r["random_AP"] for r in rows])
    print(
        f"test AP over {len(rows)} seed(s), mean ± sd: initial {summary['initial']}, "
        f"+mixed {summary['mixed']}, +random {summary['random']}; mixed - random {gain}"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args)
                    | {"shared": str(args.shared), "split": str(args.split), "json": str(args.json)},
                    "seeds": rows,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
