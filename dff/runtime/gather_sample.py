"""GridSample as row gathers: the warp W for ONNX Runtime's CPU provider, rewritten in memory when a graph is loaded.

ONNX Runtime's CPU GridSample kernel computes every output element on its own (four corner reads with bounds checks,
per channel): on the demo model's 128-channel features it took 7.0 of the 27.4 ms of the non-key path at 512×640, a
quarter of it, for an operation Eq. 6 counts as nearly free. The same bilinear sampling (align_corners=1, zero
padding, as ``warp.onnx`` writes it) is four row reads per output location: the features as (N·Hk·Wk, C) rows, a
Gather of each corner's rows, each weighted (zero for a corner outside the map), their sum. In ONNX
Runtime that is 2.1× faster at 8×8 feature cells and 4.0-4.1× at 20×25 to 45×80, batch 1
(``benchmarks/bench_gather_warp.py``).
OpenVINO's own GridSample is faster than this form, so only the ONNX Runtime backend uses it (``gather_warp``); the
files keep GridSample, the contract every other consumer reads.

Pixel coordinates are computed from the grid as GridSample computes them, x = (g + 1) / 2 · (W − 1), so the samples
are the same up to the order of the four products' sum.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper


def _node_ok(node: onnx.NodeProto) -> bool:
    """Whether ``node`` is a GridSample this rewrite reproduces: bilinear, zero padding, align_corners=1."""
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    mode = attributes.get("mode", b"bilinear")
    return (
        node.op_type == "GridSample"
        and node.domain in ("", "ai.onnx")
        and attributes.get("align_corners", 0) == 1
        and attributes.get("padding_mode", b"zeros") == b"zeros"
        and mode in (b"bilinear", b"linear")
    )


def _gather_nodes(feat: str, grid: str, out: str, p: str, nhwc: str | None = None) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes computing ``out`` = GridSample(``feat`` (N, C, Hk, Wk), ``grid`` (N, H, W, 2)) with row gathers, reading
    the rows from ``nhwc`` (the same features as (N, Hk, Wk, C)) where given; every name they add starts with ``p``."""
    constants = [
        helper.make_tensor(f"{p}zero", TensorProto.INT64, [], [0]),
        helper.make_tensor(f"{p}one", TensorProto.INT64, [], [1]),
        helper.make_tensor(f"{p}two", TensorProto.INT64, [], [2]),
        helper.make_tensor(f"{p}three", TensorProto.INT64, [], [3]),
        helper.make_tensor(f"{p}channel", TensorProto.INT64, [1], [1]),
        helper.make_tensor(f"{p}minus_one", TensorProto.INT64, [1], [-1]),
        helper.make_tensor(f"{p}zero_f", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor(f"{p}half_f", TensorProto.FLOAT, [], [0.5]),
        helper.make_tensor(f"{p}one_f", TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor(f"{p}split", TensorProto.INT64, [2], [1, 1]),
        helper.make_tensor(f"{p}last", TensorProto.INT64, [1], [3]),
        helper.make_tensor(f"{p}batch_shape", TensorProto.INT64, [3], [-1, 1, 1]),
    ]
    n = helper.make_node
    nodes = [
        n("Shape", [feat], [f"{p}shape"]),
        n("Gather", [f"{p}shape", f"{p}zero"], [f"{p}N"], axis=0),
        n("Gather", [f"{p}shape", f"{p}channel"], [f"{p}C"], axis=0),
        n("Gather", [f"{p}shape", f"{p}two"], [f"{p}Hk"], axis=0),
        n("Gather", [f"{p}shape", f"{p}three"], [f"{p}Wk"], axis=0),
        n("Split", [grid, f"{p}split"], [f"{p}gx4", f"{p}gy4"], axis=3),
        n("Squeeze", [f"{p}gx4", f"{p}last"], [f"{p}gx"]),  # (N, H, W)
        n("Squeeze", [f"{p}gy4", f"{p}last"], [f"{p}gy"]),
    ]
    for axis, size in (("x", "Wk"), ("y", "Hk")):
        # x = (g + 1) / 2 · (W − 1), GridSample's own arithmetic for align_corners=1; x0 = ⌊x⌋, x1 = x0 + 1.
        nodes += [
            n("Cast", [f"{p}{size}"], [f"{p}{size}_f"], to=TensorProto.FLOAT),
            n("Sub", [f"{p}{size}_f", f"{p}one_f"], [f"{p}{axis}_last"]),
            n("Add", [f"{p}g{axis}", f"{p}one_f"], [f"{p}{axis}_a"]),
            n("Mul", [f"{p}{axis}_a", f"{p}half_f"], [f"{p}{axis}_b"]),
            n("Mul", [f"{p}{axis}_b", f"{p}{axis}_last"], [f"{p}{axis}"]),
            n("Floor", [f"{p}{axis}"], [f"{p}{axis}0"]),
            n("Add", [f"{p}{axis}0", f"{p}one_f"], [f"{p}{axis}1"]),
            n("Sub", [f"{p}{axis}", f"{p}{axis}0"], [f"{p}{axis}_frac"]),
            n("Sub", [f"{p}one_f", f"{p}{axis}_frac"], [f"{p}{axis}_rest"]),
        ]
        for corner, weight in (("0", "rest"), ("1", "frac")):
            v = f"{p}{axis}{corner}"
            nodes += [
                # A corner outside the map contributes zero (padding_mode="zeros"); its index is clamped to stay valid.
                n("GreaterOrEqual", [v, f"{p}zero_f"], [f"{v}_ge"]),
                n("LessOrEqual", [v, f"{p}{axis}_last"], [f"{v}_le"]),
                n("And", [f"{v}_ge", f"{v}_le"], [f"{v}_in"]),
                n("Cast", [f"{v}_in"], [f"{v}_in_f"], to=TensorProto.FLOAT),
                n("Mul", [f"{p}{axis}_{weight}", f"{v}_in_f"], [f"{v}_w"]),
                n("Clip", [v, f"{p}zero_f", f"{p}{axis}_last"], [f"{v}_c"]),
                n("Cast", [f"{v}_c"], [f"{v}_i"], to=TensorProto.INT64),
            ]
    # The row of (n, y, x) among the (N·Hk·Wk, C) rows: (n·Hk + y)·Wk + x.
    nodes += [
        n("Range", [f"{p}zero", f"{p}N", f"{p}one"], [f"{p}ns"]),
        n("Reshape", [f"{p}ns", f"{p}batch_shape"], [f"{p}ns3"]),
        n("Mul", [f"{p}ns3", f"{p}Hk"], [f"{p}n_rows"]),
    ]
    # The four corners' rows gathered one by one, weighted and added: 0.64-0.89x the time of one Gather of all four,
    # a Mul and a ReduceSum over them (ONNX Runtime reduces a middle axis of 4 slowly; benchmarks/README.md).
    if nhwc is None:
        nodes.append(n("Transpose", [feat], [f"{p}nhwc"], perm=[0, 2, 3, 1]))
    nodes += [
        n("Concat", [f"{p}minus_one", f"{p}C"], [f"{p}rows_shape"], axis=0),
        n("Reshape", [nhwc or f"{p}nhwc", f"{p}rows_shape"], [f"{p}rows"]),  # (N·Hk·Wk, C)
    ]
    terms = []
    for a in "01":
        nodes += [
            n("Add", [f"{p}n_rows", f"{p}y{a}_i"], [f"{p}row{a}"]),
            n("Mul", [f"{p}row{a}", f"{p}Wk"], [f"{p}row{a}_w"]),
        ]
        for b in "01":
            nodes += [
                n("Add", [f"{p}row{a}_w", f"{p}x{b}_i"], [f"{p}i{a}{b}"]),
                n("Mul", [f"{p}y{a}_w", f"{p}x{b}_w"], [f"{p}w{a}{b}"]),
                n("Unsqueeze", [f"{p}w{a}{b}", f"{p}last"], [f"{p}w{a}{b}_c"]),  # (N, H, W, 1)
                n("Gather", [f"{p}rows", f"{p}i{a}{b}"], [f"{p}corner{a}{b}"], axis=0),  # (N, H, W, C)
                n("Mul", [f"{p}corner{a}{b}", f"{p}w{a}{b}_c"], [f"{p}term{a}{b}"]),
            ]
            terms.append(f"{p}term{a}{b}")
    nodes += [
        n("Add", terms[:2], [f"{p}sum2"]),
        n("Add", [f"{p}sum2", terms[2]], [f"{p}sum3"]),
        n("Add", [f"{p}sum3", terms[3]], [f"{p}sampled"]),  # (N, H, W, C)
        n("Transpose", [f"{p}sampled"], [out], perm=[0, 3, 1, 2]),
    ]
    return nodes, constants


def gather_warp(model: onnx.ModelProto, *, nhwc_inputs: bool = False) -> tuple[onnx.ModelProto, int]:
    """A copy of ``model`` with every GridSample of ``warp.onnx``'s kind (bilinear, zero padding, align_corners=1, float
    input) replaced by the row-gather form; and how many were replaced (0: ``model`` itself is returned).

    ``nhwc_inputs``: a GridSample sampling a graph input (``key_feat``) reads its rows from one more input,
    :func:`nhwc_name` of it, the same features as (N, Hk, Wk, C) (:func:`nhwc_graph` computes them), instead of
    transposing them on every call: the key features are the same for every frame propagated from a key frame, so a
    backend transposes them once per key frame (the input itself still gives their shape)."""
    graph = model.graph
    chosen = [i for i, node in enumerate(graph.node) if _node_ok(node)]
    if not chosen:
        return model, 0
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    inputs = {value.name: value for value in graph.input}
    nodes: list[onnx.NodeProto] = []
    for i, node in enumerate(model.graph.node):
        if i not in chosen:
            nodes.append(node)
            continue
        feat = node.input[0]
        nhwc = nhwc_name(feat) if nhwc_inputs and feat in inputs else None
        if nhwc is not None and nhwc not in {value.name for value in rewritten.graph.input}:
            rewritten.graph.input.append(_nhwc_value(inputs[feat], nhwc))
        added, constants = _gather_nodes(feat, node.input[1], node.output[0], f"{node.output[0]}/gather/", nhwc)
        nodes += added
        rewritten.graph.initializer.extend(constants)
    del rewritten.graph.node[:]
    rewritten.graph.node.extend(nodes)
    return rewritten, len(chosen)


def nhwc_name(feat: str) -> str:
    """The input a rewritten graph reads ``feat``'s rows from (``nhwc_inputs``)."""
    return f"{feat}_nhwc"


def _nhwc_value(feat: onnx.ValueInfoProto, name: str) -> onnx.ValueInfoProto:
    tensor = feat.type.tensor_type
    dims = [dim.dim_param or dim.dim_value or None for dim in tensor.shape.dim]
    return helper.make_tensor_value_info(name, tensor.elem_type, [dims[i] for i in (0, 2, 3, 1)] if len(dims) == 4 else None)


def nhwc_graph(feat: str, elem_type: int, opset: int) -> onnx.ModelProto:
    """The graph ``feat`` (N, C, Hk, Wk) → :func:`nhwc_name` of it, (N, Hk, Wk, C): one Transpose."""
    nhwc = nhwc_name(feat)
    graph = helper.make_graph(
        [helper.make_node("Transpose", [feat], [nhwc], perm=[0, 2, 3, 1])],
        "nhwc",
        [helper.make_tensor_value_info(feat, elem_type, ["N", "C", "Hk", "Wk"])],
        [helper.make_tensor_value_info(nhwc, elem_type, ["N", "Hk", "Wk", "C"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model
