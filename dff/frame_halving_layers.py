"""Which nodes of an exported graph are F's frame preprocessing, not a network's layer. Torch-free.

``flow.onnx`` halves and normalises each uint8 frame with one convolution that reads the frame as one channel of
H rows of 3W values (``dff.export.torch_graphs.FrameHalving``). It is preprocessing: the int8 quantizer leaves it
float, and a network's MAC count (F's share of Table 2's r) leaves it out, as it left out the pooling it replaced.
"""

from __future__ import annotations

import onnx


def frame_halving_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes whose weight (an initializer) has one input channel and which are not depthwise: the
    frames' halving (no network layer of ours reads one channel)."""
    weights = {tensor.name: tensor.dims for tensor in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Conv"
        and node.input[1] in weights
        and weights[node.input[1]][1] == 1
        and all(attribute.name != "group" or attribute.i == 1 for attribute in node.attribute)
    ]
