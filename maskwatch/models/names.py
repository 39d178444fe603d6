"""Built-in model names, listed without importing torch so the CLI starts fast.

The one list is the ``@register_detector("name")`` decorators in the architecture modules: this module
reads them from the source text (a few ms) instead of importing the modules, and
:func:`maskwatch.models.registry.architectures` imports exactly the modules found here, so the two views
cannot disagree (a test checks it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MODEL = "maskface-mnet"
_DECORATOR = re.compile(r'^@register_detector\("([^"]+)"\)', re.MULTILINE)


@functools.cache
def registered_modules() -> dict[str, str]:
    """``{model name: module}`` for every ``@register_detector`` in ``maskwatch/models``."""
    root = Path(__file__).parent
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "@register_detector(" not in text:
            continue
        module = ".".join(("maskwatch", "models", *path.relative_to(root).with_suffix("").parts))
        for name in _DECORATOR.findall(text):
            found[name] = module
    # the default first: it is what help texts and benchmarks list first
    return dict(sorted(found.items(), key=lambda kv: kv[0] != DEFAULT_MODEL))


def check_box_style(name: str, styles: Sequence[str], model: str) -> None:
    """The one check of a ``--box-style`` against the styles a model has (torch-free: ONNX paths use it)."""
    from maskwatch.errors import MaskwatchError

    if name not in styles:
        raise MaskwatchError(f"--box-style {name!r}: this {model} model has {', '.join(styles)}")


def __getattr__(name: str) -> tuple[str, ...]:
    if name == "MODEL_NAMES":
        return tuple(registered_modules())
    raise AttributeError(name)
