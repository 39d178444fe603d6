"""Video and stream processing: sources, sinks, annotation, tracking and the threaded detect pipeline."""

from maskwatch.video.iterate import iter_detections
from maskwatch.video.pipeline import DetectionPipeline, DetectOptions, RunSummary, detect
from maskwatch.video.sources import Frame, Source, open_source
from maskwatch.video.tracker import FaceTracker

__all__ = [
    "DetectOptions",
    "DetectionPipeline",
    "FaceTracker",
    "Frame",
    "RunSummary",
    "Source",
    "detect",
    "iter_detections",
    "open_source",
]
