"""OpenCV's DNN module (``cv2.dnn.readNetFromONNX``), its own ONNX importer and CPU kernels.

OpenCV 5 reads every exported graph as it is: uint8 frame inputs, GridSample, ArgMax and
float16 weights (it computes float16 graphs in float32 and returns float32 outputs).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import onnx

from dff.export.runners import output_names


class OpenCVRunner:
    runs_plugin = False

    def __init__(self, model: onnx.ModelProto) -> None:
        self._net = cv2.dnn.readNetFromONNX(np.frombuffer(model.SerializeToString(), dtype=np.uint8))
        self._outputs = output_names(model)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, value in feeds.items():
            self._net.setInput(np.ascontiguousarray(value), name)
        return dict(zip(self._outputs, self._net.forward(self._outputs)))


RUNNER = OpenCVRunner
