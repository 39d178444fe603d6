"""ONNX export of a detector's decoded inference graph (:meth:`Detector.inference_module`).

The graph holds the network, the anchor decoding and the softmax: input ``images`` (N, 3, H, W) float32,
BGR minus the mean, letterboxed so the long side is ``imgsz`` and zero-padded; outputs ``boxes``
(N, A, 4) xyxy in input pixels and ``scores`` (N, A, C) per-class probabilities. Height and width are
dynamic (any multiple of 32), so a 16:9 video runs at 640x384 instead of a padded 640x640; ``static=True``
fixes the input to imgsz x imgsz for runtimes that need it. Thresholding and NMS stay outside the graph,
shared with the torch backend (:func:`maskwatch.models.letterbox.image_detections`), because their
output size is data-dependent and ONNX's NonMaxSuppression would differ in details from it.

Class names, imgsz and the input convention are stored in the model's ``metadata_props``, so the
``.onnx`` file alone is enough to run it. This module imports torch only inside its functions: the ONNX
predictor reads :data:`META_PREFIX` from here without it.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maskwatch import __version__
from maskwatch.errors import MaskwatchError
from maskwatch.io import atomic_write
from maskwatch.models.letterbox import BGR_MEAN

if TYPE_CHECKING:
    import torch

    from maskwatch.models.base import Detector
    from maskwatch.models.classifier import FaceClassifier

log = logging.getLogger(__name__)

OPSET = 17
META_PREFIX = "maskwatch."
#: Bumped whenever the exported graph or its metadata change meaning: cached exports keyed on it.
EXPORT_FORMAT = 4  # 2: the crop classifier in the metadata; 3: its background output and beta; 4: boxes


def export_onnx_bytes(
    detector: Detector, imgsz: int | None = None, static: bool = False, classifier: bool = True
) -> bytes:
    """Serialise ``detector`` as an ONNX model with decode + softmax in the graph and metadata set.

    A detector with a crop classifier (and ``classifier``) carries it as a second, small ONNX model in
    the metadata (``maskwatch.classifier_onnx``, base64; input ``crops`` (M, 3, S, S) float32 RGB 0-255,
    output ``probs`` (M, C)): the file stays one model whose graph is the plain detector's, and the
    classifier runs in a session of its own, on the faces only (one graph with both would make ONNX
    Runtime run the detector on every classifier call: it wants every input fed).
    """
    import onnx
    import torch

    module = detector.inference_module()
    if module is None:
        raise MaskwatchError(f"ONNX export supports maskface-mnet models, not {detector.arch!r}")
    imgsz = imgsz or detector.imgsz
    if static and imgsz % 32:
        raise MaskwatchError(f"--imgsz {imgsz}: a fixed-size export needs a multiple of 32")
    module = copy.deepcopy(module).cpu().eval()
    # Any example size works for a dynamic export; a 16:9 one is what videos use.
    dummy = torch.zeros(1, 3, imgsz if static else max(32, imgsz * 9 // 16 // 32 * 32), imgsz)
    model = onnx.load_from_string(_trace_to_onnx(module, dummy, static))
    clf = detector.classifier if classifier else None
    meta = {
        "class_names": json.dumps(list(detector.class_names)),
        "imgsz": str(imgsz),
        "arch": detector.arch,
        "box_style": detector.box_style,
        "box_styles": json.dumps(detector.box_style_names()),
        "static": "1" if static else "0",
        "input": "BGR float32 NCHW minus mean, long side resized to imgsz, zero-padded at the bottom/right "
        + ("to imgsz x imgsz" if static else "to a multiple of 32"),
        "mean": json.dumps(list(BGR_MEAN)),
        "outputs": "boxes: (N, A, 4) xyxy input pixels; scores: (N, A, C) probability per class",
        "nms": "not in the graph: per-image threshold then NMS (maskwatch.boxes) outside",
        "format": str(EXPORT_FORMAT),
        "version": __version__,
    }
    if clf is not None:
        meta["classifier"] = json.dumps(
            {
                "arch": clf.arch,
                "size": clf.size,
                "context": clf.context,
                "alpha": clf.alpha,
                "beta": clf.beta,
                "background": clf.background,
                "box_styles": list(clf.box_styles),
                "refine": clf.refine,
                "input": "crops: (M, 3, size, size) float32 RGB 0-255, the square of context x a face box's "
                "longer side around its centre, resized (maskwatch.models.crops.square_crop)",
                "output": "probs: (M, C) class probabilities, (M, C + 1) with background: last; with "
                "box_styles, deltas: (M, styles, 4) each face's box per style "
                "(maskwatch.models.crops.box_deltas)",
                "rule": "maskwatch.models.crops.refine_boxes, then maskwatch.models.crops.decide",
            }
        )
        meta["classifier_onnx"] = base64.b64encode(classifier_onnx_bytes(clf)).decode("ascii")
    for key, value in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = META_PREFIX + key, value
    model.producer_name = "maskwatch"
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def classifier_onnx_bytes(clf: FaceClassifier) -> bytes:
    """The crop classifier alone as an ONNX model (softmax in the graph, any number of crops; a second
    output, ``deltas``, if it has a box head)."""
    import onnx
    import torch

    from maskwatch.models.classifier import Softmaxed

    module = Softmaxed(copy.deepcopy(clf.net).cpu().eval())
    outputs = ["probs", "deltas"] if clf.box_styles else ["probs"]
    names = {"input_names": ["crops"], "output_names": outputs, "opset_version": OPSET}
    dynamic_axes = {name: {0: "faces"} for name in ["crops", *outputs]}
    dummy = torch.zeros(2, 3, clf.size, clf.size)
    model = onnx.load_from_string(_torchscript_export(module, dummy, names, dynamic_axes))
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _trace_to_onnx(module: torch.nn.Module, dummy: torch.Tensor, static: bool) -> bytes:
    """Export with the TorchScript-based exporter: it traces the in-graph anchors as shape arithmetic,
    needs no extra package and takes ~3 s. Torch marks it deprecated; the torch.export-based exporter
    (``dynamo=True``) gives the same graph but needs ``onnxscript`` and ~4x longer, so it is the fallback
    once the old exporter is gone."""
    import torch

    dynamic_axes = None
    if not static:
        dynamic_axes = {
            "images": {0: "batch", 2: "height", 3: "width"},
            "boxes": {0: "batch", 1: "anchors"},
            "scores": {0: "batch", 1: "anchors"},
        }
    names: dict[str, Any] = {
        "input_names": ["images"],
        "output_names": ["boxes", "scores"],
        "opset_version": OPSET,
    }
    try:
        return _torchscript_export(module, dummy, names, dynamic_axes)
    except (TypeError, RuntimeError, NotImplementedError) as e:
        log.info("TorchScript ONNX exporter unavailable (%s); using torch.export", e)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return _dynamo_export(module, dummy, static, names).getvalue()


def _torchscript_export(
    module: torch.nn.Module,
    dummy: torch.Tensor,
    names: dict[str, Any],
    dynamic_axes: dict[str, dict[int, str]] | None,
) -> bytes:
    """One module with one input through the TorchScript-based ONNX exporter, quietly: the detector's
    graph and the crop classifier's both go this way."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # deprecation and tracer notes about constant sizes
        torch.onnx.export(  # a file object works; the stubs only name paths
            module,
            (dummy,),
            buf,  # type: ignore[arg-type]
            dynamo=False,
            dynamic_axes=dynamic_axes,
            **names,
        )
    return buf.getvalue()


def _dynamo_export(
    module: torch.nn.Module, dummy: torch.Tensor, static: bool, names: dict[str, Any]
) -> io.BytesIO:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        raise MaskwatchError("ONNX export on this torch version needs the onnxscript package") from None
    import torch
    from torch.export import Dim

    shapes = None
    if not static:
        h, w = Dim("h32", min=1, max=256), Dim("w32", min=1, max=256)
        shapes = {"x": {0: Dim("batch", min=1, max=1024), 2: 32 * h, 3: 32 * w}}
    program = torch.onnx.export(module, (dummy,), dynamo=True, dynamic_shapes=shapes, **names)
    buf = io.BytesIO()
    program.save(buf)  # type: ignore[union-attr, arg-type]
    return buf


def export_onnx(
    detector: Detector,
    path: str | Path,
    imgsz: int | None = None,
    static: bool = False,
    classifier: bool = True,
) -> Path:
    """Export ``detector`` to ``path`` atomically (with its crop classifier unless ``classifier`` is
    False); returns the path."""
    data = export_onnx_bytes(detector, imgsz, static, classifier)
    path = Path(path)
    with atomic_write(path, "wb") as f:
        f.write(data)
    return path
