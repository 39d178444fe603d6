"""``maskwatch train``: fine-tune a detector on a learning base (or cross-validate a recipe with --folds)."""

from __future__ import annotations

import argparse

from maskwatch.models.names import MODEL_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a detector on a learning base",
        description="Fine-tune a detector. Options override --config FILE; KEY=VALUE pairs override both "
        "(nested keys with dots: optimizer.lr=3e-4 augment.scale=[0.5,1.5] model.options.focal_gamma=2).",
    )
    p.add_argument("--data", help="learning base (folder or annotation file)")
    p.add_argument("--format", choices=["auto", "voc", "yolo", "coco", "createml"])
    p.add_argument(
        "--split", help="folder with train.txt and val.txt (from 'maskwatch data split'), or one stems file"
    )
    p.add_argument("--merge", action="append", help="class merge 'SRC[,SRC...]=DST' (repeatable)")
    p.add_argument("--classes", help="comma-separated model class order (default: dataset order)")
    p.add_argument("--model", choices=MODEL_NAMES, help="architecture (default maskface-mnet)")
    p.add_argument(
        "--weights",
        help="initial weights: a maskwatch checkpoint or the architecture's own file "
        "(without it training starts from random weights, with a warning)",
    )
    p.add_argument("--epochs", type=int, help="with --resume: train the run longer, to N epochs")
    p.add_argument("--batch", type=int)
    p.add_argument("--imgsz", type=int, help="long side at inference (default 640)")
    p.add_argument("--lr", type=float, help="base learning rate (optimizer.lr)")
    p.add_argument("--workers", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--focal", type=float, dest="focal_gamma", help="focal-loss gamma (model.options.focal_gamma)"
    )
    p.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="RUN",
        help="continue a run from its last.pt: RUN is the run folder or its last.pt "
        "(alone: the latest <out>/<name>N); a cross-validation folder (with --folds alone: the latest "
        "<out>/<name>-cvN) continues its unfinished folds",
    )
    p.add_argument("--folds", type=int, help="cross-validate: train K models on grouped folds of --data")
    p.add_argument("--out", help="runs folder (default runs/train)")
    p.add_argument("--name", help="run name prefix (default exp)")
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="any config key, e.g. augment.crop=448")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.engine.train_config import make_config, parse_overrides
    from maskwatch.errors import MaskwatchError

    skip = ("func", "command", "config", "overrides", "quiet", "folds")
    options = {k: v for k, v in vars(args).items() if k not in skip}
    if options.get("classes"):
        options["classes"] = [c.strip() for c in options["classes"].split(",")]
    given = {**options, **parse_overrides(args.overrides)}
    if args.folds is not None or _names_cv_run(args.resume):
        from maskwatch.engine.crossval import cross_validate, format_cv, resume_cv_config

        cfg = resume_cv_config(args.config, **given) if args.resume else make_config(args.config, **given)
        if not cfg.data:
            raise MaskwatchError("--data is required (or a --config that sets it)")
        cv_dir, summary = cross_validate(cfg, args.folds)
        print(format_cv(summary))
        print(f"cross-validation saved to {cv_dir} (cv.json, cv.png, fold1..fold{summary['k']})")
        return 0
    cfg = make_config(args.config, **given)
    if not cfg.resume and not cfg.data:
        raise MaskwatchError("--data is required (or a --config that sets it)")
    from maskwatch.engine.train import RUN_FILES, train

    run_dir = train(cfg)
    written = [name for name in RUN_FILES if (run_dir / name).is_file()]
    print(f"run saved to {run_dir} ({', '.join(written)})")
    return 0


def _names_cv_run(resume: str | bool | None) -> bool:
    """``--resume PATH`` given a cross-validation folder (one with ``cv.json``) rather than a run."""
    from pathlib import Path

    if not isinstance(resume, str):
        return False
    path = Path(resume)
    return (path.name == "cv.json" and path.is_file()) or (path / "cv.json").is_file()
