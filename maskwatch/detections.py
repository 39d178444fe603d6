"""The one typed structure that flows from models to video to apps.

Like supervision's ``Detections`` (same field names, so its users feel at home): plain NumPy arrays,
boolean/integer/slice indexing returns a new ``Detections``, and class names travel with the labels so
nothing ever indexes a hard-coded class list.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskwatch.errors import MaskwatchError

#: Version of the :meth:`Detections.to_json` layout, so a later change can still read old files.
JSON_FORMAT = 1


@dataclass(eq=False)
class Detections:
    """Detections in one image: ``xyxy`` (N, 4) absolute pixels, ``confidence`` (N,), ``class_id`` (N,)
    indices into ``class_names``, and optional ``tracker_id`` (N,) set by a tracker (supervision's names).

    ``data`` holds extra per-detection arrays (N, ...) that follow every selection.
    """

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
        # An out-of-range id would otherwise surface much later as an IndexError in a sink, or worse be
        # read as another class through negative indexing.
        bad = (self.class_id < 0) | (self.class_id >= len(self.class_names))
        if bad.any():
            raise ValueError(
                f"class_id {int(self.class_id[bad][0])} is outside 0..{len(self.class_names) - 1} "
                f"(class_names {list(self.class_names)})"
            )
        if self.tracker_id is not None:
            self.tracker_id = np.asarray(self.tracker_id, dtype=np.int64).reshape(-1)
            if len(self.tracker_id) != n:
                raise ValueError("tracker_id length differs from xyxy")
        self.data = {k: np.asarray(v) for k, v in self.data.items()}
        for k, v in self.data.items():
            if len(v) != n:
                raise ValueError(f"data[{k!r}] has {len(v)} rows, not {n}")

    @classmethod
    def empty(cls, class_names: Sequence[str]) -> Detections:
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0), tuple(class_names))

    @classmethod
    def merge(cls, items: Iterable[Detections]) -> Detections:
        """Concatenate detections of one image (e.g. from tiles); all must share ``class_names``."""
        items = list(items)
        if not items:
            raise ValueError("merge needs at least one Detections (the class names come from it)")
        names = items[0].class_names
        if any(d.class_names != names for d in items):
            raise ValueError("merge: the Detections have different class_names")
        tracked = {d.tracker_id is not None for d in items}
        if len(tracked) > 1:
            raise ValueError("merge: some Detections have tracker_id and others not")
        keys = {frozenset(d.data) for d in items}
        if len(keys) > 1:
            raise ValueError("merge: the Detections have different data keys")
        return cls(
            np.concatenate([d.xyxy for d in items]),
            np.concatenate([d.confidence for d in items]),
            np.concatenate([d.class_id for d in items]),
            names,
            np.concatenate([d.tracker_id for d in items]) if tracked == {True} else None,
            {k: np.concatenate([d.data[k] for d in items]) for k in items[0].data},
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Select detections by a boolean mask, an index array, an int or a slice."""
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"detection {index} out of range ({len(self)} detections)")
            index = [index]
        return Detections(
            self.xyxy[index],
            self.confidence[index],
            self.class_id[index],
            self.class_names,
            None if self.tracker_id is None else self.tracker_id[index],
            {k: v[index] for k, v in self.data.items()},
        )

    def __iter__(self) -> Iterator[tuple[np.ndarray, float, int, int | None, dict[str, Any]]]:
        """One ``(xyxy, confidence, class_id, tracker_id, data)`` tuple per detection, as supervision
        yields them (without its mask)."""
        for i in range(len(self)):
            yield (
                self.xyxy[i],
                float(self.confidence[i]),
                int(self.class_id[i]),
                None if self.tracker_id is None else int(self.tracker_id[i]),
                {k: v[i] for k, v in self.data.items()},
            )

    def __eq__(self, other: object) -> bool:
        """Same class names and exactly the same arrays (the dataclass default would compare arrays
        element-wise and fail on ``bool()``)."""
        if not isinstance(other, Detections):
            return NotImplemented
        if (self.tracker_id is None) != (other.tracker_id is None) or self.data.keys() != other.data.keys():
            return False
        return (
            self.class_names == other.class_names
            and np.array_equal(self.xyxy, other.xyxy)
            and np.array_equal(self.confidence, other.confidence)
            and np.array_equal(self.class_id, other.class_id)
            and (self.tracker_id is None or np.array_equal(self.tracker_id, other.tracker_id))  # type: ignore[arg-type]
            and all(np.array_equal(v, other.data[k]) for k, v in self.data.items())
        )

    __hash__ = None  # type: ignore[assignment]  # mutable arrays

    @property
    def class_name(self) -> np.ndarray:
        """Class name of each detection as an array, for ``dets[dets.class_name == "no_mask"]``."""
        return np.array(self.class_names, dtype=object)[self.class_id]

    @property
    def label_names(self) -> list[str]:
        return [self.class_names[i] for i in self.class_id]

    @property
    def widths(self) -> np.ndarray:
        return self.xyxy[:, 2] - self.xyxy[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def area(self) -> np.ndarray:
        """Box areas in pixels (supervision's ``Detections.area``)."""
        return self.widths * self.heights

    def with_class(self, *names: str) -> Detections:
        """Only the detections of the given class names; a name the model does not know is an error
        (a typo such as ``"nomask"`` would otherwise select nothing, silently)."""
        unknown = [n for n in names if n not in self.class_names]
        if unknown:
            raise MaskwatchError(
                f"unknown class {', '.join(map(repr, unknown))} (classes: {', '.join(self.class_names)})"
            )
        ids = [self.class_names.index(n) for n in names]
        return self[np.isin(self.class_id, ids)]

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

    def to_json(self) -> str:
        """Everything, exactly: ``from_json(d.to_json()) == d`` (``to_list`` rounds for people to read)."""
        doc: dict[str, Any] = {
            "format": JSON_FORMAT,
            "class_names": list(self.class_names),
            "xyxy": self.xyxy.tolist(),
            "confidence": self.confidence.tolist(),
            "class_id": self.class_id.tolist(),
            "tracker_id": None if self.tracker_id is None else self.tracker_id.tolist(),
            "data": {k: {"dtype": v.dtype.str, "values": v.tolist()} for k, v in self.data.items()},
        }
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str | bytes) -> Detections:
        """Read what :meth:`to_json` wrote; anything else is a one-line :class:`MaskwatchError`."""
        try:
            doc = json.loads(text)
            if not isinstance(doc, dict) or doc.get("format") != JSON_FORMAT:
                raise ValueError(f"not a maskwatch Detections document (format {JSON_FORMAT})")
            data = {k: np.asarray(v["values"], dtype=np.dtype(v["dtype"])) for k, v in doc["data"].items()}
            return cls(
                np.asarray(doc["xyxy"], dtype=np.float32).reshape(-1, 4),
                doc["confidence"],
                doc["class_id"],
                tuple(doc["class_names"]),
                doc["tracker_id"],
                data,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise MaskwatchError(f"Detections JSON: {e}") from None
