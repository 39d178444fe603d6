"""maskwatch: find faces with and without a mask in images, videos and camera streams.

``model = maskwatch.load_model(); dets = model(image)`` is the short way in; see the README's "Python".
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError

try:  # one source of truth: pyproject.toml's version, as installed
    __version__ = version("maskwatch")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["Detections", "MaskwatchError", "Model", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """``load_model`` and ``Model`` on first use, so ``import maskwatch`` stays light."""
    if name in ("load_model", "Model"):
        from maskwatch import api

        return getattr(api, name)
    raise AttributeError(f"module 'maskwatch' has no attribute {name!r}")
