"""Shared fixtures. ``shared`` is the ``../shared`` folder of data and weights the project may use but not
ship; tests that need it skip without it, and fail instead when MASKWATCH_REQUIRE_DATA=1 (CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAGGLE_MERGE = "without_mask,mask_weared_incorrect=no_mask"  # the README's --merge for the Kaggle set


@pytest.fixture(scope="session")
def shared() -> Path:
    path = Path(os.environ.get("MASKWATCH_SHARED", ROOT.parent / "shared"))
    if not (path / "data" / "face-mask-kaggle").is_dir():
        if os.environ.get("MASKWATCH_REQUIRE_DATA") == "1":
            pytest.fail(f"MASKWATCH_REQUIRE_DATA=1 but {path} has no data/face-mask-kaggle")
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def kaggle(shared: Path) -> Path:
    return shared / "data" / "face-mask-kaggle"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Cached ONNX exports of test checkpoints go to a temporary folder, not the user's ~/.cache."""
    os.environ["MASKWATCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
