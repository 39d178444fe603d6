"""Moved to :mod:`maskwatch.predict`; this alias keeps ``maskwatch.models.runtime.load_predictor`` working
for callers not yet repointed (to be deleted once none is left)."""

from __future__ import annotations

from typing import Any

__all__: list[str] = []  # everything is forwarded lazily to maskwatch.predict


def __getattr__(name: str) -> Any:
    import maskwatch.predict

    return getattr(maskwatch.predict, name)
