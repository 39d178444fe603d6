"""Detectors behind one small interface, the registry of built-in names, and packaged weights."""

from maskwatch.models.base import Detector
from maskwatch.models.registry import DEFAULT_MODEL, build_detector, load_detector

__all__ = ["DEFAULT_MODEL", "Detector", "build_detector", "load_detector"]
