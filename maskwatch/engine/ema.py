"""An exponential moving average of the weights, the model a run validates and saves when ``ema > 0``.

Small learning bases give noisy last steps: the average of the weights over the last few hundred steps
is a better model than the last step's, for no extra training time (as in YOLOv5/Ultralytics and timm).
The average starts short and lengthens to ``decay`` (``min(decay, (1 + n) / (10 + n))`` after ``n``
updates, TensorFlow's ramp), so the early, fast-moving weights do not linger in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


class ModelEMA:
    """The moving average of ``model``'s parameters and float buffers (BatchNorm statistics too)."""

    def __init__(
        self, model: nn.Module, decay: float, updates: int = 0, shadow: dict[str, torch.Tensor] | None = None
    ) -> None:
        self.decay = decay
        self.updates = updates
        source = shadow if shadow is not None else model.state_dict()
        self.shadow = {k: v.detach().clone() for k, v in source.items()}

    def rate(self) -> float:
        """The weight kept of the average at the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.rate()
        self.updates += 1
        for k, v in model.state_dict().items():
            s = self.shadow[k]
            if s.dtype.is_floating_point:
                s.mul_(d).add_(v.detach(), alpha=1 - d)
            else:  # counters (BatchNorm's num_batches_tracked) follow the model
                s.copy_(v)

    @contextlib.contextmanager
    def applied(self, model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
        """``model`` holds the averaged weights inside the block; yields the training weights, which are
        put back on leaving it (for the checkpoint that a resumed run continues from)."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield raw
        finally:
            model.load_state_dict(raw)
