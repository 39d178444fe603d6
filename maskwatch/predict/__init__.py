"""Predictors: a model made ready for fast inference (torch or ONNX Runtime), behind one interface.

:func:`load_predictor` picks the backend. The ONNX path (an ``.onnx`` file, the packaged default's
shipped export, or a cached export of a user checkpoint) imports neither torch nor torchvision.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from maskwatch.errors import MaskwatchError
from maskwatch.models.names import DEFAULT_MODEL, check_box_style, registered_modules
from maskwatch.predict.base import GraphPredictor, Predictor, Prepared

if TYPE_CHECKING:
    from maskwatch.models.base import Detector

__all__ = [
    "BACKENDS",
    "GraphPredictor",
    "Predictor",
    "Prepared",
    "load_for_eval",
    "load_predictor",
    "with_stages",
    "with_tta",
]

log = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")


def load_predictor(
    model: str | Path | None = None,
    backend: str | None = None,
    device: str = "cpu",
    imgsz: int | None = None,
    threads: int | None = None,
    box_style: str | None = None,
    tta: bool = False,
    classifier: bool = True,
) -> Predictor:
    """A predictor for a built-in model name, a ``.pt`` checkpoint or an exported ``.onnx`` file.

    ``backend`` ``None``/``"auto"`` takes the fastest path that fits: ONNX Runtime for an ``.onnx`` file
    and, on the CPU, for any model with an inference module (``maskface-mnet``): the built-in default
    runs its packaged export, a checkpoint its cached export (made once, ~3 s, then ~2.5x less CPU per
    frame than torch); torch otherwise.

    ``threads`` sets the network's CPU threads. The default, every core but one, leaves a core to the
    pipeline's decoding and encoding threads so the network never competes with them: torch's OpenMP
    threads busy-wait and stall when a core is taken (on 2 shared cores, 2 threads ran ~5x slower than
    1), and a single ONNX Runtime thread does more per CPU-second than two.

    ``box_style`` picks the box style of a model trained on several label sets (default: its first, the
    one a packaged or plain export holds); another style runs from its own cached export.

    ``tta`` runs each image also mirrored and enlarged and fuses the detections
    (:class:`~maskwatch.predict.tta.TTAPredictor`): more faces found and better boxes for ~8x the compute.

    A model with a crop classifier (the default does) runs it on each face found
    (:class:`~maskwatch.predict.classify.ClassifiedPredictor`); ``classifier=False`` runs the detector alone.
    """
    predictor = _load_predictor(model, backend, device, imgsz, threads, box_style)
    staged = with_stages(predictor, tta, classifier)
    assert isinstance(staged, Predictor)
    return staged


def with_stages(model: Predictor | Detector, tta: bool, classifier: bool) -> Predictor | Detector:
    """``model`` behind the test-time augmentation (``tta``) and its own crop classifier (``classifier``,
    if it has one): the augmentation finds the faces, the classifier decides their class once. The fused
    box of the augmentation's looks is already an average, so the classifier's box head leaves it where it
    is (moving it towards one crop's box cost 0.4 CV AP, MODEL_CARD.md)."""
    from maskwatch.predict.classify import crop_classifier_of, with_classifier

    clf = crop_classifier_of(model) if classifier else None
    staged: Predictor | Detector = with_tta(model) if tta else model
    return with_classifier(staged, clf, 0.0 if tta else None) if clf is not None else staged


def with_tta(model: Predictor | Detector) -> Predictor:
    """``model`` behind the default test-time augmentation."""
    from maskwatch.predict.tta import TTAPredictor

    return TTAPredictor(model)


def _load_predictor(
    model: str | Path | None,
    backend: str | None,
    device: str,
    imgsz: int | None,
    threads: int | None,
    box_style: str | None,
) -> Predictor:
    from maskwatch.models.registry import packaged_onnx, resolve_model_path

    name = str(model) if model else DEFAULT_MODEL
    backend = backend or "auto"
    if backend not in ("auto", *BACKENDS):
        raise MaskwatchError(f"unknown backend {backend!r} (choose from auto, {', '.join(BACKENDS)})")
    threads = threads or max(1, usable_cpus() - 1)
    if name.lower().endswith(".onnx"):
        if backend == "torch":
            raise MaskwatchError(f"{name}: an ONNX model runs with --backend onnx, not torch")
        _check_device(device)
        return _with_style(_onnx_predictor(name, device, imgsz, threads, name), box_style)
    path = resolve_model_path(name)
    onnx_ok = backend == "onnx" or (backend == "auto" and str(device) == "cpu")
    cached = None
    if onnx_ok:
        builtin = not Path(name).is_file() and name in registered_modules()
        if builtin:
            shipped = packaged_onnx(name, box_style) if box_style else packaged_onnx(name)
            if not shipped.is_file():  # the default style is the plain export
                shipped = packaged_onnx(name)
            if shipped.is_file():
                packaged = _onnx_predictor(shipped, device, imgsz, threads, name)
                if box_style in (None, packaged.box_style):
                    return packaged
                check_box_style(box_style, packaged.box_styles, name)  # known but not shipped: export below
        from maskwatch.predict import cache

        cached = cache.cached_onnx_path(path, box_style)
        if cached.is_file():
            log.debug("%s: using the cached ONNX export %s", name, cached)
            return _onnx_predictor(cached, device, imgsz, threads, name)
    from maskwatch.models.registry import load_detector

    detector = load_detector(path, device, box_style)
    if backend == "auto":
        backend = "onnx" if onnx_ok and detector.inference_module() is not None else "torch"
    if backend == "onnx":
        from maskwatch.models.export import export_onnx_bytes

        log.info("exporting %s to ONNX once (cached in %s)", name, cached.parent if cached else "memory")
        data = export_onnx_bytes(detector)
        if cached is not None:
            from maskwatch.predict import cache

            cache.store(cached, data)
        return _onnx_predictor(data, device, imgsz, threads, name)
    import torch

    from maskwatch.predict.torch_backend import DetectorPredictor, TorchPredictor

    torch.set_num_threads(threads)
    if detector.inference_module() is not None:
        return TorchPredictor(detector, imgsz, name)
    return DetectorPredictor(detector, imgsz, name)


def usable_cpus() -> int:
    """CPUs this process may run on (a container's or ``taskset``'s limit, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _check_device(device: str) -> None:
    """``--device`` checked without torch: the ONNX predictor checks for a CUDA provider itself."""
    if str(device) not in ("cpu", "auto") and not str(device).startswith("cuda"):
        raise MaskwatchError(f"--device {device}: expected cpu, cuda or auto")


def _with_style(predictor: Predictor, box_style: str | None) -> Predictor:
    """An ONNX file holds the one box style it was exported with: asking for another is an error."""
    have = predictor.box_style
    if box_style not in (None, have):
        raise MaskwatchError(
            f"--box-style {box_style!r}: {predictor.name} was exported with box style {have!r} "
            "(export it again with 'maskwatch export --box-style', or run the .pt checkpoint)"
        )
    return predictor


def _onnx_predictor(
    model: str | Path | bytes, device: str, imgsz: int | None, threads: int, name: str
) -> Predictor:
    from maskwatch.predict.onnx import OnnxPredictor

    return OnnxPredictor(model, device=device, imgsz=imgsz, threads=threads, name=name)


def check_imgsz(imgsz: int | None) -> None:
    """An input size the network can take (``None``: the model's own)."""
    if imgsz is not None and imgsz < 32:
        raise MaskwatchError(f"--imgsz {imgsz}: must be at least 32")


def load_for_eval(
    model: str | Path | None,
    device: str = "cpu",
    box_style: str | None = None,
    tta: bool = False,
    classifier: bool = True,
    imgsz: int | None = None,
) -> Predictor | Detector:
    """What ``maskwatch eval`` runs: an ``.onnx`` file through ONNX Runtime (no torch), any other model
    as its :class:`Detector`, whose ``predict`` is the reference the README's numbers come from; with
    ``tta``, behind the test-time augmentation; behind its crop classifier unless ``classifier`` is False;
    at ``imgsz`` (the network's input long side) instead of the model's own when given."""
    check_imgsz(imgsz)
    if str(model or "").lower().endswith(".onnx"):
        return load_predictor(
            model, "onnx", device, imgsz, box_style=box_style, tta=tta, classifier=classifier
        )
    from maskwatch.models.registry import load_detector

    detector = load_detector(model, device, box_style)
    detector.imgsz = imgsz or detector.imgsz
    return with_stages(detector, tta, classifier)
