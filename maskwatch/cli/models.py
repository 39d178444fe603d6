"""``maskwatch models``: the built-in models, whether their weights ship in the package, classes, size."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the built-in models and whether their weights are packaged",
        description="List the built-in model names (usable as --model NAME and maskwatch.load_model(NAME)), "
        "the weights shipped in the package (.pt for torch, .onnx for ONNX Runtime), classes and input size. "
        "A model without packaged weights is trained with `maskwatch train` and used by its checkpoint path.",
    )
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from maskwatch.api import builtin_models

    rows = builtin_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [("model", "weights", "classes", "imgsz", "box styles", "crop classifier")]
    for r in rows:
        packaged = [kind for kind in ("pt", "onnx") if r[kind]]
        table.append(
            (
                r["name"] + (" (default)" if r["default"] else ""),
                ", ".join(f".{k}" for k in packaged) or "none (train it)",
                ", ".join(r["class_names"]) if r["class_names"] else "-",
                str(r["imgsz"]),
                ", ".join(r["box_styles"]) if r["box_styles"] else "-",
                f"{r['classifier']['arch']}, {r['classifier']['size']} px crops" if r["classifier"] else "-",
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
