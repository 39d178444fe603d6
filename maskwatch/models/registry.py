"""The architecture registry: ``@register_detector`` on a Detector class, and building or loading one.

Importable without torch (the decorator is used by torch modules, but registering and listing need
nothing from it); torch loads when a detector is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from maskwatch.errors import MaskwatchError
from maskwatch.models.names import DEFAULT_MODEL, registered_modules

if TYPE_CHECKING:
    import torch

    from maskwatch.models.base import Detector

__all__ = [
    "DEFAULT_MODEL",
    "architectures",
    "build_detector",
    "load_detector",
    "packaged_onnx",
    "packaged_weights",
    "register_detector",
]

_REGISTRY: dict[str, type[Detector]] = {}
D = TypeVar("D", bound="type[Detector]")


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator: make a :class:`Detector` subclass buildable by ``name`` (its ``arch``).

    Put the decorator on its own line as ``@register_detector("name")``: :mod:`maskwatch.models.names`
    finds built-in names by reading that line without importing torch.
    """

    def register(cls: D) -> D:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.arch = name
        _REGISTRY[name] = cls
        return cls

    return register


def architectures() -> dict[str, type[Detector]]:
    """Every registered architecture, importing the built-in modules on first use."""
    for module in registered_modules().values():
        importlib.import_module(module)
    return dict(_REGISTRY)


def __getattr__(name: str) -> Any:
    if name == "ARCHITECTURES":  # the old constant, kept for callers
        return architectures()
    raise AttributeError(name)


def packaged_weights(name: str) -> Path:
    """Path of the weights file shipped inside the package for a built-in model name."""
    return Path(str(resources.files("maskwatch.models") / "weights" / f"{name}.pt"))


def packaged_onnx(name: str, box_style: str | None = None) -> Path:
    """The ONNX export shipped beside :func:`packaged_weights`, made at release time by
    ``maskwatch export --model NAME --out maskwatch/models/weights/NAME.onnx`` (a test checks they agree);
    with ``box_style``, the export of that style (``NAME-STYLE.onnx``, ``export --box-style STYLE``)."""
    if box_style:
        return packaged_weights(name).with_name(f"{name}-{box_style}.onnx")
    return packaged_weights(name).with_suffix(".onnx")


def require_torch(model: str | Path) -> None:
    """A one-line error instead of an ImportError traceback on an inference-only install."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MaskwatchError(
            f"{model}: .pt models need PyTorch, which is not installed (pip install 'maskwatch[train]'); "
            "the built-in model and .onnx files run without it"
        ) from None


def build_detector(
    arch: str,
    class_names: Sequence[str],
    imgsz: int | None = None,
    device: str | torch.device = "cpu",
    **options: Any,
) -> Detector:
    """A freshly initialised detector of a registered architecture; ``options`` are the architecture's
    construction settings (``Detector.options``), anything else is a one-line error."""
    require_torch(arch)
    from maskwatch.models.base import resolve_device

    archs = architectures()
    if arch not in archs:
        raise MaskwatchError(f"unknown model {arch!r} (choose from {', '.join(archs)})")
    return archs[arch](class_names, imgsz or 640, resolve_device(device), **options)


def resolve_model_path(model: str | Path | None) -> Path:
    """The checkpoint file for a built-in name (its packaged weights) or a path, checked to exist."""
    model = str(model or DEFAULT_MODEL)
    path = Path(model)
    names = registered_modules()
    if not path.is_file() and model in names:
        path = packaged_weights(model)
        if not path.is_file():
            raise MaskwatchError(f"model {model!r} has no packaged weights; pass a checkpoint path")
    elif not path.is_file():
        raise MaskwatchError(
            f"model {model!r}: no such checkpoint file or built-in name ({', '.join(names)})"
        )
    return path


def load_detector(
    model: str | Path | None = None, device: str | torch.device = "cpu", box_style: str | None = None
) -> Detector:
    """Load a built-in model by name (default: ``maskface-mnet``) or any maskwatch checkpoint path;
    ``box_style`` picks the box style of a model trained on several label sets (default: its first)."""
    path = resolve_model_path(model)
    require_torch(path)
    from maskwatch.models.base import read_checkpoint

    ckpt = read_checkpoint(path)
    det = build_detector(ckpt["arch"], ckpt["class_names"], ckpt["imgsz"], device, **ckpt.get("options", {}))
    det.load_state_dict(ckpt["state_dict"])
    det.model.eval()
    if ckpt.get("classifier"):
        from maskwatch.models.classifier import FaceClassifier

        det.classifier = FaceClassifier.from_state(ckpt["classifier"], det.device)
    if box_style:
        det.use_box_style(box_style)
    return det
