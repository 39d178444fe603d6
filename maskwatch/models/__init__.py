"""Detectors behind one small interface, the registry of built-in names, and packaged weights.

The registry is imported on first use, not with the package, so torch-free callers (the CLI's argument
parsing, ``maskwatch.models.names``) start fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_MODEL", "Detector", "build_detector", "load_detector"]


def __getattr__(name: str) -> Any:
    if name == "Detector":
        from maskwatch.models.base import Detector

        return Detector
    if name in ("DEFAULT_MODEL", "build_detector", "load_detector"):
        from maskwatch.models import registry

        return getattr(registry, name)
    raise AttributeError(name)
