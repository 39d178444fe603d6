"""Compare training recipes on grouped K-fold cross-validation, not on one split: each recipe (a config
file, or the same config with different KEY=VALUE overrides) is cross-validated on the same folds, and
the table shows every recipe's mean ± std AP, AP50, AP75 and per-class AP, with the CPU minutes it took.

    python benchmarks/cv.py --folds 3 --config configs/maskface-mnet.yaml --recipe "base:" \\
        --recipe "focal:model.options.focal_gamma=2" --recipe "wide:augment.scale=[0.5,1.5] epochs=12" \\
        -- epochs=8

Extra sources always in training (e.g. ILC beside Kaggle) go in the config's ``extra``. Overrides after
``--`` apply to every recipe (a short schedule compares recipes; run the full CV once for
the recipe that wins). Each recipe's folds and ``cv.json`` are in ``<out>/<name>-<recipe>-cvN/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import time

from maskwatch.engine.crossval import HEADLINE, cross_validate
from maskwatch.engine.evaluate import json_safe
from maskwatch.engine.report import pipe_table
from maskwatch.engine.train_config import make_config, parse_overrides
from maskwatch.io import write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="the base training config")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument(
        "--recipe",
        action="append",
        required=True,
        help="'NAME:KEY=VALUE [KEY=VALUE...]' (repeatable; 'NAME:' alone is the config as it is)",
    )
    p.add_argument("--json", help="write every recipe's summary here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="applied to every recipe")
    a = p.parse_args()
    common = parse_overrides(a.overrides)
    recipes = []
    for spec in a.recipe:
        name, _, pairs = spec.partition(":")
        own = parse_overrides(shlex.split(pairs))
        cfg = make_config(a.config, **{**common, **own})  # every recipe checked before any training
        recipes.append((name, dataclasses.replace(cfg, name=f"{cfg.name}-{name}")))  # a folder per recipe
    rows, results, header = [], {}, []
    for name, cfg in recipes:
        t0 = time.process_time()
        cv_dir, summary = cross_validate(cfg, a.folds)
        minutes = (time.process_time() - t0) / 60
        m, s = summary["mean"], summary["std"]
        classes = list(m["per_class"])
        rows.append(
            [
                name,
                *(f"{m[k]:.1f} ± {s[k]:.1f}" for k in HEADLINE),
                *(f"{m['per_class'][c]:.1f} ± {s['per_class'][c]:.1f}" for c in classes),
                f"{minutes:.1f}",
            ]
        )
        results[name] = {"cv_dir": str(cv_dir), "cpu_minutes": round(minutes, 2), **summary}
        header = ["recipe", *HEADLINE, *(f"AP {c}" for c in classes), "CPU min"]
    print(f"{a.folds}-fold cross-validation, mean ± std over the folds (COCO AP %)")
    print(pipe_table(header, rows))
    if a.json:
        write_json(a.json, json_safe(results))


if __name__ == "__main__":
    main()
