"""How much correction do pre-labels need? Pre-label real video frames and compare them with boxes drawn by
hand (``benchmarks/data/video-reference``: VOC XML only; the frames are re-extracted from ``../shared``).

    python benchmarks/prelabel_quality.py                       # default model, --conf 0.3 (prelabel's)
    python benchmarks/prelabel_quality.py --conf 0.5 --json quality.json

A pre-labelled box needs no correction when it overlaps a hand-drawn face at IoU >= 0.5 (one-to-one,
greedy by score, as COCO matches) with the right class. The others need a class flip or are false boxes
to delete; hand-drawn faces no box matched are faces the labeller must draw. The reference labels every
real face (painted faces are not people and are not labelled), so a box on the masked Mona Lisa in
``group-mask`` counts as a false box.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from maskwatch.apps.prelabel import prelabel
from maskwatch.data.formats import load_dataset
from maskwatch.data.frames import extract_frames
from maskwatch.data.voc import integer_box
from maskwatch.engine.confusion import box_iou, match_image
from maskwatch.models.registry import load_detector

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "benchmarks" / "data" / "video-reference"


def reference_frames(shared: Path, reference: Path, work: Path) -> list[Path]:
    """Re-extract the labelled frames (same interval and near-duplicate rule) beside copies of their XML."""
    manifest = json.loads((reference / "frames.json").read_text())
    folders = []
    for video, every in manifest["videos"].items():
        stem = Path(video).stem
        xmls = sorted((reference / stem).glob("*.xml"))
        out = work / stem
        result = extract_frames(shared / "videos" / video, out, every, None, manifest["min_change"])
        have = {p.stem for p in result.written}
        missing = [x.stem for x in xmls if x.stem not in have]
        if missing:
            raise SystemExit(f"{video}: frame {missing[0]} not re-extracted; has the video changed?")
        for p in result.written:
            if p.stem not in {x.stem for x in xmls}:
                p.unlink()
        for x in xmls:
            shutil.copy(x, out)
        folders.append(out)
    return folders


def measure(folders: list[Path], model: str | None, conf: float, iou: float) -> dict:
    detector = load_detector(model)
    counts: Counter[str] = Counter()
    per_video = {}
    for folder in folders:
        truth = {r.stem: r for r in load_dataset(folder)}
        images = sorted(folder / truth[s].name for s in truth)
        result = prelabel(images, detector, conf=conf)
        c: Counter[str] = Counter()
        for cand in result.candidates:
            det = cand.detections.filter(conf=conf)
            boxes = np.array([integer_box(b, cand.width, cand.height) for b in det.xyxy], dtype=np.float64)
            ref = truth[cand.path.stem]
            gt_match, det_match = match_image(
                ref.boxes, np.zeros(len(ref.boxes), dtype=bool), boxes.reshape(-1, 4), det.confidence, iou
            )
            labels = det.label_names
            c["faces"] += len(ref.boxes)
            c["boxes"] += len(det)
            c["frames"] += 1
            for d, g in enumerate(det_match):
                if g < 0:
                    c["false"] += 1
                elif labels[d] == ref.labels[g]:
                    c["correct"] += 1
                    c["correct_iou75"] += int(box_iou(boxes[d], ref.boxes[g])[0, 0] >= 0.75)
                else:
                    c["wrong_class"] += 1
            c["missed"] += int((gt_match < 0).sum())
        per_video[folder.name] = dict(c)
        counts.update(c)
    out = dict(counts)
    out["no_correction_share"] = counts["correct"] / counts["boxes"] if counts["boxes"] else float("nan")
    out["per_video"] = per_video
    out["conf"], out["iou"] = conf, iou
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--reference", type=Path, default=REFERENCE)
    p.add_argument("--model", help="checkpoint or built-in name (default: the built-in default)")
    p.add_argument("--conf", type=float, default=0.3)
    p.add_argument("--iou", type=float, default=0.5)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(reference_frames(args.shared, args.reference, Path(tmp)), args.model, args.conf, args.iou)
    print(
        f"{m['frames']} frames, {m['faces']} hand-labelled faces, {m['boxes']} pre-labelled boxes "
        f"(--conf {m['conf']}, IoU >= {m['iou']})"
    )
    print(
        f"no correction: {m['correct']} of {m['boxes']} boxes ({100 * m['no_correction_share']:.1f}%); "
        f"class to flip: {m.get('wrong_class', 0)}; false boxes to delete: {m.get('false', 0)}; "
        f"faces missed (to draw): {m.get('missed', 0)}"
    )
    print(f"of the right boxes, {m.get('correct_iou75', 0)} are within IoU 0.75 of the hand-drawn box")
    for video, c in m["per_video"].items():
        print(f"  {video}: {c}")
    if args.json:
        args.json.write_text(json.dumps(m, indent=2) + "\n")


if __name__ == "__main__":
    main()
