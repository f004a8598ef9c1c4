"""O(·) of Eq. 5-6 in multiply-accumulates (MACs), counted from what a backend runs, and the FLOP r of Eq. 6.

Two sources, one rule. An export directory is counted from its ONNX graphs without torch: the
graph inputs' named dimensions (N, H, W, H/16, W/16) are set to the benchmark's frame size, ONNX
shape inference gives every Conv its output size and every ConvTranspose its input size, and the
MACs follow from those and the weight's shape. A checkpoint (the ``torch`` backend's model) is
counted by :func:`dff.flops.count_macs` on its modules, built on the ``meta`` device. Both count
exactly the layers :mod:`dff.flops` counts (Conv, ConvTranspose, Linear/Gemm; nothing else), so
they agree to the MAC on one model; the convolution that halves F's frames is preprocessing and not counted
(:mod:`dff.frame_halving_layers`). The warp W has no weight layer: O(W) counts as 0.

Only batch and spatial sizes are read from shape inference, never channels: channel counts come
from the weights. (ONNX cannot infer the channels behind FlowNet's crops, Slices whose ends are
read from another tensor's shape at run time; their spatial sizes it can.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dff.errors import ExportError
from dff.frame_halving_layers import frame_halving_layers
from dff.manifest import MANIFEST_NAME, load_manifest

if TYPE_CHECKING:
    import onnx


@dataclass(frozen=True)
class NetworkMACs:
    """MACs per frame of N_feat, F and N_task (batch 1) at one frame size, and what they were counted from."""

    feature: int
    flow: int
    task: int
    counted_from: str

    @property
    def r_flops(self) -> float:
        """Eq. 6: r ≈ O(F) / O(N_feat)."""
        return self.flow / self.feature

    @property
    def r_flops_eq5(self) -> float:
        """Eq. 5 with FLOPs: (O(F) + O(W) + O(N_task)) / (O(N_feat) + O(N_task)), O(W) = 0 (no weight layer)."""
        return (self.flow + self.task) / (self.feature + self.task)


def dimension_values(height: int, width: int, stride: int) -> dict[str, int]:
    """The manifest's named dimensions at batch 1, frame size ``height`` × ``width`` and feature stride ``stride``."""
    return {"N": 1, "H": height, "W": width, f"H/{stride}": height // stride, f"W/{stride}": width // stride}


def onnx_graph_macs(path: str | Path | onnx.ModelProto, dimensions: dict[str, int]) -> int:
    """MACs of one pass of the ONNX graph at ``path`` (or a model in memory) with its inputs' named dimensions set from
    ``dimensions``."""
    import numpy as np
    import onnx

    model = onnx.load(str(path)) if not isinstance(path, onnx.ModelProto) else onnx.ModelProto.FromString(path.SerializeToString())
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                if dim.dim_param not in dimensions:
                    raise ExportError(f"{path}: input {value.name} has dimension {dim.dim_param!r}, known: {sorted(dimensions)}")
                dim.dim_value = dimensions[dim.dim_param]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    shapes = {
        value.name: [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        for value in (*model.graph.value_info, *model.graph.input, *model.graph.output)
    }
    weights = {tensor.name: tuple(tensor.dims) for tensor in model.graph.initializer}
    weights.update({node.output[0]: tuple(node.attribute[0].t.dims) for node in model.graph.node if node.op_type == "Constant"})
    # An int8 export's weights are int8 constants dequantized in the graph (dff quantize): the same shapes, the same MACs.
    weights.update(
        {node.output[0]: weights[node.input[0]] for node in model.graph.node if node.op_type == "DequantizeLinear" and node.input[0] in weights}
    )
    preprocessing = set(frame_halving_layers(model))  # F's frame halving: no network's layer (dff.flops counts none)
    total = 0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm") or node.name in preprocessing:
            continue
        if node.input[1] not in weights:
            raise ExportError(f"{path}: the weight of {node.op_type} node {node.name!r} is computed in the graph; cannot count it")
        weight = weights[node.input[1]]
        # Conv: every output pixel costs C_out·(C_in/g)·k² = prod(weight); ConvTranspose: every input pixel costs
        # C_in·(C_out/g)·k² = prod(weight) (as dff.flops.layer_macs); Gemm: every output costs K.
        if node.op_type == "Gemm":
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            sized, per_element = node.output[0], weight[1] if trans_b else weight[0]
            pixels = shapes.get(sized)
        else:
            sized = node.output[0] if node.op_type == "Conv" else node.input[0]
            shape = shapes.get(sized)
            pixels = None if shape is None else [shape[0], *shape[2:]]
            per_element = math.prod(weight)
        if pixels is None or None in pixels:
            raise ExportError(f"{path}: ONNX shape inference left the size of {sized!r} ({node.op_type} {node.name!r}) unknown")
        total += int(np.prod(pixels, dtype=np.int64)) * int(per_element)
    return total


def export_macs(directory: str | Path, *, height: int, width: int) -> NetworkMACs:
    """MACs of the feature, flow and task graphs of an export directory at ``height`` × ``width`` frames."""
    manifest = load_manifest(directory, verify=False)
    manifest.sizes.check(height, width)
    files = manifest.files()
    dimensions = dimension_values(height, width, manifest.feature_stride)
    feature, flow, task = (onnx_graph_macs(Path(directory) / files[role].file, dimensions) for role in ("feature", "flow", "task"))
    return NetworkMACs(feature=feature, flow=flow, task=task, counted_from="ONNX graphs")


def checkpoint_macs(path: str | Path, *, height: int, width: int) -> NetworkMACs:
    """MACs of a checkpoint's N_feat, F and N_task at ``height`` × ``width`` frames, counted on the meta device."""
    import torch

    from dff.checkpoint import read_checkpoint
    from dff.flops import count_macs
    from dff.models import build_model

    config = read_checkpoint(path).config
    frame = torch.empty(1, 3, height, width, device="meta")
    with torch.device("meta"):
        model = build_model(config)
        feat = torch.empty(1, config.channels, height // config.output_stride, width // config.output_stride)
        return NetworkMACs(
            feature=count_macs(model.feature_net, frame).total,
            flow=count_macs(model.flow_net, frame, frame).total,
            task=count_macs(model.task_net, feat).total,
            counted_from="PyTorch modules",
        )


def model_macs(model: str | Path, *, height: int, width: int) -> NetworkMACs:
    """MACs of what a backend loads from ``model``: an export directory's graphs, or a checkpoint file's modules."""
    model = Path(model)
    if (model / MANIFEST_NAME).is_file():
        return export_macs(model, height=height, width=width)
    if model.is_file():
        return checkpoint_macs(model, height=height, width=width)
    raise ExportError(f"{model} is neither an export directory (no {MANIFEST_NAME}) nor a checkpoint file")
