"""``onnx.reference.ReferenceEvaluator``: ONNX's own NumPy implementation of every operator, slow but literal.

Two additions, both as ``new_ops``:

* GridSample: onnx's implementation reads only the opset-20 spelling of the interpolation modes
  ("linear", "cubic"), whatever the model's opset; ours are written in the opset 16-19 spelling
  ("bilinear"), which names the same interpolation. The subclass translates the name and
  changes nothing else.
* ``dff::DFFWarp``: the plugin node, computed here directly from Eq. (1)-(2) (four bilinear taps
  per sample, zero outside the map), so the plugin file runs as it is, by an implementation
  that shares no code with the GridSample form.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_grid_sample import GridSample as OnnxGridSample

from dff.export.runners import output_names
from dff.export.warp_graph import PLUGIN_DOMAIN, PLUGIN_NAMESPACE, PLUGIN_OP, PLUGIN_VERSION

#: Opset 16-19 mode names → the names onnx.reference implements (opset 20's).
_MODES = {"bilinear": "linear", "bicubic": "cubic"}


class GridSample(OnnxGridSample):
    op_domain = ""

    def _run(self, X, grid, mode=None, padding_mode=None, align_corners=None):  # noqa: N803 - ONNX's input names
        return super()._run(X, grid, mode=_MODES.get(mode, mode), padding_mode=padding_mode, align_corners=align_corners)


class DFFWarp(OpRun):
    """out = S · Σ_q G(q, p + δp) f_k(q) with G(q, s) = max(0, 1 - |q_x - s_x|) · max(0, 1 - |q_y - s_y|)."""

    op_domain = PLUGIN_DOMAIN

    def _run(self, key_feat, flow, scale, plugin_version=None, plugin_namespace=None):
        if not (plugin_version == PLUGIN_VERSION and plugin_namespace == PLUGIN_NAMESPACE):
            raise ValueError(
                f"{PLUGIN_OP} expects plugin_version={PLUGIN_VERSION!r}, plugin_namespace={PLUGIN_NAMESPACE!r}; "
                f"got {plugin_version!r}, {plugin_namespace!r}"
            )
        feat = key_feat.astype(np.float64)
        n, _, height, width = feat.shape
        out_h, out_w = flow.shape[2:]
        # Sample positions p + δp in cells; a one-cell axis samples its only cell (dff.ops.warp's convention).
        sx = np.arange(out_w) + flow[:, 0].astype(np.float64) if width > 1 else np.zeros((n, out_h, out_w))
        sy = np.arange(out_h)[:, None] + flow[:, 1].astype(np.float64) if height > 1 else np.zeros((n, out_h, out_w))
        x0, y0 = np.floor(sx), np.floor(sy)
        batch = np.arange(n)[:, None, None]
        out = np.zeros((n, out_h, out_w, feat.shape[1]))
        for qy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
            for qx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                inside = (qx >= 0) & (qx < width) & (qy >= 0) & (qy < height)
                values = feat[batch, :, np.clip(qy, 0, height - 1).astype(int), np.clip(qx, 0, width - 1).astype(int)]
                out += np.where(inside, wy * wx, 0.0)[..., None] * values
        return ((out.transpose(0, 3, 1, 2) * scale).astype(key_feat.dtype),)


class ReferenceRunner:
    runs_plugin = True

    def __init__(self, model: onnx.ModelProto) -> None:
        self._evaluator = ReferenceEvaluator(model, new_ops=[GridSample, DFFWarp])
        self._outputs = output_names(model)

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._evaluator.run(self._outputs, dict(feeds))))


RUNNER = ReferenceRunner
