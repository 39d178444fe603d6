"""``maskwatch data frames``: frames at a fixed interval, named ``<video>_t<ms>`` for leak-free splits,
near-identical frames skipped, broken videos reported as one-line errors."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from maskwatch.cli import main
from maskwatch.data.frames import extract_frames
from maskwatch.data.split import FRAME_STEM
from maskwatch.errors import MaskwatchError


def _write_video(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_street_video_every_second(shared: Path, tmp_path: Path, capsys) -> None:
    video = shared / "videos" / "street-mask-720x404.mp4"
    out = tmp_path / "frames"
    assert (
        main(
            [
                "data",
                "frames",
                str(video),
                "--out",
                str(out),
                "--every",
                "2",
                "--max",
                "3",
                "--min-change",
                "0",
            ]
        )
        == 0
    )
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"street-mask-720x404_t{ms:08d}.jpg" for ms in (0, 2000, 4000)]
    assert all(FRAME_STEM.match(Path(n).stem)["video"] == "street-mask-720x404" for n in names)
    with Image.open(out / names[1]) as im:
        assert im.format == "JPEG" and im.size == (720, 404)
    assert "wrote 3 frames" in capsys.readouterr().out


def test_near_identical_frames_are_skipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    still = np.full((48, 64, 3), 90, dtype=np.uint8)
    moving = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(5)]
    video = _write_video(tmp_path / "cam 1.mp4", [still] * 8 + moving)
    out = tmp_path / "out"
    result = extract_frames(video, out, every=0)
    assert result.decoded == 13 and result.skipped_similar == 7
    assert [p.name for p in result.written] == [
        f"cam 1_t{ms:08d}.jpg" for ms in (0, 800, 900, 1000, 1100, 1200)
    ]
    assert sorted(out.iterdir()) == sorted(result.written)
    everything = extract_frames(video, tmp_path / "all", every=0, min_change=0)
    assert len(everything.written) == 13 and everything.skipped_similar == 0
    assert len(extract_frames(video, tmp_path / "max", every=0, min_change=0, max_frames=4).written) == 4


def test_frames_join_an_existing_folder(tmp_path: Path) -> None:
    out = tmp_path / "frames"
    out.mkdir()
    (out / "keep.jpg").write_bytes(b"x")
    video = _write_video(tmp_path / "v.mp4", [np.zeros((16, 16, 3), np.uint8)] * 3)
    extract_frames(video, out)
    assert sorted(p.name for p in out.iterdir()) == ["keep.jpg", "v_t00000000.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "v.mp4"], "no staging folder left"


def test_unreadable_or_missing_video(tmp_path: Path, capsys) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video at all")
    out = tmp_path / "out"
    assert main(["data", "frames", str(fake), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"maskwatch: error: {fake}: unreadable video") and err.count("\n") == 1
    assert main(["data", "frames", str(tmp_path / "gone.mp4"), "--out", str(out)]) == 1
    assert "gone.mp4: video not found" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4"], "nothing written"
    with pytest.raises(MaskwatchError, match="--every"):
        extract_frames(fake, out, every=-1)
