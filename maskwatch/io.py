"""File helpers shared by every layer: atomic writes, output checks and robust image loading.

Outputs are written to a temporary name beside the target and renamed, so an interrupted or failed
run never leaves a half-written file behind. The rules that keep a user's data safe live here, once, for
every command: an output may not be, contain or lie inside an input (:func:`check_output`); a folder is
replaced only if it is empty or maskwatch wrote it (:func:`check_replaceable`); pipes, devices and ``-``
are streamed to directly, never renamed over (:func:`open_output`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from maskwatch.errors import MaskwatchError

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: mkstemp creates 0600 files, outputs should get the usual permissions

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")

#: written into every output folder maskwatch builds that has no marker of its own, so a later run may
#: replace that folder (and only such a folder) without asking
OUTPUT_MARKER = ".maskwatch-output"

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


def is_stream(path: str | Path) -> bool:
    """Whether ``path`` is written to directly instead of atomically: ``-`` (stdout), or something that
    exists and is neither a regular file nor a folder (a named pipe, ``/dev/stdout``, ``/dev/null``).

    Renaming a temporary file over those would replace the pipe or device link with a regular file (its
    reader gets nothing; as root, ``/dev/stdout`` is gone), so they are streamed to line by line instead.
    """
    if str(path) == "-":
        return True
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout -> the pipe or terminal behind it
    except OSError:
        return False
    if str(path).startswith(("/dev/", "/proc/")):
        return True  # /dev/stdout redirected to a file: append to that file, never rename over the link
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


@contextlib.contextmanager
def open_output(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """:func:`atomic_write` for a regular file; a stream (see :func:`is_stream`) is opened for appending
    and written to as it goes (``-`` is stdout), so ``--jsonl - | jq`` sees each line when it is written."""
    if not is_stream(path):
        with atomic_write(path, mode, encoding) as f:
            yield f
        return
    if str(path) == "-":
        out: IO[Any] = sys.stdout.buffer if "b" in mode else sys.stdout
        yield out
        out.flush()
        return
    with open(path, mode.replace("w", "a"), encoding=None if "b" in mode else encoding) as f:
        yield f


def check_output(
    path: str | Path | None,
    option: str,
    inputs: Sequence[str | Path] = (),
    folder: bool = False,
) -> None:
    """Refuse an output before any work: one that is, contains or lies inside an input (after resolving
    links and ``..``), one of the wrong kind (a folder where a file goes or the reverse), and one that
    cannot be written (its nearest existing parent is a file, or no file can be created there).

    Writability is tested by creating and removing a temporary file, because permission bits do not
    tell (root ignores them; a read-only mount or ``/proc`` refuses root too).
    """
    if path is None or is_stream(path):
        return
    out = Path(os.path.abspath(path)).resolve()
    for src in inputs:
        inp = Path(os.path.abspath(src)).resolve()
        if out == inp:
            raise MaskwatchError(f"{option} {path}: is the input {src}; write the output elsewhere")
        if out in inp.parents:
            raise MaskwatchError(f"{option} {path}: contains the input {src}; write the output elsewhere")
        if inp in out.parents:
            raise MaskwatchError(f"{option} {path}: lies inside the input {src}; write the output elsewhere")
    if folder and out.is_file():
        raise MaskwatchError(f"{option} {path}: is a file; a folder is expected here")
    if not folder and out.is_dir():
        raise MaskwatchError(f"{option} {path}: is a folder; a file name is expected here")
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise MaskwatchError(f"{option} {path}: cannot be written ({parent} is a file, not a folder)")
    try:
        fd, probe = tempfile.mkstemp(prefix=".maskwatch-probe.", dir=parent)
    except OSError as e:
        raise MaskwatchError(f"{option} {path}: cannot be written ({e.strerror} in {parent})") from None
    os.close(fd)
    os.unlink(probe)


def check_replaceable(path: str | Path, marker: str = OUTPUT_MARKER) -> None:
    """Refuse to replace a folder maskwatch did not write: it may be replaced only if it is empty or holds
    ``marker`` (a file maskwatch puts in every folder it writes). One rule for every command, so no run
    ever deletes a user's own files."""
    path = Path(path)
    if path.is_file():
        raise MaskwatchError(f"{path}: exists and is a file; give a folder")
    if path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise MaskwatchError(
            f"{path}: exists and was not written by maskwatch (no {marker}); choose a new or empty folder"
        )


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


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks: the identity of an image or a checkpoint whatever
    its name (``data merge`` keeps an image once; the ONNX cache is keyed by the checkpoint's bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bgr_image(path: str | Path, image: np.ndarray, quality: int = 90) -> None:
    """A BGR image (OpenCV's order) written atomically, encoded by the file's extension (JPEG at
    ``quality``)."""
    import cv2

    suffix = Path(path).suffix.lower() or ".png"
    try:
        params = [cv2.IMWRITE_JPEG_QUALITY, quality] if suffix in (".jpg", ".jpeg") else []
        ok, data = cv2.imencode(suffix, image, params)
    except cv2.error:  # an extension OpenCV has no encoder for
        ok = False
    if not ok:
        raise MaskwatchError(f"{path}: cannot encode an image as {suffix}")
    with atomic_write(path, "wb") as f:
        f.write(data.tobytes())


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write JSON atomically (or straight into a pipe, a device or ``-``)."""
    with open_output(path) as f:
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


def pil_to_rgb(im: Image.Image) -> np.ndarray:
    """A PIL image of any mode as RGB ``uint8``: the one conversion for files (:func:`load_image`) and for
    PIL images handed to the Python API, so both give a model the same pixels."""
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
            return pil_to_rgb(ImageOps.exif_transpose(opened))
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
