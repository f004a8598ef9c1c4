"""N_task's tail on the host: the per-pixel labels from the class probabilities on the feature grid, computed sparsely.

``task.onnx`` ends by upsampling the softmax probabilities ×16 bilinearly (half-pixel centres, edges clamped, as
``F.interpolate(align_corners=False)``) and taking the first maximum per pixel. On small models at CPU frame sizes
that tail costs more than F (the Resize and ArgMax at frame size: 8.7 of 27.4 ms of the demo model's non-key
path at 512×640 in ONNX Runtime). :func:`labels_from_probs` gives the same labels at a fraction of the cost:

* Bilinear interpolation is a convex combination of the 4 probability vectors around a pixel. If the first maximum
  of all 4 is class c, then c's probability is at least every other class's at each of them, strictly for the classes
  before c, so the same holds for any convex combination: every pixel of that quad has label c, ties included.
  Those quads are constant blocks of labels.
* Only the quads whose 4 corners disagree are interpolated, with the engine's weights ((1 - ty)(1 - tx), ...: products
  of odd multiples of 1/32, exact in float32) in the engine's order of terms, and their pixels arg-maxed.

So the labels are those of the graph exactly but for pixels where two classes' interpolated probabilities are within
float rounding (a different order of the four products, or an engine's own interpolation): ``dff check`` and
``tests/test_label_tail.py`` count them. With a ×16 stride the output pixels of a quad form one 16×16 block, offset
by half a block from the frame's corner (half-pixel centres); the border half-blocks interpolate along the border
only, as the engines' clamping does.

The backends that run it (ONNX Runtime's and OpenVINO's CPU paths, ``label_tail="host"``) load ``task.onnx`` and the
fused graphs cut before the tail, ending at their ``probs`` output (:func:`graph_before_tail`; every segmentation export
has it): the engines compute no frame-size tensor, and the labels come from ``download``. The files themselves keep
the labels output, the contract TensorRT and every other consumer reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx

from dff.errors import ConfigError
from dff.frames import FEATURE_STRIDE
from dff.manifest import LABELS, PROBS, Manifest
from dff.runtime.onnx_subgraph import subgraph

#: Where a backend computes the labels: from the probabilities on the host, or the graph's own.
LabelTail = Literal["graph", "host"]


def first_max(values: np.ndarray) -> np.ndarray:
    """uint8 index of the first maximum along axis 0 of (C, n) ``values`` (as ArgMax; C comparisons of contiguous
    rows; numpy's argmax over a leading axis took 9 ms for 4 × 244 000 values, 6-7× longer per value). The index is
    written through ``copyto(where=)``: a boolean-mask assignment took 1.8× as long (0.72 against 0.41 ms for
    4 × 110 000 values)."""
    best = values[0].copy()
    index = np.zeros(values.shape[1:], np.uint8)
    greater = np.empty(values.shape[1:], bool)
    for c in range(1, len(values)):
        np.greater(values[c], best, out=greater)
        np.copyto(index, np.uint8(c), where=greater)
        np.maximum(best, values[c], out=best)
    return index


def _weights(stride: int) -> np.ndarray:
    """(4, 2, 2, stride²) float32: the bilinear weights of the 4 corners (r0 c0, r0 c1, r1 c0, r1 c1) for each pixel
    of a quad, for [row on the border][column on the border] (a border direction takes its first corner only)."""
    t = (np.arange(stride, dtype=np.float64) + 0.5) / stride
    inner, border = np.stack([1 - t, t]), np.stack([np.ones(stride), np.zeros(stride)])
    table = np.empty((4, 2, 2, stride * stride), np.float32)
    for a, rows in enumerate((inner, border)):
        for b, cols in enumerate((inner, border)):
            table[:, a, b] = (rows[:, None, :, None] * cols[None, :, None, :]).reshape(4, -1)
    return table


_WEIGHTS = {FEATURE_STRIDE: _weights(FEATURE_STRIDE)}


def labels_from_probs(probs: np.ndarray, stride: int = FEATURE_STRIDE) -> np.ndarray:
    """uint8 (h·stride, w·stride) labels of float32 (C, h, w) class probabilities: the first maximum of their bilinear
    ×``stride`` upsampling (half-pixel centres, clamped edges), as ``task.onnx`` computes them. ``stride``: even."""
    if not (probs.ndim == 3 and probs.shape[0] >= 1 and stride >= 2 and stride % 2 == 0):
        raise ValueError(f"need (C, h, w) probabilities and an even stride, got shape {probs.shape} and stride {stride}")
    if stride not in _WEIGHTS:
        _WEIGHTS[stride] = _weights(stride)
    classes, h, w = probs.shape
    # Quad (i, j) lies between grid rows i - 1 and i and columns j - 1 and j, clamped: (h + 1) × (w + 1) quads.
    rows, cols = np.clip(np.arange(-1, h + 1), 0, h - 1), np.clip(np.arange(-1, w + 1), 0, w - 1)
    grid = first_max(probs.reshape(classes, -1)).reshape(h, w)[rows][:, cols]
    corner = grid[:-1, :-1]
    mixed = (corner != grid[1:, :-1]) | (corner != grid[:-1, 1:]) | (corner != grid[1:, 1:])
    # Every quad's block filled with its first corner's label (a row of blocks, then broadcast down the block).
    blocks = np.empty((h + 1, stride, w + 1, stride), np.uint8)
    blocks.reshape(h + 1, stride, -1)[...] = np.repeat(corner, stride, axis=1)[:, None, :]
    i, j = np.nonzero(mixed)
    if len(i):
        r0, r1, c0, c1 = rows[i], rows[i + 1], cols[j], cols[j + 1]
        weights = _WEIGHTS[stride][:, ((i == 0) | (i == h)).astype(np.intp), ((j == 0) | (j == w)).astype(np.intp)]
        corners = np.stack([probs[:, r0, c0], probs[:, r0, c1], probs[:, r1, c0], probs[:, r1, c1]], axis=-1)  # (C, K, 4)
        # w00·p00 + w01·p01 + w10·p10 + w11·p11, the engines' order of terms (einsum sums them in that order).
        values = np.einsum("ckq,qkp->ckp", corners, weights)  # (C, K, stride²)
        blocks[i, :, j, :] = first_max(values.reshape(classes, -1)).reshape(len(i), stride, stride)
    half = stride // 2
    return np.ascontiguousarray(blocks.reshape((h + 1) * stride, (w + 1) * stride)[half : half + h * stride, half : half + w * stride])


def host_tail_possible(manifest: Manifest) -> bool:
    """Whether the export's task graph has what :func:`labels_from_probs` reads: float32 ``probs`` beside its labels."""
    outputs = {spec.name: spec for spec in manifest.models.task.outputs}
    return manifest.task == "segmentation" and LABELS in outputs and PROBS in outputs and outputs[PROBS].dtype == "float32"


def choose_label_tail(requested: LabelTail | None, manifest: Manifest, directory: Path, *, on_cpu: bool) -> LabelTail:
    """A backend's ``label_tail`` option resolved: ``requested`` if the export allows it, else by default ``host``
    on a CPU for the exports that have what it reads (a GPU computes the tail faster than the host)."""
    if requested not in (None, "graph", "host"):
        raise ConfigError(f"label_tail must be 'graph' or 'host', got {requested!r}")
    if requested == "host" and not host_tail_possible(manifest):
        raise ConfigError(
            f"label_tail=host needs a segmentation export whose task graph outputs float32 probs; {directory} has none "
            "(a detection or float16 export?): use label_tail=graph"
        )
    return requested or ("host" if on_cpu and host_tail_possible(manifest) else "graph")


def host_tail_outputs(outputs: Sequence[str]) -> tuple[str, ...]:
    """A graph's outputs with the labels replaced by the probabilities they are computed from."""
    return tuple(PROBS if name == LABELS else name for name in outputs)


def graph_before_tail(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` (a task graph or a fused graph) with ``labels`` replaced by ``probs`` among its outputs and the nodes
    that only the labels needed (the frame-size Resize, Transpose, ArgMax, Cast) removed."""
    graph = model.graph
    values = {value.name: value for value in [*graph.output, *graph.value_info]}
    return subgraph(model, [values[name] for name in dict.fromkeys(host_tail_outputs([output.name for output in graph.output]))])
