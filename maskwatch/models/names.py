"""Built-in model names, importable without torch so the CLI starts fast (``registry`` checks they match)."""

MODEL_NAMES = ("maskface-mnet", "faster-rcnn-x101-fpn", "retinanet-r50-fpn")
DEFAULT_MODEL = MODEL_NAMES[0]
