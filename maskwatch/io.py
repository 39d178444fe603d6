"""File helpers shared by every layer: atomic writes and robust image loading.

Outputs are written to a temporary name beside the target and renamed, so an interrupted or failed
run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from maskwatch.errors import MaskwatchError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp creates 0600 files, outputs should get the usual permissions

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """A progress bar over a per-file loop: it appears on a terminal only once the loop has run 2 s (a
    100 000-image base), and never in logs or tests (``disable=None``: off when stderr is not a tty)."""
    return iter(tqdm(items, desc=desc, total=total, unit="file", disable=None, leave=False, delay=2))


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place when the block succeeds.

    An existing directory at ``path`` is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_UMASK)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def link_or_copy(src: str | Path, dst: str | Path, copy: bool = False) -> None:
    """Put ``src``'s bytes at ``dst`` without re-encoding: a hard link (no space, instant) where the
    filesystem allows it, else a byte copy. ``copy=True`` always copies, for a base that will be edited in
    place (a hard-linked file edited in place changes its source too)."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not copy:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another filesystem, or one without hard links: copy instead
    try:
        shutil.copyfile(src, dst)
    except FileNotFoundError:
        raise MaskwatchError(f"{src}: image not found") from None


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write JSON atomically."""
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent)
        f.write("\n")


def read_json(path: str | Path) -> Any:
    """Read JSON, turning a missing or malformed file into a one-line :class:`MaskwatchError`."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise MaskwatchError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MaskwatchError(f"{path}: malformed JSON ({e})") from None


def load_image(path: str | Path) -> np.ndarray:
    """Load any image as an RGB ``uint8`` array (H, W, 3), EXIF orientation applied.

    Pillow sniffs the real format, so a PNG saved as ``.jpg`` loads; RGBA, palette, grayscale and CMYK
    are converted to RGB (alpha is composited on black, as a viewer without transparency shows it).
    """
    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"{path}: image not found")
    try:
        with Image.open(path) as opened:
            im: Image.Image = ImageOps.exif_transpose(opened)
            if im.mode.startswith("I;16") or im.mode == "I":
                # 16-bit grayscale: Pillow's convert("RGB") clips at 255 instead of scaling (a white image)
                gray = (np.asarray(im, dtype=np.float64) / 257.0).clip(0, 255).round().astype(np.uint8)
                return np.repeat(gray[..., None], 3, axis=2)
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGB", im.size, (0, 0, 0))
                bg.paste(im, mask=im.getchannel("A"))
                im = bg
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MaskwatchError(f"{path}: unreadable image ({e})") from None


def image_size(path: str | Path) -> tuple[int, int]:
    """Return (width, height) as displayed, reading only the header (EXIF rotation swaps the sides)."""
    path = Path(path)
    if not path.is_file():
        raise MaskwatchError(f"{path}: image not found")
    try:
        with Image.open(path) as im:
            w, h = im.size
            # Pillow decodes a whole PNG to look for an eXIf chunk after the pixels; one before them (where
            # writers put it) is already in ``info``, so only then is asking for the EXIF still header-only.
            header_only = im.format != "PNG" or "exif" in im.info
            orientation = im.getexif().get(0x0112, 1) if header_only else 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise MaskwatchError(f"{path}: unreadable image ({e})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)
