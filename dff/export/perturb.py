"""A copy of a graph whose last layers have seeded random weights, for checks that would otherwise compare constants.

``dff init`` makes F output exactly M = 0 and S = 1 (its last convolutions start at weights 0,
Section 3), so comparing a fresh export's flow outputs with a reference compares 0 with 0 and 1
with 1 whatever the graph computes. :func:`perturb_last_layers` finds, for each named output, the
nearest convolutions it depends on (walking back through the operations that follow them: resizes,
scaling), and gives their weights seeded random values, returned by initializer name so that a
reference (the checkpoint's PyTorch modules, whose parameter names the exporter keeps) can load the
same values. Everything else in the graph is as exported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import numpy_helper

#: Standard deviation of the new weights: enough for flows of a few feature cells and scales around their bias.
WEIGHT_STD = 0.05


def last_convolutions(model: onnx.ModelProto, outputs: Sequence[str]) -> list[onnx.NodeProto]:
    """The Conv nodes nearest to ``outputs``: on every path of values back from them, the first Conv met."""
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    producer = {name: node for node in graph.node for name in node.output}
    found: dict[str, onnx.NodeProto] = {}
    frontier, seen = list(outputs), set()
    while frontier:
        tensor = frontier.pop()
        if tensor in seen or tensor not in producer:
            continue
        seen.add(tensor)
        node = producer[tensor]
        if node.op_type == "Conv":
            found[node.output[0]] = node
        elif node.op_type != "Shape":  # a Shape depends on its input's size only (Resize targets are computed so)
            frontier += [name for name in node.input if name and name not in initializers]
    return list(found.values())


def perturb_last_layers(
    model: onnx.ModelProto, outputs: Sequence[str], *, seed: int
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A copy of ``model`` with the weights of the last convolutions before ``outputs`` redrawn; (copy, new weights).

    The weights dict is empty when no such convolution has its weight as an initializer.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    initializers = {i.name: i for i in copy.graph.initializer}
    rng = np.random.default_rng(seed)
    values: dict[str, np.ndarray] = {}
    for node in last_convolutions(copy, outputs):
        name = node.input[1]
        if name not in initializers or name in values:
            continue
        old = numpy_helper.to_array(initializers[name])
        values[name] = (rng.standard_normal(old.shape) * WEIGHT_STD).astype(old.dtype)
        initializers[name].CopyFrom(numpy_helper.from_array(values[name], name))
    return copy, values
