"""F's key-frame half, computed once per key frame: the flow graphs rewritten in memory when a CPU backend loads them.

F(I_k, I_i) concatenates the two frames (each pooled and normalised, by one convolution in our exports; older ones
normalise after the concatenation, per channel) on channels and convolves them with conv1, a 7×7 convolution on the 6
channels. A convolution sums over its input channels
and everything before it works on each frame's channels apart, so conv1(concat(c, k)) + b = conv1_c(c) + b +
conv1_k(k), with conv1_c and conv1_k the weights of the current and the key frame's channels (zero padding pads each
half alike). The key frame's half, conv1_k of its normalised pooled pixels, is the same for
every frame propagated from that key frame: the rewritten graphs take it as an input, ``key_flow_half``, in place of
``key_frame``, and a small graph computes it from a key frame once. On the demo model at 320×400 conv1 was 19% of the
propagation graph's kernel time and the key frame's preprocessing (then Cast, Transpose, AveragePool) another 9%.

The sums are the same but for their order (the two halves' products are added in two groups instead of one), so F's
outputs agree to float rounding; ``tests/test_key_flow_half.py`` measures it, and the labels.

:func:`split_key_half` rewrites a graph whose ``key_frame`` enters F only through that concatenation and conv1 (every
``flow.onnx`` and ``propagate.onnx`` we export in float32 or float16); for any other form (an int8 export, whose conv1
reads quantised weights and activations) it returns None and the backend runs the graph as it is. The files on disk
are unchanged: the exported contract (TensorRT's engines, the C++ library) stays ``key_frame``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper

from dff.manifest import KEY_FRAME, TensorSpec
from dff.runtime.onnx_subgraph import subgraph

#: The rewritten graphs' input in place of ``key_frame``, and the key-half graph's output: (N, C1, H/4, W/4).
KEY_FLOW_HALF = "key_flow_half"
#: Nodes that may stand between the concatenation and conv1: elementwise with per-channel constants, and casts.
_CHANNELWISE = ("Sub", "Mul", "Add", "Div")


@dataclass(frozen=True)
class KeyHalfSplit:
    """``graph``: the flow or fused graph reading ``key_flow_half`` in place of ``key_frame``; ``key_half``:
    ``key_frame`` → ``key_flow_half``, the key frame's half of conv1 (without its bias); ``spec``: that tensor's
    interface, in the manifest's terms (conv1 has stride 4 of the frame)."""

    graph: onnx.ModelProto
    key_half: onnx.ModelProto
    spec: TensorSpec


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of ``name`` if it is an initializer or a Constant node's output."""
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _key_only(model: onnx.ModelProto) -> set[str]:
    """Names of the tensors computed from ``key_frame`` and constants alone."""
    constants = {tensor.name for tensor in model.graph.initializer}
    derived = {KEY_FRAME}
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
        elif node.input and derived.intersection(node.input) and all(n in derived or n in constants for n in node.input if n):
            derived.update(node.output)
    return derived


def split_key_half(model: onnx.ModelProto) -> KeyHalfSplit | None:
    """``model`` split at conv1 into its key-frame half and the rest (module docstring), or None where its key frame
    enters otherwise."""
    graph = model.graph
    if KEY_FRAME not in {value.name for value in graph.input}:
        return None
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    key_only = _key_only(model)
    # The key frame must reach the rest of the graph through one Concat of its pooled pixels and the current frame's.
    exits = [node for name in key_only for node in consumers[name] if not set(node.output) <= key_only]
    if len(exits) != 1 or key_only.intersection(output.name for output in graph.output):
        return None
    concat = exits[0]
    axis = next((helper.get_attribute_value(a) for a in concat.attribute if a.name == "axis"), None)
    if not (concat.op_type == "Concat" and axis == 1 and len(concat.input) == 2 and concat.input[1] in key_only):
        return None
    chain, tensor = [], concat.output[0]
    while len(consumers[tensor]) == 1 and consumers[tensor][0].op_type in (*_CHANNELWISE, "Cast"):
        chain.append(consumers[tensor][0])
        tensor = chain[-1].output[0]
    if len(consumers[tensor]) != 1 or consumers[tensor][0].op_type != "Conv":
        return None
    conv = consumers[tensor][0]
    weight = _constant(model, conv.input[1])
    attributes = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if weight is None or weight.ndim != 4 or weight.shape[1] % 2 or attributes.get("group", 1) != 1 or conv.input[0] != tensor:
        return None
    half = weight.shape[1] // 2  # both frames have 3 channels
    added: list[onnx.TensorProto] = []
    new_nodes: dict[str, list[onnx.NodeProto]] = {}
    for side, x, channels in (("current", concat.input[0], slice(0, half)), ("key", concat.input[1], slice(half, 2 * half))):
        nodes, source = [], concat.output[0]
        for node in chain:  # the same per-channel operations on this side's channels
            name = f"{KEY_FLOW_HALF}/{side}/{node.output[0]}"
            if node.op_type == "Cast":
                nodes.append(helper.make_node("Cast", [x], [name], to=helper.get_attribute_value(node.attribute[0])))
            else:
                if source not in node.input[:2]:
                    return None
                position = list(node.input).index(source)
                value = _constant(model, node.input[1 - position])
                if value is None or not (value.size == 1 or value.shape == (1, 2 * half, 1, 1)):
                    return None
                sliced = value if value.size == 1 else value[:, channels]
                added.append(numpy_helper.from_array(np.ascontiguousarray(sliced), f"{name}/constant"))
                operands = [x, added[-1].name] if position == 0 else [added[-1].name, x]
                nodes.append(helper.make_node(node.op_type, operands, [name]))
            x, source = name, node.output[0]
        added.append(numpy_helper.from_array(np.ascontiguousarray(weight[:, channels]), f"{KEY_FLOW_HALF}/{side}/weight"))
        inputs = [x, added[-1].name]
        if side == "current" and len(conv.input) > 2 and conv.input[2]:
            inputs.append(conv.input[2])  # the bias, once
        out = KEY_FLOW_HALF if side == "key" else f"{KEY_FLOW_HALF}/current/conv"
        nodes.append(helper.make_node("Conv", inputs, [out], **attributes))
        new_nodes[side] = nodes
    new_nodes["current"].append(helper.make_node("Add", [f"{KEY_FLOW_HALF}/current/conv", KEY_FLOW_HALF], [conv.output[0]]))
    # The new nodes read only tensors computed before the Concat: in conv1's place the order stays topological.
    # (Compared by output names: protobuf hands out a new wrapper object for each access to a node.)
    replaced = {node.output[0] for node in (concat, *chain)}
    at = next(index for index, node in enumerate(graph.node) if node.output[0] == conv.output[0])
    before = [node for node in graph.node[:at] if node.output[0] not in replaced]
    after = list(graph.node[at + 1 :])
    key_value = next(value for value in graph.input if value.name == KEY_FRAME)
    element = helper.np_dtype_to_tensor_dtype(weight.dtype)
    half_value = helper.make_tensor_value_info(KEY_FLOW_HALF, element, ["N", weight.shape[0], "h", "w"])
    rest = subgraph(
        model,
        list(graph.output),
        inputs=[half_value if value.name == KEY_FRAME else value for value in graph.input],
        nodes=[*before, *new_nodes["current"], *after],
        initializers=added,
    )
    if KEY_FRAME in {name for node in rest.graph.node for name in node.input}:
        return None
    key_half = subgraph(model, [half_value], inputs=[key_value], nodes=[*before, *new_nodes["key"]], initializers=added)
    onnx.checker.check_model(rest)
    onnx.checker.check_model(key_half)
    dtype = "float16" if weight.dtype == np.float16 else "float32"
    return KeyHalfSplit(graph=rest, key_half=key_half, spec=TensorSpec(KEY_FLOW_HALF, dtype, ("N", weight.shape[0], "H/4", "W/4")))
