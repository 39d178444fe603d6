"""Small CC0 sample images shipped with the package (see ``SOURCES.md``), so ``maskwatch detect`` with
no source shows the main job on a machine with no data of its own."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_images() -> list[Path]:
    """Paths of the bundled sample images, sorted by name."""
    folder = Path(str(resources.files("maskwatch.assets")))
    return sorted(p for p in folder.iterdir() if p.suffix == ".jpg")
