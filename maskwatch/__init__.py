"""maskwatch: find faces with and without a mask in images, videos and camera streams."""

from maskwatch.detections import Detections
from maskwatch.errors import MaskwatchError

__version__ = "0.1.0"
__all__ = ["Detections", "MaskwatchError", "__version__"]
