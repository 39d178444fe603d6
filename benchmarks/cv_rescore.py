"""Score a finished cross-validation run's fold models again, on the same held-out parts, with settings
that need no detector retraining: test-time augmentation (``--tta``), another input size (``--imgsz``),
or a crop classifier trained per fold on that fold's training images (``--classifier ARCH``).

    python benchmarks/cv_rescore.py runs/train/kilc-cv1 --tta --json docs/cv-tta.json
    python benchmarks/cv_rescore.py runs/train/kilc-cv1 --classifier mnet --classifier-epochs 6
    python benchmarks/cv_rescore.py runs/train/kilc-cv1 --classifier mnet --negatives 0   # no background
    python benchmarks/cv_rescore.py runs/train/kilc-cv1 --classifier mnet --second-boxes 3  # + duplicates
    python benchmarks/cv_rescore.py runs/train/kilc-cv1 --classifier mnet --refine 0      # detector's boxes

Prints the per-fold table (and each extra source's) beside the CV's own mean, so the setting is judged on
the K-fold mean, fold by fold, as the recipe was.
"""

from __future__ import annotations

import argparse
import time

import torch

from maskwatch.engine.crossval import HEADLINE, format_cv, read_cv, rescore_cv, summarise
from maskwatch.engine.evaluate import json_safe
from maskwatch.engine.train_config import CLASSIFIER_EPOCHS, ClassifierConfig
from maskwatch.io import write_json
from maskwatch.models.crops import CLASSIFIER_ARCHS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cv", help="a CV run folder (<out>/<name>-cvN with cv.json and foldN/last.pt)")
    p.add_argument("--tta", action="store_true", help="score with test-time augmentation")
    p.add_argument("--imgsz", type=int, help="network input long side (default: the models')")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic AP (were the faces found)")
    p.add_argument(
        "--classifier", choices=CLASSIFIER_ARCHS, help="train a crop classifier of this backbone per fold"
    )
    p.add_argument("--classifier-weights", help="its backbone's start (default with mnet: the fold model's)")
    p.add_argument("--classifier-epochs", type=int, default=CLASSIFIER_EPOCHS)
    p.add_argument("--classifier-size", type=int, default=ClassifierConfig.size, help="crop side (px)")
    p.add_argument("--alpha", type=float, default=ClassifierConfig.alpha, help="classifier vs detector")
    p.add_argument(
        "--negatives",
        type=int,
        default=ClassifierConfig.negatives,
        help="detector mistakes per training image taught as background (0: classes only)",
    )
    p.add_argument(
        "--second-boxes",
        type=int,
        default=ClassifierConfig.second_boxes,
        help="detector boxes an image on an already found face also taught as background",
    )
    p.add_argument("--beta", type=float, default=ClassifierConfig.beta, help="face probability's weight")
    p.add_argument(
        "--refine",
        type=float,
        default=ClassifierConfig.refine,
        help="how far each face's box moves to the one its crop draws (0: no box head)",
    )
    p.add_argument(
        "--no-classifier", action="store_true", help="fold models that have a crop classifier: run without it"
    )
    p.add_argument("--errors", action="store_true", help="where each fold's AP50 goes (as eval --errors)")
    p.add_argument(
        "--folds", type=int, nargs="+", metavar="N", help="score only these folds (default: all finished)"
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", help="write the summary here")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    classifier: bool | ClassifierConfig = not a.no_classifier
    if a.classifier:
        classifier = ClassifierConfig(
            epochs=a.classifier_epochs,
            arch=a.classifier,
            weights=a.classifier_weights,
            size=a.classifier_size,
            alpha=a.alpha,
            negatives=a.negatives,
            second_boxes=a.second_boxes,
            beta=a.beta,
            refine=a.refine,
        )
    t0 = time.process_time()
    summary = rescore_cv(
        a.cv,
        tta=a.tta,
        imgsz=a.imgsz,
        agnostic=a.agnostic,
        classifier=classifier,
        errors=a.errors,
        folds=a.folds,
    )
    minutes = (time.process_time() - t0) / 60
    chosen = (
        "TTA" if a.tta else "",
        f"imgsz {a.imgsz}" if a.imgsz else "",
        "agnostic" if a.agnostic else "",
        f"{a.classifier} classifier (alpha {a.alpha}, negatives {a.negatives}, "
        f"second boxes {a.second_boxes}, beta {a.beta}, refine {a.refine})"
        if a.classifier
        else "",
        "no classifier" if a.no_classifier else "",
    )
    setting = ", ".join(x for x in chosen if x)
    print(format_cv(summary, f"each fold's held-out part, {setting or 'as trained'}"))
    scored = {r["fold"] for r in summary["folds"]}
    before = summarise([r for r in read_cv(a.cv)["folds"] if r["fold"] in scored])  # as trained, same folds
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
