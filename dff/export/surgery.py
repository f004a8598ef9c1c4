"""Graph surgery for ``dff check``: the plugin graph with each ``dff::DFFWarp`` node replaced by the standard subgraph.

The standard subgraph is taken from ``warp.onnx`` itself, wired to the plugin node's inputs and
output by position. The result runs in any ONNX runtime; equal outputs then show that the plugin
node has the interface (inputs in order, output, shapes, dtypes) of the standard form, and the
comparisons with PyTorch and with :class:`~dff.export.runners.reference.DFFWarp` show what it computes.
"""

from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from dff.errors import ExportError
from dff.export.warp_graph import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION


def inline_warp_plugin(plugin: onnx.ModelProto, standard: onnx.ModelProto) -> onnx.ModelProto:
    """``plugin`` with every DFFWarp node replaced by a copy of ``standard``'s graph (same inputs and output)."""
    graph = gs.import_onnx(_copy(plugin))
    nodes = [n for n in graph.nodes if n.op == PLUGIN_OP and n.domain == PLUGIN_DOMAIN]
    if not nodes:
        raise ExportError(f"the plugin graph has no {PLUGIN_DOMAIN}::{PLUGIN_OP} node: export again with `dff export`")
    for index, node in enumerate(nodes):
        attrs = (node.attrs.get("plugin_version"), node.attrs.get("plugin_namespace"))
        if attrs != (PLUGIN_VERSION, PLUGIN_NAMESPACE):
            raise ExportError(
                f"{PLUGIN_OP} node {node.name!r} has plugin_version, plugin_namespace = {attrs}, expected "
                f"{(PLUGIN_VERSION, PLUGIN_NAMESPACE)}: TensorRT would not find the plugin; export again"
            )
        # A copy: graphsurgeon renames initializers in the proto it imported them from.
        subgraph = gs.import_onnx(_copy(standard))
        if not (len(subgraph.inputs) == len(node.inputs) and len(subgraph.outputs) == len(node.outputs)):
            raise ExportError(
                f"{PLUGIN_OP} node {node.name!r} has {len(node.inputs)} inputs and {len(node.outputs)} outputs, the "
                f"standard warp graph {len(subgraph.inputs)} and {len(subgraph.outputs)}: export again"
            )
        # gs tensors compare by name (and cannot be hashed), so the wiring goes by name.
        bindings = {inner.name: outer for inner, outer in zip(subgraph.inputs, node.inputs)}
        bindings |= {inner.name: outer for inner, outer in zip(subgraph.outputs, node.outputs)}
        intermediates = [t for name, t in subgraph.tensors().items() if name not in bindings]
        for inner in subgraph.nodes:
            for slots in (inner.inputs, inner.outputs):
                for position, tensor in enumerate(slots):
                    if tensor.name in bindings:
                        slots[position] = bindings[tensor.name]
        # The node's name prefixes the copied intermediates, so that several inlined copies cannot collide.
        for tensor in intermediates:
            tensor.name = f"{node.name or PLUGIN_OP}_{index}/{tensor.name}"
        node.inputs.clear()
        node.outputs.clear()
        graph.nodes.extend(subgraph.nodes)
    graph.cleanup().toposort()
    model = gs.export_onnx(graph)
    # The custom domain is no longer used; drop its import so that the model is pure ONNX.
    kept = [o for o in model.opset_import if o.domain != PLUGIN_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    model.ir_version = plugin.ir_version
    return model


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    duplicate = onnx.ModelProto()
    duplicate.CopyFrom(model)
    return duplicate
