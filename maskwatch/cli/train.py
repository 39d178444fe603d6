"""``maskwatch train``: fine-tune a detector on a learning base."""

from __future__ import annotations

import argparse

from maskwatch.models.names import MODEL_NAMES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="fine-tune a detector on a learning base",
        description="Fine-tune a detector. Options override --config FILE; KEY=VALUE pairs override both.",
    )
    p.add_argument("--data", help="learning base (folder or annotation file)")
    p.add_argument("--format", choices=["auto", "voc", "yolo", "coco", "createml"])
    p.add_argument(
        "--split", help="folder with train.txt and val.txt (from 'maskwatch data split'), or one stems file"
    )
    p.add_argument("--merge", action="append", help="class merge 'SRC[,SRC...]=DST' (repeatable)")
    p.add_argument("--classes", help="comma-separated model class order (default: dataset order)")
    p.add_argument("--model", choices=MODEL_NAMES, help="architecture (default maskface-mnet)")
    p.add_argument("--weights", help="initial weights: a maskwatch checkpoint or the architecture's own file")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--imgsz", type=int, help="long side at inference (default 640)")
    p.add_argument("--lr", type=float)
    p.add_argument("--workers", type=int)
    p.add_argument("--device", choices=["cpu", "cuda", "auto"])
    p.add_argument("--seed", type=int)
    p.add_argument("--focal", type=float, dest="focal_gamma", help="focal-loss gamma for the class head")
    p.add_argument("--resume", action="store_true", default=None, help="continue the latest run from last.pt")
    p.add_argument("--out", help="runs folder (default runs/train)")
    p.add_argument("--name", help="run name prefix (default exp)")
    p.add_argument("--config", help="YAML file of config keys")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="any config key, e.g. crop=448")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.engine.train import make_config, parse_overrides, train

    options = {
        k: v for k, v in vars(args).items() if k not in ("func", "command", "config", "overrides", "quiet")
    }
    if options.get("classes"):
        options["classes"] = [c.strip() for c in options["classes"].split(",")]
    cfg = make_config(args.config, **{**options, **parse_overrides(args.overrides)})
    if not cfg.resume and not cfg.data:
        from maskwatch.errors import MaskwatchError

        raise MaskwatchError("--data is required (or a --config that sets it)")
    run_dir = train(cfg)
    print(f"run saved to {run_dir} (best.pt, last.pt, metrics.jsonl)")
    return 0
