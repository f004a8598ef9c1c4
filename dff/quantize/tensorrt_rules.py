"""TensorRT-readiness of a quantized export, checked statically on its ONNX graphs (no TensorRT needed).

The rules are TensorRT's for explicitly quantized networks (NVIDIA TensorRT developer guide,
"Explicit Quantization" and the IQuantizeLayer/IDequantizeLayer references):

* quantization is symmetric: every zero point is 0, of type int8 (signed);
* scales are build-time constants (initializers), strictly positive, and either a scalar (per tensor)
  or a 1-D tensor as long as the quantization axis (per channel);
* the inputs of weighted layers are quantized: a quantized Conv or ConvTranspose reads its data
  input through a per-tensor DequantizeLinear and its weights through a per-channel DequantizeLinear
  of int8 constants, on the output-channel axis (0 for Conv's (K, C, kh, kw), 1 for ConvTranspose's
  (C, K / groups, kh, kw)); a layer whose weights are float is a float layer (TensorRT computes it
  in float from its dequantized input), and quantized weights on a float input are an error;
* the warp stays float: no Q/DQ in ``warp.onnx`` and none on the inputs of its GridSample (nor in the
  task graph, which is the float export's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from dff.manifest import load_manifest

QDQ = ("QuantizeLinear", "DequantizeLinear")
WEIGHTED = {"Conv": 0, "ConvTranspose": 1}  # op type → output-channel axis of its weight


@dataclass(frozen=True)
class RulesReport:
    """Per model file, what was checked; ``violations`` name the node and the rule it breaks."""

    checked: tuple[str, ...]
    violations: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.violations


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {output: node for node in graph.node for output in node.output}


def _axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), 1)


def check_qdq_nodes(model: onnx.ModelProto, name: str) -> list[str]:
    """Symmetric int8 with constant, positive, scalar or per-axis scales, for every Q/DQ node of ``model``."""
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    problems = []
    for node in (n for n in model.graph.node if n.op_type in QDQ):
        where = f"{name}: {node.op_type} {node.name!r}"
        scale = constants.get(node.input[1])
        zero = constants.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if scale is None or (len(node.input) > 2 and node.input[2] and zero is None):
            problems.append(f"{where}: scale and zero point must be constants (initializers)")
            continue
        if not (np.all(scale > 0) and np.all(np.isfinite(scale))):
            problems.append(f"{where}: scales must be finite and strictly positive")
        if zero is not None and (zero.dtype != np.int8 or np.any(zero != 0)):
            problems.append(f"{where}: zero point must be int8 zeros (TensorRT quantizes symmetrically), got {zero.dtype} {zero.ravel()[:4]}")
        if scale.ndim > 1 or (zero is not None and zero.shape != scale.shape):
            problems.append(f"{where}: scale must be a scalar or 1-D (shape {scale.shape}) with a zero point of its shape")
    return problems


def _dequantized(producer: onnx.NodeProto | None) -> bool:
    return producer is not None and producer.op_type == "DequantizeLinear"


def float_layers(model: onnx.ModelProto) -> list[str]:
    """The Conv/ConvTranspose nodes whose weights are float (no DequantizeLinear before them): left float on purpose."""
    producers = _producers(model.graph)
    return [n.name for n in model.graph.node if n.op_type in WEIGHTED and not _dequantized(producers.get(n.input[1]))]


def check_weighted_inputs(model: onnx.ModelProto, name: str) -> list[str]:
    """Every quantized Conv/ConvTranspose reads a per-tensor DQ'd input and per-output-channel DQ'd int8 weights."""
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = _producers(model.graph)
    problems = []
    kept_float = set(float_layers(model))
    for node in (n for n in model.graph.node if n.op_type in WEIGHTED and n.name not in kept_float):
        where = f"{name}: {node.op_type} {node.name!r}"
        data, weight = (producers.get(node.input[i]) for i in (0, 1))
        if not _dequantized(data):
            problems.append(f"{where}: its input is not quantized (no DequantizeLinear before it)")
        elif constants.get(data.input[1], np.zeros(2)).ndim != 0:
            problems.append(f"{where}: its input must be quantized per tensor (a scalar scale)")
        if weight is None or weight.op_type != "DequantizeLinear" or weight.input[0] not in constants:
            problems.append(f"{where}: its weights are not int8 constants behind a DequantizeLinear")
            continue
        values, scale = constants[weight.input[0]], constants.get(weight.input[1])
        axis = WEIGHTED[node.op_type]
        if values.dtype != np.int8:
            problems.append(f"{where}: weights are {values.dtype}, not int8")
        if scale is None or scale.ndim != 1 or _axis(weight) != axis or scale.shape[0] != values.shape[axis]:
            problems.append(f"{where}: weights must be quantized per output channel (axis {axis}, {values.shape[axis]} scales)")
    return problems


def check_float_graph(model: onnx.ModelProto, name: str) -> list[str]:
    """No Q/DQ anywhere in a graph that must stay float (the warp with its GridSample, the task graph)."""
    return [f"{name}: {n.op_type} {n.name!r} in a graph that must stay float" for n in model.graph.node if n.op_type in QDQ]


def check_tensorrt_rules(directory: str | Path) -> RulesReport:
    """Check a quantized export's graphs against TensorRT's explicit-quantization rules (module docstring)."""
    directory = Path(directory)
    manifest = load_manifest(directory)
    quantized = manifest.quantization.networks if manifest.quantization else ()
    checked, problems = [], []
    for role, entry in manifest.files().items():
        model = onnx.load(directory / entry.file)
        if role in quantized:
            problems += check_qdq_nodes(model, entry.file) + check_weighted_inputs(model, entry.file)
            count = sum(n.op_type in WEIGHTED for n in model.graph.node)
            kept = len(float_layers(model))
            checked.append(
                f"{entry.file}: {count - kept} Conv/ConvTranspose with int8 per-channel weights and per-tensor inputs"
                + (f", {kept} kept float" if kept else "")
            )
        else:
            problems += check_float_graph(model, entry.file)
            checked.append(f"{entry.file}: float, no Q/DQ" + (" (GridSample kept float)" if role.startswith("warp") else ""))
    return RulesReport(checked=tuple(checked), violations=tuple(problems))
