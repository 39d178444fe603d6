"""``maskwatch.load_model``: one callable model for notebooks and scripts, as Ultralytics and supervision
users expect (``model = load_model(); dets = model(image)``).

It wraps a predictor (torch or ONNX Runtime, the same one ``maskwatch detect`` uses, with the same default
``conf``/``iou`` from :mod:`maskwatch.defaults`), so the API and the CLI find the same faces. Its job is to
take what users actually hold: a path, a PIL image, or a NumPy array **in OpenCV's BGR order by default**
(what ``cv2.imread`` and ``VideoCapture.read`` give); RGB arrays with ``channels="rgb"``. Every other kind
of array (grayscale, alpha, float, 16-bit, empty) is converted or refused with a one-line
:class:`~maskwatch.errors.MaskwatchError` instead of a NumPy broadcast error or silently wrong classes.

torch is not imported here at module level: ``import maskwatch`` stays fast and an ONNX model never
needs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from maskwatch import defaults
from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError
from maskwatch.io import load_image, pil_to_rgb

if TYPE_CHECKING:
    from PIL import Image

    from maskwatch.predict import Predictor

#: One image as the model accepts it.
ImageLike = Union[str, Path, np.ndarray, "Image.Image"]
CHANNELS = ("bgr", "rgb")
#: Images prepared and run together in one call; bounds memory for long lists.
CHUNK = 8


def check_channels(channels: str) -> str:
    if channels not in CHANNELS:
        raise MaskwatchError(f"channels={channels!r}: choose 'bgr' (OpenCV's order, the default) or 'rgb'")
    return channels


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """8-bit pixel values from any numeric dtype, or a refusal that says what to pass instead."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:  # 16-bit camera/PNG data: full range, scaled as load_image does
        return (a.astype(np.float64) / 257.0).round().astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise MaskwatchError("float image contains NaN or infinity")
        lo, hi = float(a.min()), float(a.max())
        if lo < 0.0 or hi > 1.0:
            raise MaskwatchError(
                f"float image values must lie in [0, 1] (found {lo:g} to {hi:g}); "
                "pass uint8 (0-255) or divide by 255"
            )
        return (a.astype(np.float64) * 255.0).round().astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer) and not np.issubdtype(a.dtype, np.bool_):
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise MaskwatchError(
                f"{a.dtype} image values must lie in 0..255 (found {lo} to {hi}); pass uint8 or uint16"
            )
        return a.astype(np.uint8)
    raise MaskwatchError(f"unsupported image dtype {a.dtype} (use uint8, uint16 or float in [0, 1])")


def to_rgb(image: np.ndarray, channels: str = "bgr") -> np.ndarray:
    """A contiguous RGB ``uint8`` (H, W, 3) array from an image array in ``channels`` order.

    Grayscale (H, W) or (H, W, 1) is repeated to three channels; a fourth (alpha) channel is composited
    on black, as :func:`maskwatch.io.load_image` does for files, so a file and its pixels agree.
    """
    check_channels(channels)
    a = np.asarray(image)
    if a.size == 0:
        raise MaskwatchError(f"empty image array (shape {a.shape})")
    if a.ndim == 4:
        raise MaskwatchError(f"4-D array {a.shape}: pass a list of (H, W, 3) images for a batch")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise MaskwatchError(
            f"image array of shape {a.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
            "(channels last, as OpenCV and PIL give)"
        )
    a = _to_uint8(a)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(a, 3, axis=2))
    if a.shape[2] == 4:
        alpha = a[..., 3:].astype(np.uint16)
        a = ((a[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)
    if channels == "bgr":
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    """PIL images as files are read (:func:`maskwatch.io.pil_to_rgb`); float images go through the array
    rules, which refuse values outside [0, 1] instead of clipping them."""
    if im.mode == "F":
        return to_rgb(np.asarray(im), "rgb")
    return pil_to_rgb(im)


def read_image(image: ImageLike, channels: str = "bgr") -> np.ndarray:
    """Any accepted input as an RGB ``uint8`` array; ``channels`` applies to NumPy arrays only (a file
    and a PIL image know their own order)."""
    check_channels(channels)
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, np.ndarray):
        return to_rgb(image, channels)
    from PIL import Image

    if isinstance(image, Image.Image):
        return _pil_to_rgb(image)
    raise MaskwatchError(
        f"unsupported input {type(image).__name__}: pass a path, a PIL image, a NumPy array or a list of them"
    )


def check_thresholds(conf: float | None, iou: float | None) -> tuple[float, float]:
    """``conf``/``iou`` with ``None`` meaning :mod:`maskwatch.defaults`, or a one-line error."""
    conf = defaults.CONF if conf is None else float(conf)
    iou = defaults.IOU if iou is None else float(iou)
    if not 0.0 <= conf <= 1.0:
        raise MaskwatchError(f"conf={conf:g}: must be between 0 and 1")
    if not 0.0 < iou <= 1.0:
        raise MaskwatchError(f"iou={iou:g}: must be in (0, 1]")
    return conf, iou


class Model:
    """A detector you call on images: ``model(source, conf=None, iou=None, channels="bgr")``.

    ``source`` is one image (path, PIL image or NumPy array) -> :class:`Detections`, or a list of them
    -> a list of :class:`Detections` in the same order. ``conf``/``iou`` default to
    :data:`maskwatch.defaults.CONF`/:data:`~maskwatch.defaults.IOU`, the CLI's defaults.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.predictor.class_names)

    @property
    def names(self) -> dict[int, str]:
        """``{class_id: name}``, Ultralytics' ``model.names``."""
        return dict(enumerate(self.class_names))

    @property
    def name(self) -> str:
        return self.predictor.name

    @property
    def backend(self) -> str:
        return self.predictor.backend

    def __repr__(self) -> str:
        return f"Model({self.name!r}, backend={self.backend!r}, class_names={self.class_names})"

    def predict(
        self,
        source: ImageLike | Sequence[ImageLike],
        conf: float | None = None,
        iou: float | None = None,
        channels: str = "bgr",
    ) -> Detections | list[Detections]:
        """What calling the model does (``model.predict(x)`` is ``model(x)``, as in Ultralytics)."""
        conf, iou = check_thresholds(conf, iou)
        check_channels(channels)
        if isinstance(source, (list, tuple)):
            out: list[Detections] = []
            for start in range(0, len(source), CHUNK):
                chunk = [read_image(s, channels) for s in source[start : start + CHUNK]]
                out += self._run(chunk, conf, iou)
            return out
        return self._run([read_image(source, channels)], conf, iou)[0]  # type: ignore[arg-type]

    __call__ = predict

    def _run(self, images: list[np.ndarray], conf: float, iou: float) -> list[Detections]:
        return self.predictor.infer([self.predictor.prepare(im) for im in images], conf, iou)


def load_model(
    name_or_path: str | Path | None = None,
    backend: str = "auto",
    device: str = "cpu",
    imgsz: int | None = None,
    box_style: str | None = None,
    **kwargs: Any,
) -> Model:
    """A callable :class:`Model` from a built-in name (default ``maskface-mnet``), a ``.pt`` checkpoint or
    an exported ``.onnx`` file. ``backend`` ``auto`` picks ONNX Runtime where the model allows (the
    fastest on a CPU), as ``maskwatch detect`` does. ``box_style`` picks the box style of a model trained
    on several label sets (the default model: ``kaggle``, its default, or ``ilc``). Other keywords go to
    :func:`maskwatch.predict.load_predictor`, e.g. ``tta=True`` for test-time augmentation (mirrored and
    enlarged looks, fused: more small faces found, ~8x the compute) or ``classifier=False`` to run a
    model's detector without its crop classifier."""
    from maskwatch.predict import load_predictor

    return Model(load_predictor(name_or_path, backend, device, imgsz, box_style=box_style, **kwargs))


def _onnx_meta(path: Path) -> dict[str, str]:
    """The maskwatch metadata of an exported model, read by ONNX Runtime (``onnx`` is an extra)."""
    import onnxruntime as ort

    from maskwatch.predict.onnx import META_PREFIX

    meta = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    return {k.removeprefix(META_PREFIX): v for k, v in meta.custom_metadata_map.items()}


def builtin_models() -> list[dict[str, Any]]:
    """Each built-in model: ``name``, ``default``, packaged weights (``pt``/``onnx`` paths or None),
    ``class_names`` (None without packaged weights: the classes come with a checkpoint), ``imgsz`` and
    ``box_styles`` (the first is the default; None without packaged weights) and ``classifier`` (its crop
    classifier's backbone and crop size, e.g. ``{"arch": "mnet", "size": 96}``, or None).

    What ``maskwatch models`` prints; read from the files shipped in the package, nothing is downloaded.
    """
    import json

    from maskwatch.models.names import DEFAULT_MODEL, MODEL_NAMES
    from maskwatch.models.registry import packaged_onnx, packaged_weights

    rows = []
    for name in MODEL_NAMES:
        pt, onnx_path = packaged_weights(name), packaged_onnx(name)
        classes: list[str] | None = None
        styles = ["default"]
        second: dict[str, Any] | None = None
        imgsz = 640  # every architecture's default input size (models.registry.build_detector)
        if onnx_path.is_file():  # the ONNX metadata says the same as the .pt, and needs no torch to read
            meta = _onnx_meta(onnx_path)
            classes, imgsz = json.loads(meta["class_names"]), int(meta["imgsz"])
            styles = json.loads(meta.get("box_styles", '["default"]'))
            second = json.loads(meta["classifier"]) if "classifier" in meta else None
        elif pt.is_file():
            from maskwatch.models.base import read_checkpoint

            ckpt = read_checkpoint(pt)
            classes, imgsz = list(ckpt["class_names"]), int(ckpt["imgsz"])
            styles = list(ckpt["meta"].get("box_styles", styles))
            second = ckpt.get("classifier")
        rows.append(
            {
                "name": name,
                "default": name == DEFAULT_MODEL,
                "pt": str(pt) if pt.is_file() else None,
                "onnx": str(onnx_path) if onnx_path.is_file() else None,
                "class_names": classes,
                "imgsz": imgsz,
                "box_styles": styles if classes else None,  # the first is the default (--box-style)
                "classifier": {"arch": second["arch"], "size": second["size"]} if second else None,
            }
        )
    return rows
