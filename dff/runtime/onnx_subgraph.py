"""The part of an ONNX graph that computes chosen outputs: the in-memory rewrites of the CPU backends cut graphs with it."""

from __future__ import annotations

from collections.abc import Sequence

import onnx


def subgraph(
    model: onnx.ModelProto,
    outputs: Sequence[onnx.ValueInfoProto],
    *,
    inputs: Sequence[onnx.ValueInfoProto] | None = None,
    nodes: Sequence[onnx.NodeProto] | None = None,
    initializers: Sequence[onnx.TensorProto] = (),
) -> onnx.ModelProto:
    """A model of the ``nodes`` (default: ``model``'s, topologically sorted) that ``outputs`` need, walking back from
    them; its inputs are ``inputs`` (default: ``model``'s), its initializers those of ``model`` and ``initializers``
    that the kept nodes read. Everything else (opsets, IR version, producer) is ``model``'s."""
    graph = model.graph
    needed = {value.name for value in outputs}
    kept = []
    for node in reversed(list(graph.node if nodes is None else nodes)):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    names = {value.name for value in outputs}
    cut = onnx.helper.make_graph(
        kept[::-1],
        graph.name,
        list(graph.input if inputs is None else inputs),
        list(outputs),
        initializer=[tensor for tensor in [*graph.initializer, *initializers] if tensor.name in needed],
        value_info=[value for value in graph.value_info if value.name in needed and value.name not in names],
    )
    result = onnx.helper.make_model(cut, opset_imports=model.opset_import, producer_name=model.producer_name)
    result.ir_version = model.ir_version
    return result
