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
    """Detections in one image: ``xyxy`` (N, 4) absolute pixels, ``confidence`` (N,), ``class_id`` (N,)
    indices into ``class_names``, and optional ``tracker_id`` (N,) set by a tracker (supervision's names)."""

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    class_names: tuple[str, ...]
    tracker_id: np.ndarray | None = None
    data: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        self.confidence = np.asarray(self.confidence, dtype=np.float32).reshape(-1)
        self.class_id = np.asarray(self.class_id, dtype=np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)
        n = len(self.xyxy)
        if len(self.confidence) != n or len(self.class_id) != n:
            raise ValueError(
                f"xyxy ({n}), confidence ({len(self.confidence)}) and class_id ({len(self.class_id)}) differ"
            )
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
            if len(self.tracker_id) != n:
                raise ValueError("tracker_id length differs from xyxy")

    @classmethod
    def empty(cls, class_names: Sequence[str]) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), tuple(class_names))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select detections by a boolean mask, an index array or a slice."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            self.class_names,
            None if self.tracker_id is None else self.tracker_id[index],
            {k: v[index] for k, v in self.data.items()},
        )

    @property
    def label_names(self) -> list[str]:
        return [self.class_names[i] for i in self.class_id]

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    def filter(self, conf: float = 0.0, min_size: float = 0.0) -> Detections:
        """Keep detections scoring at least ``conf`` whose shorter side is at least ``min_size`` px."""
        keep = (self.confidence >= conf) & (np.minimum(self.widths, self.heights) >= min_size)
        return self[keep]

    def counts(self) -> dict[str, int]:
        """Number of detections per class name (every class present, zeros included)."""
        return {name: int((self.class_id == i).sum()) for i, name in enumerate(self.class_names)}

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-ready list: ``{"box": [x1, y1, x2, y2], "label": name, "score": s[, "track": id]}``."""
        out = []
        for i in range(len(self)):
            item: dict[str, Any] = {
                "box": [round(float(v), 1) for v in self.xyxy[i]],
                "label": self.class_names[self.class_id[i]],
                "score": round(float(self.confidence[i]), 4),
            }
            if self.tracker_id is not None:
                item["track"] = int(self.tracker_id[i])
            out.append(item)
        return out
