"""Weight surgery: start ``maskface-mnet`` from the WIDER FACE RetinaFace MobileNet-0.25 face detector."""

from __future__ import annotations

from pathlib import Path

import torch

from maskwatch.errors import MaskwatchError
from maskwatch.models.base import torch_load
from maskwatch.models.retinaface.network import RetinaFaceNet


def load_face_weights(model: RetinaFaceNet, path: str | Path) -> None:
    """Every layer but the class head loads as is; each object class starts from the face logit, so
    training only has to split faces by mask."""
    sd = torch_load(path, "face weights not found", "cannot read face weights")
    if not isinstance(sd, dict):
        raise MaskwatchError(f"{path}: not a RetinaFace MobileNet-0.25 state dict")
    sd = {k.removeprefix("module."): v for k, v in sd.items() if not k.startswith("LandmarkHead")}
    own = model.state_dict()
    a, c = model.anchors_per_loc, 1 + model.num_classes
    for key in [k for k in sd if k.startswith("ClassHead")]:
        face = sd.pop(key)  # (a*2, ...) = [bg, face] per anchor
        face = face.reshape(a, 2, *face.shape[1:])
        new = torch.cat([face[:, :1], face[:, 1:2].expand(-1, c - 1, *face.shape[2:])], 1)
        own[key] = new.reshape(a * c, *face.shape[2:])
    sd = with_style_heads(sd, own)
    missing = [k for k in own if k not in sd and not k.startswith("ClassHead")]
    if missing:
        raise MaskwatchError(f"{path}: not a RetinaFace MobileNet-0.25 state dict (missing {missing[0]})")
    own.update({k: v for k, v in sd.items() if k in own})
    model.load_state_dict(own)


def with_style_heads(sd: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``sd`` with every extra box-style head the model has and ``sd`` lacks started as a copy of the
    first style's head (``StyleBboxHead.S.L.*`` from ``BboxHead.L.*``): a new style begins from boxes that
    already fit faces and only learns its offset from them."""
    sd = dict(sd)
    for key in own:
        if key.startswith("StyleBboxHead.") and key not in sd:
            source = "BboxHead." + key.split(".", 2)[2]
            if source in sd:
                sd[key] = sd[source].clone()
    return sd
