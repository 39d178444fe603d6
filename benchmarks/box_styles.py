"""The default model's two box styles on one image, drawn over each other (``docs/box-styles.png``).

    python benchmarks/box_styles.py [IMAGE] [--out docs/box-styles.png]

Green: the ``kaggle`` style (the default), magenta: the ``ilc`` style (``--box-style ilc``). Same faces,
same scores and classes (one class head); only the box regressor differs. Default IMAGE: a bundled sample.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from maskwatch import load_model
from maskwatch.assets import sample_dir
from maskwatch.io import load_image, write_bgr_image

COLOURS = {"kaggle": (60, 200, 60), "ilc": (230, 60, 230)}  # BGR


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("image", nargs="?", default=str(sample_dir() / "maksssksksss307.jpg"))
    ap.add_argument("--out", default="docs/box-styles.png")
    ap.add_argument("--scale", type=float, default=2.0, help="enlarge the image before drawing")
    a = ap.parse_args()
    rgb = load_image(Path(a.image))
    canvas = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), None, fx=a.scale, fy=a.scale)
    for style, colour in COLOURS.items():
        found = load_model(box_style=style)(rgb)
        for box in np.round(found.xyxy * a.scale).astype(int):
            cv2.rectangle(canvas, tuple(box[:2]), tuple(box[2:]), colour, 2)
        w, h = np.median(found.widths), np.median(found.heights)
        print(f"{style}: {len(found)} faces, median box {w:.1f} x {h:.1f} px")
    for i, (style, colour) in enumerate(COLOURS.items()):
        label = f"--box-style {style}" + (" (default)" if i == 0 else "")
        cv2.putText(canvas, label, (10, 28 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4)
        cv2.putText(canvas, label, (10, 28 + 28 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.8, colour, 2)
    write_bgr_image(a.out, canvas)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
