"""OpenVINO on the CPU: a fourth, independent implementation of ONNX (``dff check`` runs detection graphs in it)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from dff.export.runners import output_names
from dff.quiet_openvino import import_openvino

ov = import_openvino()


class OpenVinoRunner:
    """float32 inference: OpenVINO's CPU plugin would otherwise pick bf16 where the CPU has it."""

    runs_plugin = False

    def __init__(self, model: onnx.ModelProto) -> None:
        core = ov.Core()
        self._model = core.compile_model(core.read_model(model.SerializeToString(), b""), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self._outputs = output_names(model)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._model(dict(feeds))
        return {name: np.asarray(results[name]) for name in self._outputs}


RUNNER = OpenVinoRunner
