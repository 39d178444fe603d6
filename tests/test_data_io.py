"""Image loading as every reader and the training loop rely on it: any mode → RGB, EXIF applied, the
real format sniffed; header-only sizes; files placed without re-encoding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write, image_size, link_or_copy, load_image

RED = (200, 30, 40)


def _exif_rotated(path: Path, orientation: int) -> None:
    """A 40×20 image stored landscape whose EXIF says 'rotate': displayed portrait (20×40)."""
    im = Image.new("RGB", (40, 20), RED)
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue band on the stored left edge
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, exif=exif, **({"quality": 95} if path.suffix == ".jpg" else {}))


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "LA", "CMYK", "1", "I;16"])
def test_any_mode_loads_as_rgb(mode: str, tmp_path: Path) -> None:
    base = Image.new("RGB", (12, 8), RED)
    if mode == "I;16":
        im = Image.fromarray(np.full((8, 12), 200 * 257, dtype=np.uint16))
    elif mode == "P":
        im = base.quantize(colors=4)
    else:
        im = base.convert(mode)
    ext = ".tif" if mode == "CMYK" else ".png"
    path = tmp_path / f"x{ext}"
    im.save(path)
    arr = load_image(path)
    assert arr.shape == (8, 12, 3) and arr.dtype == np.uint8
    if mode in ("RGB", "RGBA", "P", "CMYK"):
        assert np.abs(arr[0, 0].astype(int) - RED).max() <= 3
    elif mode == "I;16":
        assert (arr == 200).all(), "16-bit gray is scaled to 8 bits, not clipped to white"
    else:
        assert arr[0, 0, 0] == arr[0, 0, 1] == arr[0, 0, 2], "gray stays gray in all three channels"


def test_transparent_pixels_composite_on_black(tmp_path: Path) -> None:
    im = Image.new("RGBA", (4, 4), (255, 255, 255, 0))
    im.putpixel((0, 0), (10, 200, 30, 255))
    im.save(tmp_path / "a.png")
    arr = load_image(tmp_path / "a.png")
    assert tuple(arr[0, 0]) == (10, 200, 30) and tuple(arr[3, 3]) == (0, 0, 0)


@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_exif_orientation_is_applied_to_pixels_and_size(ext: str, tmp_path: Path) -> None:
    path = tmp_path / f"phone{ext}"
    _exif_rotated(path, 6)  # 6: rotate 90° clockwise to display
    arr = load_image(path)
    assert arr.shape == (40, 20, 3)
    assert arr[2, 10, 2] > 150 and arr[-3, 10, 0] > 150, "the stored left band is now on top"
    assert image_size(path) == (20, 40)
    _exif_rotated(path, 1)
    assert image_size(path) == (40, 20) and load_image(path).shape == (20, 40, 3)


def test_png_named_jpg_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "really_a_png.jpg"
    Image.new("RGBA", (7, 5), (*RED, 255)).save(path, format="PNG")
    assert load_image(path).shape == (5, 7, 3)
    assert image_size(path) == (7, 5)


def test_missing_and_unreadable_images_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a JPEG")
    for fn in (load_image, image_size):
        with pytest.raises(MaskwatchError, match=r"broken\.jpg: unreadable image") as e:
            fn(bad)
        assert "\n" not in str(e.value)
        with pytest.raises(MaskwatchError, match=r"gone\.png: image not found"):
            fn(tmp_path / "gone.png")


def test_image_size_reads_only_the_header(tmp_path: Path) -> None:
    """A truncated file still has its size: no pixels are decoded for stats or conversion."""
    path = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), RED).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert image_size(path) == (3000, 2000)
    with pytest.raises(MaskwatchError, match="unreadable image"):
        load_image(path)


def test_link_or_copy_keeps_bytes(tmp_path: Path) -> None:
    src = tmp_path / "a.jpg"
    Image.new("RGB", (5, 5), RED).save(src, quality=70)
    link_or_copy(src, tmp_path / "out" / "linked.jpg")
    link_or_copy(src, tmp_path / "out" / "copied.jpg", copy=True)
    assert (tmp_path / "out" / "linked.jpg").read_bytes() == src.read_bytes()
    assert (tmp_path / "out" / "linked.jpg").stat().st_ino == src.stat().st_ino, "same file, no new bytes"
    assert (tmp_path / "out" / "copied.jpg").read_bytes() == src.read_bytes()
    assert (tmp_path / "out" / "copied.jpg").stat().st_ino != src.stat().st_ino
    with pytest.raises(MaskwatchError, match="image not found"):
        link_or_copy(tmp_path / "nope.jpg", tmp_path / "out" / "n.jpg")


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_bgr_images_are_written_whole_by_their_extension(tmp_path: Path) -> None:
    import cv2

    from maskwatch.io import write_bgr_image

    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :, 2] = 200  # red in OpenCV's BGR order
    write_bgr_image(tmp_path / "a.png", image)
    assert np.array_equal(cv2.imread(str(tmp_path / "a.png")), image)  # PNG: lossless
    write_bgr_image(tmp_path / "a.jpg", image, quality=95)
    assert np.abs(cv2.imread(str(tmp_path / "a.jpg")).astype(int) - image).max() < 8
    with pytest.raises(MaskwatchError, match=r"cannot encode an image as \.weird"):
        write_bgr_image(tmp_path / "a.weird", image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]  # no temporary left behind
