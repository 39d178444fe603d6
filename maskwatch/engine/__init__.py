"""Training, evaluation and benchmark helpers."""
