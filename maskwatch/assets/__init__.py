"""Small CC0 sample images shipped with the package (see ``SOURCES.md``), so ``maskwatch detect`` with
no source shows the main job on a machine with no data of its own."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_images() -> list[Path]:
    """Paths of the bundled sample images, sorted by name."""
    return sorted(p for p in sample_dir().iterdir() if p.suffix == ".jpg")


def sample_dir() -> Path:
    """The folder holding the sample images (a source ``maskwatch detect`` can read as a folder)."""
    return Path(str(resources.files("maskwatch.assets")))
