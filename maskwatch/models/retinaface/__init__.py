"""``maskface-mnet``: a RetinaFace-style single-stage detector (MobileNet-0.25, FPN, SSH context modules,
anchor heads) whose class head says background / with_mask / no_mask.

Split by concern: ``network`` (layers), ``anchors``, ``coding`` (box coding and the decoded inference
graph), ``loss`` (matching and loss), ``weights`` (starting from the WIDER FACE face detector) and
``detector`` (the :class:`~maskwatch.models.base.Detector`). Letterboxing and post-processing are shared
by every architecture in :mod:`maskwatch.models.letterbox`.
"""

from maskwatch.models.letterbox import BGR_MEAN, PAD_MULTIPLE, letterbox, resize_long_side
from maskwatch.models.retinaface.anchors import LEVELS, anchors_xyxy, make_anchors
from maskwatch.models.retinaface.coding import VARIANCES, DecodedRetinaFace, decode, encode
from maskwatch.models.retinaface.detector import MaskFaceDetector, batch_tensor
from maskwatch.models.retinaface.loss import detection_loss, match
from maskwatch.models.retinaface.network import RetinaFaceNet

__all__ = [
    "BGR_MEAN",
    "LEVELS",
    "PAD_MULTIPLE",
    "VARIANCES",
    "DecodedRetinaFace",
    "MaskFaceDetector",
    "RetinaFaceNet",
    "anchors_xyxy",
    "batch_tensor",
    "decode",
    "detection_loss",
    "encode",
    "letterbox",
    "make_anchors",
    "match",
    "resize_long_side",
]
