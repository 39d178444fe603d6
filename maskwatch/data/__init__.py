"""Learning-base tools: the annotation record, format readers/writers, class maps, splits, frames."""

from maskwatch.data.classmap import apply_merge, parse_merge
from maskwatch.data.record import Annotation, Dataset

__all__ = ["Annotation", "Dataset", "apply_merge", "parse_merge"]
