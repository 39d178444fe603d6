"""Score a finished cross-validation run's fold models again, on the same held-out parts, with inference
settings that need no retraining: test-time augmentation (``--tta``) or another input size (``--imgsz``).

    python benchmarks/cv_rescore.py runs/train/kilc-cv1 --tta --json docs/cv-tta.json

Prints the per-fold table (and each extra source's) beside the CV's own mean, so the setting is judged on
the K-fold mean, fold by fold, as the recipe was.
"""

from __future__ import annotations

import argparse
import time

from maskwatch.engine.crossval import HEADLINE, format_cv, read_cv, rescore_cv
from maskwatch.engine.evaluate import json_safe
from maskwatch.io import write_json


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cv", help="a CV run folder (<out>/<name>-cvN with cv.json and foldN/last.pt)")
    p.add_argument("--tta", action="store_true", help="score with test-time augmentation")
    p.add_argument("--imgsz", type=int, help="network input long side (default: the models')")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic AP (were the faces found)")
    p.add_argument("--json", help="write the summary here")
    a = p.parse_args()
    t0 = time.process_time()
    summary = rescore_cv(a.cv, tta=a.tta, imgsz=a.imgsz, agnostic=a.agnostic)
    minutes = (time.process_time() - t0) / 60
    chosen = ("TTA" if a.tta else "", f"imgsz {a.imgsz}" if a.imgsz else "", "agnostic" if a.agnostic else "")
    setting = ", ".join(x for x in chosen if x)
    print(format_cv(summary, f"each fold's held-out part, {setting or 'as trained'}"))
    before = read_cv(a.cv)  # the CV as trained, over the same finished folds
    for name, now, was in [("held-out folds", summary, before)] + [
        (n, summary["sources"][n], before["sources"][n]) for n in summary.get("sources", {})
    ]:
        print(
            f"{name}: "
            + ", ".join(f"{k} {was['mean'][k]:.1f} -> {now['mean'][k]:.1f}" for k in HEADLINE)
            + ", "
            + ", ".join(
                f"{c} {was['mean']['per_class'][c]:.1f} -> {now['mean']['per_class'][c]:.1f}"
                for c in now["mean"]["per_class"]
                if c in was["mean"]["per_class"]  # --agnostic has one class, "face"
            )
        )
    print(f"{minutes:.1f} CPU-min")
    if a.json:
        write_json(a.json, json_safe({**summary, "cv": str(a.cv), "cpu_minutes": round(minutes, 2)}))


if __name__ == "__main__":
    main()
