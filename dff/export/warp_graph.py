"""The feature warp W (Eq. 1-3) as ONNX graphs, written with ``onnx.helper``: standard ops and a plugin node.

Both graphs map (key_feat, flow, scale) to feat with the conventions of :mod:`dff.ops.warp`:
flow in feature-map pixels (channel 0 horizontal), cell-index coordinates (``align_corners=1``),
zero contribution from outside the map, the output times S.

* :func:`warp_model`: GridSample and the arithmetic that builds its grid. The sampling grid and
  GridSample run in float32 whatever the I/O dtype: a float16 coordinate near x = 127 (a 2048-pixel
  frame) has a resolution of 0.06 cells, visibly blurring the features; the float16 form casts at
  its inputs and output only, which is also what the CUDA kernel does (plugins/include/dff/warp_sample.h).
* :func:`warp_plugin_model`: the same function as one ``dff::DFFWarp`` node, the form TensorRT's
  ONNX parser hands to our plugin (found by op type, version and namespace). ONNX has no schema for
  it: its output shape is written into the graph, and ``dff check`` proves it equal to the
  standard form by replacing the node with :func:`warp_model`'s subgraph.

GridSample exists from opset 16; opset 20 renamed its modes ("bilinear" became "linear") and
TensorRT's parser mis-reads them (NVIDIA/TensorRT#4646), so opsets 16-19 are allowed.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from dff.errors import ConfigError
from dff.manifest import FEAT, FLOW, KEY_FEAT, SCALE, Dim

MIN_OPSET, MAX_OPSET = 16, 19
PLUGIN_OP, PLUGIN_DOMAIN, PLUGIN_VERSION, PLUGIN_NAMESPACE = "DFFWarp", "dff", "1", "dff"

ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


def _io(dtype: str, *, batch: Dim, channels: int, feat_hw: tuple[Dim, Dim]) -> tuple[list, list]:
    elem = ONNX_DTYPES[dtype]
    height, width = feat_hw
    inputs = [
        helper.make_tensor_value_info(KEY_FEAT, elem, [batch, channels, height, width]),
        helper.make_tensor_value_info(FLOW, elem, [batch, 2, height, width]),
        helper.make_tensor_value_info(SCALE, elem, [batch, channels, height, width]),
    ]
    return inputs, [helper.make_tensor_value_info(FEAT, elem, [batch, channels, height, width])]


def _warp_nodes(dtype: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes and constants computing FEAT from KEY_FEAT, FLOW and SCALE with GridSample (opset 16-19)."""
    constants = [
        helper.make_tensor("warp/axis1", TensorProto.INT64, [1], [1]),
        helper.make_tensor("warp/split", TensorProto.INT64, [2], [1, 1]),
        helper.make_tensor("warp/zero", TensorProto.INT64, [], [0]),
        helper.make_tensor("warp/one", TensorProto.INT64, [], [1]),
        helper.make_tensor("warp/two", TensorProto.INT64, [], [2]),
        helper.make_tensor("warp/three", TensorProto.INT64, [], [3]),
        helper.make_tensor("warp/one_f", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor("warp/two_f", TensorProto.FLOAT, [], [2.0]),
    ]
    to_float = dtype != "float32"
    feat32, flow32, scale32 = (f"warp/{n}_f32" for n in (KEY_FEAT, FLOW, SCALE)) if to_float else (KEY_FEAT, FLOW, SCALE)
    nodes = []
    if to_float:
        for source, cast in ((KEY_FEAT, feat32), (FLOW, flow32), (SCALE, scale32)):
            nodes.append(helper.make_node("Cast", [source], [cast], to=TensorProto.FLOAT))

    def axis_steps(prefix: str, size: str) -> str:
        """2 / max(size - 1, 1) as a float scalar: one cell in normalised grid units (align_corners=1)."""
        nodes.extend([
            helper.make_node("Sub", [size, "warp/one"], [f"{prefix}_m1"]),
            helper.make_node("Max", [f"{prefix}_m1", "warp/one"], [f"{prefix}_cells"]),
            helper.make_node("Cast", [f"{prefix}_cells"], [f"{prefix}_cells_f"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["warp/two_f", f"{prefix}_cells_f"], [f"{prefix}_step"]),
        ])
        return f"{prefix}_step"

    nodes += [
        # Map size (Hk, Wk) of the key features and output grid size (H, W) of the flow, as int64 scalars.
        helper.make_node("Shape", [feat32], ["warp/feat_shape"]),
        helper.make_node("Shape", [flow32], ["warp/flow_shape"]),
        helper.make_node("Gather", ["warp/feat_shape", "warp/two"], ["warp/feat_h"], axis=0),
        helper.make_node("Gather", ["warp/feat_shape", "warp/three"], ["warp/feat_w"], axis=0),
        helper.make_node("Gather", ["warp/flow_shape", "warp/two"], ["warp/flow_h"], axis=0),
        helper.make_node("Gather", ["warp/flow_shape", "warp/three"], ["warp/flow_w"], axis=0),
        # Output locations p: xs (W,) and ys (H, 1), broadcasting against (N, 1, H, W).
        helper.make_node("Range", ["warp/zero", "warp/flow_w", "warp/one"], ["warp/xs_i"]),
        helper.make_node("Cast", ["warp/xs_i"], ["warp/xs"], to=TensorProto.FLOAT),
        helper.make_node("Range", ["warp/zero", "warp/flow_h", "warp/one"], ["warp/ys_i"]),
        helper.make_node("Cast", ["warp/ys_i"], ["warp/ys_row"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["warp/ys_row", "warp/axis1"], ["warp/ys"]),
        helper.make_node("Split", [flow32, "warp/split"], ["warp/dx", "warp/dy"], axis=1),
    ]
    step_x, step_y = axis_steps("warp/x", "warp/feat_w"), axis_steps("warp/y", "warp/feat_h")
    nodes += [
        # g = (p + δp) · 2 / max(size - 1, 1) - 1, as dff.ops.warp.sampling_grid.
        helper.make_node("Add", ["warp/dx", "warp/xs"], ["warp/sx"]),
        helper.make_node("Mul", ["warp/sx", step_x], ["warp/gx_1"]),
        helper.make_node("Sub", ["warp/gx_1", "warp/one_f"], ["warp/gx"]),
        helper.make_node("Add", ["warp/dy", "warp/ys"], ["warp/sy"]),
        helper.make_node("Mul", ["warp/sy", step_y], ["warp/gy_1"]),
        helper.make_node("Sub", ["warp/gy_1", "warp/one_f"], ["warp/gy"]),
        helper.make_node("Concat", ["warp/gx", "warp/gy"], ["warp/grid_nchw"], axis=1),
        helper.make_node("Transpose", ["warp/grid_nchw"], ["warp/grid"], perm=[0, 2, 3, 1]),
        helper.make_node(
            "GridSample", [feat32, "warp/grid"], ["warp/sampled"], align_corners=1, mode="bilinear", padding_mode="zeros"
        ),
    ]
    if to_float:
        nodes += [
            helper.make_node("Mul", ["warp/sampled", scale32], ["warp/scaled"]),
            helper.make_node("Cast", ["warp/scaled"], [FEAT], to=ONNX_DTYPES[dtype]),
        ]
    else:
        nodes.append(helper.make_node("Mul", ["warp/sampled", scale32], [FEAT]))
    return nodes, constants


def _model(graph: onnx.GraphProto, opsets: list[onnx.OperatorSetIdProto]) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=opsets, producer_name="dff")
    # The lowest IR version that carries these opsets, as torch.onnx gives the other models: parsers reject newer ones.
    model.ir_version = helper.find_min_ir_version_for([o for o in opsets if o.domain == ""])
    return model


def warp_model(*, opset: int, dtype: str, batch: Dim, channels: int, feat_hw: tuple[Dim, Dim]) -> onnx.ModelProto:
    """``warp.onnx``: W with standard ops (GridSample, align_corners=1, zero padding, times S)."""
    check_opset(opset)
    inputs, outputs = _io(dtype, batch=batch, channels=channels, feat_hw=feat_hw)
    nodes, constants = _warp_nodes(dtype)
    graph = helper.make_graph(nodes, "dff_warp", inputs, outputs, initializer=constants)
    return _model(graph, [helper.make_opsetid("", opset)])


def warp_plugin_model(
    *, opset: int, dtype: str, batch: Dim, channels: int, feat_hw: tuple[Dim, Dim]
) -> onnx.ModelProto:
    """``warp_plugin.onnx``: W as one ``dff::DFFWarp`` node with the attributes TensorRT maps to the plugin."""
    check_opset(opset)
    inputs, outputs = _io(dtype, batch=batch, channels=channels, feat_hw=feat_hw)
    node = helper.make_node(
        PLUGIN_OP,
        [KEY_FEAT, FLOW, SCALE],
        [FEAT],
        name="warp",
        domain=PLUGIN_DOMAIN,
        plugin_version=PLUGIN_VERSION,
        plugin_namespace=PLUGIN_NAMESPACE,
    )
    graph = helper.make_graph([node], "dff_warp_plugin", inputs, outputs)
    return _model(graph, [helper.make_opsetid("", opset), helper.make_opsetid(PLUGIN_DOMAIN, 1)])


def check_opset(opset: int) -> None:
    """Raise ConfigError unless GridSample can be written at ``opset`` in a form TensorRT reads."""
    if not (MIN_OPSET <= opset <= MAX_OPSET):
        raise ConfigError(
            f"opset must be between {MIN_OPSET} and {MAX_OPSET}, got {opset}: GridSample needs opset 16, and from "
            "opset 20 its modes are renamed, which TensorRT's ONNX parser mis-reads (NVIDIA/TensorRT#4646)"
        )
