"""``run_eval``: everything ``maskwatch eval`` does, as one library call (the CLI only parses and prints).

Order matters for the user: every option and output location is checked first, then the data is read,
then the model runs (minutes), then the metrics and outputs. A mistake never costs the inference.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskwatch.data.classmap import parse_merge
from maskwatch.data.formats import load_dataset
from maskwatch.data.layout import select_split
from maskwatch.engine.evaluate import (
    FACE,
    OPERATING_CONF,
    EvalReport,
    as_faces,
    check_classes,
    check_options,
    evaluate_dataset,
    predict_dataset,
)
from maskwatch.engine.predictions import image_index, read_predictions
from maskwatch.engine.report import check_out_dir, write_outputs
from maskwatch.errors import MaskwatchError
from maskwatch.io import check_output, write_json
from maskwatch.models.names import DEFAULT_MODEL
from maskwatch.predict import check_imgsz, load_for_eval  # an .onnx file runs without torch

log = logging.getLogger("maskwatch")


def run_eval(
    data: str | Path,
    *,
    format: str = "auto",
    merge: Sequence[str] | None = None,
    split: str | Path | None = None,
    model: str | Path | None = None,
    predictions: str | Path | None = None,
    min_size: float = 0.0,
    conf: float = OPERATING_CONF,
    iou_thr: float | None = None,
    bootstrap: int = 0,
    seed: int = 0,
    out: str | Path | None = None,
    json_path: str | Path | None = None,
    gallery: int = 20,
    batch: int = 8,
    device: str = "auto",
    box_style: str | None = None,
    tta: bool = False,
    classifier: bool = True,
    agnostic: bool = False,
    errors: bool = False,
    imgsz: int | None = None,
    progress: bool = True,
) -> EvalReport:
    """Score ``model`` (default: the built-in default) or a COCO ``predictions`` file on ``data``.

    ``split`` is a stems file or a split folder (its ``test.txt``). With ``predictions`` and a COCO ``data``
    file that states image sizes, no image file is needed. ``out`` gets the COCO files, plots and gallery,
    ``json_path`` the summary metrics. ``box_style`` scores a model trained on several label sets with
    the box regressor of the style ``data`` is drawn in (e.g. ``ilc`` for the ILC 2021 photos). ``tta``
    scores the model with test-time augmentation (mirrored and enlarged views, fused); ``classifier``
    False scores a model that has a crop classifier without it (its detector alone). ``agnostic``
    scores every face as one class (:func:`~maskwatch.engine.evaluate.as_faces`): found or not, whatever
    its class. ``errors`` adds where AP50 goes (:mod:`~maskwatch.engine.errors`; with ``out``, a contact
    sheet of each kind of error). ``imgsz`` runs the model at another input long side than its own.
    Returns the :class:`~maskwatch.engine.evaluate.EvalReport`.
    """
    t0 = time.perf_counter()
    check_options(min_size, conf, iou_thr, bootstrap)
    if gallery < 0 or batch < 1:
        raise MaskwatchError("--gallery must be >= 0 and --batch >= 1")
    if model is not None and predictions is not None:
        raise MaskwatchError("give a model or a predictions file, not both")
    if box_style is not None and predictions is not None:
        raise MaskwatchError("--box-style picks a model's box regressor: it does not apply to --predictions")
    if tta and predictions is not None:
        raise MaskwatchError("--tta runs the model on extra views: it does not apply to --predictions")
    if imgsz is not None and predictions is not None:
        raise MaskwatchError("--imgsz sets a model's input size: it does not apply to --predictions")
    check_imgsz(imgsz)
    inputs = [p for p in (data, predictions, split) if p is not None]
    if out is not None:
        check_out_dir(Path(out), inputs)
    check_output(json_path, "--json", inputs)
    mapping = parse_merge(merge)
    full = load_dataset(data, format, merge, require_images=predictions is None)
    ds = full.subset(select_split(Path(split))) if split is not None else full
    if not len(ds):
        raise MaskwatchError(f"{data}: no images to evaluate")
    index = image_index(data, full, format)
    extra: dict[str, Any] = {"data": str(data), "split": None if split is None else str(split)}
    if predictions is not None:
        class_names = tuple(ds.classes)
        found = read_predictions(predictions, ds, class_names, index, mapping)
        extra["predictions"] = str(predictions)
    else:
        from maskwatch.predict.classify import ClassifiedPredictor

        detector = load_for_eval(
            str(model or DEFAULT_MODEL),
            device=device,
            box_style=box_style,
            tta=tta,
            classifier=classifier,
            imgsz=imgsz,
        )
        class_names = tuple(detector.class_names)
        check_classes(ds, class_names)  # before minutes of inference, not after
        found = predict_dataset(detector, ds, batch=batch, progress=progress)
        extra["model"] = str(model or DEFAULT_MODEL)
        extra["box_style"] = box_style
        extra["tta"] = tta
        extra["imgsz"] = imgsz  # None: the model's own
        extra["classifier"] = isinstance(detector, ClassifiedPredictor)  # the model had one, and it ran
    extra["agnostic"] = agnostic
    if agnostic:
        ds, found = as_faces(ds, found)
        class_names = (FACE,)
    report = evaluate_dataset(
        ds,
        found,
        class_names,
        index.ids_for(ds),
        min_size=min_size,
        conf=conf,
        iou_thr=iou_thr,
        bootstrap=bootstrap,
        seed=seed,
        errors=errors,
    )
    report.extra = extra
    report.seconds = time.perf_counter() - t0
    if out is not None:
        write_outputs(report, ds, found, out, gallery=gallery)
    report.seconds = time.perf_counter() - t0
    if json_path is not None:
        write_json(json_path, report.summary_json())
    log.info("evaluated %d images in %.1f s", report.images, report.seconds)
    return report
