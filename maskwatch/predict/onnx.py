"""ONNX Runtime predictor for exported models: the fast CPU path, and the one that needs no torch."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np

from maskwatch.errors import MaskwatchError
from maskwatch.models.export import META_PREFIX
from maskwatch.predict.base import GraphPredictor


class OnnxPredictor(GraphPredictor):
    """An exported model run by ONNX Runtime with full graph optimisation.

    Intra-op threads default to every core; ``spin=False`` stops idle ORT threads busy-waiting, which on
    a small CPU would take cycles from the decoding and encoding threads of the video pipeline.
    """

    backend = "onnx"

    def __init__(
        self,
        model: str | Path | bytes,
        device: str = "cpu",
        imgsz: int | None = None,
        threads: int | None = None,
        name: str = "",
        spin: bool = False,
    ) -> None:
        import onnxruntime as ort

        label = name or ("<in-memory ONNX model>" if isinstance(model, bytes) else str(model))
        self.name = label
        if not isinstance(model, bytes):
            path = Path(model)
            if not path.is_file():
                raise MaskwatchError(f"{path}: ONNX model not found")
            model = path.read_bytes()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        so.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if str(device).startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise MaskwatchError(
                    "--device cuda: this onnxruntime has no CUDA provider (install onnxruntime-gpu)"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(model, so, providers=providers)
        except Exception as e:  # onnxruntime raises its own non-exported exception types
            raise MaskwatchError(
                f"{label}: not a readable ONNX model ({str(e).splitlines()[0][:120]})"
            ) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if META_PREFIX + "class_names" not in meta:
            raise MaskwatchError(
                f"{label}: not a maskwatch ONNX export (no {META_PREFIX}class_names metadata)"
            )
        self.class_names = tuple(json.loads(meta[META_PREFIX + "class_names"]))
        self.box_style = meta.get(META_PREFIX + "box_style", "default")  # the one style the export holds
        # every style of the model it was exported from (another one needs its own export)
        self.box_styles = tuple(
            json.loads(meta.get(META_PREFIX + "box_styles", json.dumps([self.box_style])))
        )
        exported = int(meta[META_PREFIX + "imgsz"])
        self.input_name = self.session.get_inputs()[0].name
        h, w = self.session.get_inputs()[0].shape[2:]
        if isinstance(h, int) and isinstance(w, int):
            self.static_size = (h, w)
            if imgsz and imgsz != exported:
                raise MaskwatchError(
                    f"{label}: exported for a fixed {w}x{h} input; --imgsz {imgsz} needs a re-export"
                )
        self.imgsz = imgsz or exported
        if META_PREFIX + "classifier_onnx" in meta:  # the second stage, a model of its own
            try:
                graph = base64.b64decode(meta[META_PREFIX + "classifier_onnx"], validate=True)
                settings = json.loads(meta[META_PREFIX + "classifier"])
                session = ort.InferenceSession(graph, so, providers=providers)
                self.crop_classifier = OnnxCropClassifier(session, settings)
            except Exception as e:  # binascii, JSON, KeyError or onnxruntime's own types
                raise MaskwatchError(
                    f"{label}: its crop classifier is unreadable ({str(e).splitlines()[0][:120]}); "
                    "export it again"
                ) from None

    def run_network(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        boxes, scores = self.session.run(None, {self.input_name: x})
        return boxes, scores


class OnnxCropClassifier:
    """The crop classifier an export carries (:func:`maskwatch.models.export.export_onnx_bytes`)."""

    def __init__(self, session: Any, settings: dict[str, Any]) -> None:
        self.session = session
        self.size, self.context = int(settings["size"]), float(settings["context"])
        self.alpha = float(settings["alpha"])
        self.beta = float(settings.get("beta", 0.0))  # exports made before backgrounds existed: none
        self.box_styles = tuple(settings.get("box_styles", ()))  # nor, before box heads, a box head
        self.refine = float(settings.get("refine", 0.0))

    def classify(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = self.session.run(None, {"crops": crops})
        return np.asarray(outputs[0]), np.asarray(outputs[1]) if len(outputs) > 1 else None
