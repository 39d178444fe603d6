"""ONNX exports of user checkpoints, cached by the checkpoint's content so a run exports at most once.

The cache key is the SHA-256 of the checkpoint's bytes plus the export format: a retrained or edited
checkpoint has another hash and gets a fresh export, so a cached file is never stale. Files live in
``$MASKWATCH_CACHE_DIR`` or ``$XDG_CACHE_HOME/maskwatch`` (default ``~/.cache/maskwatch``), under
``onnx/``; deleting the folder only costs one re-export.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from maskwatch.io import file_hash
from maskwatch.models.export import EXPORT_FORMAT

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    if os.environ.get("MASKWATCH_CACHE_DIR"):
        return Path(os.environ["MASKWATCH_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "maskwatch"


def cached_onnx_path(checkpoint: Path, box_style: str | None = None) -> Path:
    """Where the export of ``checkpoint`` (as it is now, in ``box_style`` if given) lives in the cache."""
    style = f"-{box_style}" if box_style else ""
    return cache_dir() / "onnx" / f"{file_hash(checkpoint)}-f{EXPORT_FORMAT}{style}.onnx"


def store(path: Path, data: bytes) -> None:
    """Write an export to the cache atomically; a cache that cannot be written only costs speed."""
    from maskwatch.io import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            f.write(data)
    except OSError as e:
        log.info("cannot cache the ONNX export in %s (%s); exporting again next run", path.parent, e)
