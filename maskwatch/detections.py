"""The one typed structure that flows from models to video to apps.

Like supervision's ``Detections``: plain NumPy arrays, boolean/integer indexing returns a new
``Detections``, and class names travel with the labels so nothing ever indexes a hard-coded class list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detections:
    """Detections in one image: ``boxes`` (N, 4) absolute xyxy pixels, ``scores`` (N,), ``labels`` (N,)
    indices into ``class_names``, and optional ``track_ids`` (N,) set by a tracker."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    track_ids: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)
        n = len(self.boxes)
        if len(self.scores) != n or len(self.labels) != n:
            raise ValueError(
                f"boxes ({n}), scores ({len(self.scores)}) and labels ({len(self.labels)}) differ"
            )
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(-1)
            if len(self.track_ids) != n:
                raise ValueError("track_ids length differs from boxes")

    @classmethod
    def empty(cls, class_names: Sequence[str]) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), tuple(class_names))

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index: Any) -> Detections:
        """Select detections by a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.labels[index],
            self.class_names,
            None if self.track_ids is None else self.track_ids[index],
            {k: v[index] for k, v in self.data.items()},
        )

    @property
    def label_names(self) -> list[str]:
        return [self.class_names[i] for i in self.labels]

    @property
    def widths(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    def filter(self, conf: float = 0.0, min_size: float = 0.0) -> Detections:
        """Keep detections scoring at least ``conf`` whose shorter side is at least ``min_size`` px."""
        keep = (self.scores >= conf) & (np.minimum(self.widths, self.heights) >= min_size)
        return self[keep]

    def counts(self) -> dict[str, int]:
        """Number of detections per class name (every class present, zeros included)."""
        return {name: int((self.labels == i).sum()) for i, name in enumerate(self.class_names)}

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready list: ``{"box": [x1, y1, x2, y2], "label": name, "score": s[, "track": id]}``."""
        out = []
        for i in range(len(self)):
            item: dict[str, Any] = {
                "box": [round(float(v), 1) for v in self.boxes[i]],
                "label": self.class_names[self.labels[i]],
                "score": round(float(self.scores[i]), 4),
            }
            if self.track_ids is not None:
                item["track"] = int(self.track_ids[i])
            out.append(item)
        return out
