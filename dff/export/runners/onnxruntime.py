"""ONNX Runtime on the CPU, all graph optimisations on (as the runtime uses it)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort

from dff.export.runners import output_names


class OnnxRuntimeRunner:
    runs_plugin = False

    def __init__(self, model: onnx.ModelProto) -> None:
        self._session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        self._outputs = output_names(model)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._session.run(self._outputs, dict(feeds))))


RUNNER = OnnxRuntimeRunner
