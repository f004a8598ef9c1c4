"""Graph surgery for ``dff check``: the plugin graph with each ``dff::DFFWarp`` node replaced by the standard subgraph.

The standard subgraph is taken from ``warp.onnx`` itself, wired to the plugin node's inputs and
output by position. The result runs in any ONNX runtime; equal outputs then show that the plugin
node has the interface (inputs in order, output, shapes, dtypes) of the standard form, and the
comparisons with PyTorch and with :class:`~dff.export.runners.reference.DFFWarp` show what it computes.

Written with the ``onnx`` package alone (a core dependency), so ``dff check`` runs from a plain install.
"""

from __future__ import annotations

import onnx

from dff.errors import ExportError
from dff.export.warp_graph import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION


def inline_warp_plugin(plugin: onnx.ModelProto, standard: onnx.ModelProto) -> onnx.ModelProto:
    """``plugin`` with every DFFWarp node replaced by a copy of ``standard``'s graph (same inputs and output)."""
    model = _copy(plugin)
    graph = model.graph
    plugin_nodes = [n for n in graph.node if n.op_type == PLUGIN_OP and n.domain == PLUGIN_DOMAIN]
    if not plugin_nodes:
        raise ExportError(f"the plugin graph has no {PLUGIN_DOMAIN}::{PLUGIN_OP} node: export again with `dff export`")
    sub = standard.graph
    sub_inputs = [v.name for v in sub.input if v.name not in {i.name for i in sub.initializer}]
    sub_outputs = [v.name for v in sub.output]
    nodes: list[onnx.NodeProto] = []
    index = 0
    for node in graph.node:
        if not (node.op_type == PLUGIN_OP and node.domain == PLUGIN_DOMAIN):
            nodes.append(node)
            continue
        _check_plugin_node(node, len(sub_inputs), len(sub_outputs))
        # The node's name prefixes the copied names, so that several inlined copies cannot collide.
        prefix = f"{node.name or PLUGIN_OP}_{index}/"
        index += 1
        bindings = dict(zip(sub_inputs, node.input)) | dict(zip(sub_outputs, node.output))

        def rename(name: str) -> str:
            return name if not name else bindings.get(name, prefix + name)

        for inner in sub.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(inner)
            copy.name = prefix + inner.name if inner.name else ""
            copy.input[:] = [rename(name) for name in inner.input]
            copy.output[:] = [rename(name) for name in inner.output]
            nodes.append(copy)
        for tensor in sub.initializer:
            copy = onnx.TensorProto()
            copy.CopyFrom(tensor)
            copy.name = rename(tensor.name)
            graph.initializer.append(copy)
        for info in sub.value_info:
            copy = onnx.ValueInfoProto()
            copy.CopyFrom(info)
            copy.name = rename(info.name)
            graph.value_info.append(copy)
    # The plugin node is replaced where it stood, and the standard graph is sorted, so the order stays topological.
    del graph.node[:]
    graph.node.extend(nodes)
    # The custom domain is no longer used; drop its import so that the model is pure ONNX.
    kept = [o for o in model.opset_import if o.domain != PLUGIN_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    return model


def _check_plugin_node(node: onnx.NodeProto, inputs: int, outputs: int) -> None:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    found = tuple(
        value.decode() if isinstance(value, bytes) else value
        for value in (attrs.get("plugin_version"), attrs.get("plugin_namespace"))
    )
    if found != (PLUGIN_VERSION, PLUGIN_NAMESPACE):
        raise ExportError(
            f"{PLUGIN_OP} node {node.name!r} has plugin_version, plugin_namespace = {found}, expected "
            f"{(PLUGIN_VERSION, PLUGIN_NAMESPACE)}: TensorRT would not find the plugin; export again"
        )
    if not (len(node.input) == inputs and len(node.output) == outputs):
        raise ExportError(
            f"{PLUGIN_OP} node {node.name!r} has {len(node.input)} inputs and {len(node.output)} outputs, the "
            f"standard warp graph {inputs} and {outputs}: export again"
        )


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    duplicate = onnx.ModelProto()
    duplicate.CopyFrom(model)
    return duplicate
