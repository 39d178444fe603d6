"""Applications built on the detectors: pre-labelling frames for annotation."""
