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
* Most of those lie on a boundary between two confident classes a and b, where no third class can win anywhere in the
  quad (:func:`_two_class_quads` bounds them): there only the sign of the interpolated p_b - p_a is computed, one
  matrix product per border case, whatever the number of classes (0.79x the time of interpolating all of them on
  the demo model's 4 classes, 0.28x at 11 and 0.20x at 19, ``benchmarks/bench_label_tail.py``).

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


#: Margin below which a class is kept as a possible winner: far above float32 rounding of probabilities up to 1.
_MARGIN = 1e-5


def _two_class_quads(corners: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whether only two classes a < b can be the first maximum anywhere in each mixed quad (bool, K), and those a and b
    (meaningful where it holds). ``corners``: (C, K, 4) probabilities, ``labels``: (K, 4) their first maxima.

    Interpolation is a convex combination, so a class reaches at most its largest corner value; where the corners'
    winners are a and b alone, one of them reaches at least half their smallest corner sum, and each of a and b has a
    corner value at least that high. So where exactly two classes have a largest corner value above that bound less
    a margin of rounding, every other class is beaten everywhere in the quad. Quads on a boundary of two confident
    classes qualify: 215 of 221 mixed quads on a vtest.avi frame of the demo model."""
    # Minima and maxima of 4 as three elementwise operations: numpy's reductions over an axis of 4 cost 3-5x that.
    l0, l1, l2, l3 = labels.T
    a, b = np.minimum(np.minimum(l0, l1), np.minimum(l2, l3)), np.maximum(np.maximum(l0, l1), np.maximum(l2, l3))
    quads = np.arange(len(labels))
    s0, s1, s2, s3 = (corners[a, quads] + corners[b, quads]).T
    bound = np.minimum(np.minimum(s0, s1), np.minimum(s2, s3)) / 2 - _MARGIN
    # Two distinct labels among the four: each is a or b.
    only = ((labels == a[:, None]) | (labels == b[:, None])).all(axis=1)
    q0, q1, q2, q3 = np.moveaxis(corners, 2, 0)
    largest = np.maximum(np.maximum(q0, q1), np.maximum(q2, q3))  # (C, K)
    return only & (np.count_nonzero(largest >= bound, axis=0) == 2), a, b


def labels_from_probs(probs: np.ndarray, stride: int = FEATURE_STRIDE, *, two_class: bool = True) -> np.ndarray:
    """uint8 (h·stride, w·stride) labels of float32 (C, h, w) class probabilities: the first maximum of their bilinear
    ×``stride`` upsampling (half-pixel centres, clamped edges), as ``task.onnx`` computes them. ``stride``: even.
    ``two_class=False`` interpolates every class in every mixed quad (the same labels, slower: for comparisons)."""
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
        table, row_border, col_border = _WEIGHTS[stride], ((i == 0) | (i == h)).astype(np.intp), ((j == 0) | (j == w)).astype(np.intp)
        corners = np.stack([probs[:, r0, c0], probs[:, r0, c1], probs[:, r1, c0], probs[:, r1, c1]], axis=-1)  # (C, K, 4)
        labels = np.stack([grid[i, j], grid[i, j + 1], grid[i + 1, j], grid[i + 1, j + 1]], axis=-1)  # (K, 4)
        two, a, b = _two_class_quads(corners, labels) if two_class else (np.zeros(len(i), bool), None, None)
        pairs, rest = np.nonzero(two)[0], np.nonzero(~two)[0]
        if len(pairs):
            # Only a or b can win: b where its interpolation exceeds a's, i.e. where that of p_b - p_a is positive
            # (rounded otherwise than the engine's two sums: a pixel may differ only where they are a float tie).
            a, b, diff = a[pairs], b[pairs], corners[b[pairs], pairs] - corners[a[pairs], pairs]  # (K2, 4)
            above = np.empty((len(pairs), stride * stride), bool)
            border = row_border[pairs] * 2 + col_border[pairs]
            for case in np.unique(border):  # a matrix product per border case: its weights (4, stride²)
                chosen = border == case
                above[chosen] = diff[chosen] @ table[:, case // 2, case % 2] > 0
            blocks[i[pairs], :, j[pairs], :] = np.where(above, b[:, None], a[:, None]).reshape(-1, stride, stride)
        if len(rest):
            # w00·p00 + w01·p01 + w10·p10 + w11·p11, the engines' order of terms (einsum sums them in that order).
            values = np.einsum("ckq,qkp->ckp", corners[:, rest], table[:, row_border[rest], col_border[rest]])  # (C, K, stride²)
            blocks[i[rest], :, j[rest], :] = first_max(values.reshape(classes, -1)).reshape(len(rest), stride, stride)
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
