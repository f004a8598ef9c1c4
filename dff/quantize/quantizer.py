"""One float ONNX network → an explicitly quantized (Q/DQ) int8 one, with ONNX Runtime's static quantizer.

The scheme is the one TensorRT's explicit quantization accepts and the CPU engines run in int8:
signed int8 everywhere with zero points 0 (TensorRT supports symmetric quantization only),
weights per output channel (axis 0 of a Conv's weight, axis 1 of a ConvTranspose's), activations
per tensor, their ranges calibrated on real inputs (:mod:`dff.quantize.calibration`). Q/DQ pairs go
on the inputs of the weighted layers (Conv, ConvTranspose) and of the layers between them that move
int8 data (Add, Concat, pooling, Resize, LeakyRelu), so that the engines can keep whole chains in
int8; everything else (the uint8 → float preprocessing, Slice crops) stays float, and so do the
layers that compute the flow field M itself (:func:`flow_field_layers`) and the convolution that
halves and normalises F's frames (:func:`dff.frame_halving_layers.frame_halving_layers`: quantized per tensor, the raw
pixel values 0–255 would lose their last bit before conv1 quantizes them again).

Why ONNX Runtime's quantizer and not NNCF or ModelOpt: see the README section on ``dff quantize``
(measured there on the same graphs); it is already a dependency and writes standard ONNX Q/DQ.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from dff.errors import ConfigError

Method = Literal["minmax", "entropy", "percentile"]
METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
#: Layers whose inputs get Q/DQ pairs (see the module docstring).
QUANTIZED_OPS = ("Conv", "ConvTranspose", "Add", "Concat", "AveragePool", "MaxPool", "Resize", "LeakyRelu", "Relu")
TOOL = f"onnxruntime.quantization {onnxruntime.__version__} (quantize_static, QuantFormat.QDQ)"
WEIGHTS = "int8, symmetric (zero point 0), per output channel"
ACTIVATIONS = "int8, symmetric (zero point 0), per tensor"


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Sequence[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def flow_field_layers(model: onnx.ModelProto) -> list[str]:
    """The Conv/ConvTranspose nodes with 2 output channels: FlowNet's flow predictions and their upsampling.

    They stay float: M is a regression output in feature pixels, a few MACs in all, and OpenVINO
    2026.4's int8 path computes the last of them wrongly (flow off by 65% of its range where ONNX
    Runtime's int8 is within 6%; measured on the demo model, fixed by keeping these layers float).
    """
    weights = {i.name: i.dims for i in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type in ("Conv", "ConvTranspose")
        and node.input[1] in weights
        and weights[node.input[1]][0 if node.op_type == "Conv" else 1] == 2
    ]


def quantize_network(
    model: onnx.ModelProto,
    feeds: Sequence[dict[str, np.ndarray]],
    *,
    method: Method = "minmax",
    keep_float: Sequence[str] = (),
) -> onnx.ModelProto:
    """``model`` with int8 Q/DQ pairs, activation ranges from running it on ``feeds``; nodes ``keep_float`` stay float."""
    if method not in METHODS:
        raise ConfigError(f"unknown calibration method {method!r}; choose one of {list(METHODS)}")
    if not feeds:
        raise ConfigError("quantization needs at least one calibration input")
    with tempfile.TemporaryDirectory(prefix="dff-quantize-") as tmp:
        # The calibrator writes its augmented model and reads back files; a private folder keeps them apart.
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, source)
        # The quantizer logs a root-logger warning on every call to run its shape pre-processing, which
        # these graphs do not need (their shapes infer fully); silence it for the call only.
        logging.disable(logging.WARNING)
        try:
            quantize_static(
                source,
                target,
                _Feeds(feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                nodes_to_exclude=list(keep_float),
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=METHODS[method],
                extra_options={
                    "ActivationSymmetric": True,
                    "WeightSymmetric": True,
                    # TensorRT dequantizes int8 only; a float bias is what it fuses into the int8 convolution.
                    "QuantizeBias": False,
                    # ConvTranspose weights are (C_in, C_out / groups, kh, kw): output channels on axis 1.
                    "QDQOpTypePerChannelSupportToAxis": {"ConvTranspose": 1},
                },
            )
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load(target)
    return quantized
