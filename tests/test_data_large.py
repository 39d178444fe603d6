"""10 000 images: stats and convert read sizes from image headers, never pixels, and stay fast.

The images are truncated PNGs (a valid header, half the pixel data): any code path that decoded pixels
would fail on them, so passing proves the header-only claim without mocking anything.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.formats import load_dataset

N = 10_000


@pytest.fixture(scope="module")
def big_yolo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 50, 200)).save(buf, format="PNG", compress_level=0)
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    (root / "classes.txt").write_text("with_mask\nno_mask\n")
    for i in range(N):
        (root / "images" / f"im{i:05d}.png").write_bytes(truncated)
        if i % 5 == 0:  # the other images have no label file: no boxes (Ultralytics' rule)
            cls = i % 10 // 5
            (root / "labels" / f"im{i:05d}.txt").write_text(f"{cls} 0.5 0.5 0.75 0.75\n1 0.25 0.25 0.1 0.1\n")
    return root


def test_stats_and_convert_10000_images_from_headers(big_yolo: Path, tmp_path: Path, capsys) -> None:
    # the images are truncated PNGs: decoding any of them would fail, so both commands read headers only
    assert main(["data", "stats", str(big_yolo), "--json", str(tmp_path / "s.json")]) == 0
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["images"] == N and stats["boxes"] == 2 * 2000
    # 2000 labelled images, half with a 48×36 with_mask box, half a 48×36 no_mask one, all a 6×5 no_mask box
    assert stats["classes"]["with_mask"] == {"boxes": 1000, "small": 0, "medium": 1000, "large": 0}
    assert stats["classes"]["no_mask"] == {"boxes": 3000, "small": 2000, "medium": 1000, "large": 0}
    capsys.readouterr()

    assert main(["data", "convert", str(big_yolo), str(tmp_path / "coco"), "--to", "coco"]) == 0
    ds = load_dataset(tmp_path / "coco")
    assert len(ds) == N and ds.num_boxes == 4000 and (ds.records[5].width, ds.records[5].height) == (64, 48)
