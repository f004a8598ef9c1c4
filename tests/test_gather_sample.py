"""GridSample as row gathers (dff.runtime.gather_sample): the same samples as ONNX Runtime's GridSample on warp.onnx and
propagate.onnx, zero padding outside the map included, and the ONNX Runtime backend's labels unchanged by it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import vtest_frames

from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.gather_sample import gather_warp


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("size", [(64, 64), (128, 160)])
def test_gathers_sample_what_grid_sample_samples(tiny_export: Path, size: tuple[int, int]) -> None:
    warp = onnx.load(tiny_export / "warp.onnx")
    rewritten, count = gather_warp(warp)
    onnx.checker.check_model(rewritten, full_check=True)
    assert count == 1 and "GridSample" not in {n.op_type for n in rewritten.graph.node}
    rng = np.random.default_rng(0)
    channels = warp.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    h, w = size[0] // 16, size[1] // 16
    feeds = {
        "key_feat": rng.standard_normal((3, channels, h, w)).astype(np.float32),
        # Flows of several cells: many samples fall partly or wholly outside the map (zero padding).
        "flow": (rng.standard_normal((3, 2, h, w)) * 3).astype(np.float32),
        "scale": rng.uniform(0.5, 1.5, (3, channels, h, w)).astype(np.float32),
    }
    want, got = _session(warp).run(None, feeds)[0], _session(rewritten).run(None, feeds)[0]
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()
    assert np.count_nonzero(want == 0) > 0  # some locations read nothing but padding: the zeros were tested


def test_propagate_graph_rewritten_gives_the_same_outputs(tiny_export: Path) -> None:
    model = onnx.load(tiny_export / "propagate.onnx")
    rewritten, count = gather_warp(model)
    assert count == 1
    key, frame = (f[None] for f in vtest_frames(2, (128, 160), start=20))
    feat = _session(onnx.load(tiny_export / "feature.onnx")).run(None, {"frame": key})[0]
    feeds = {"key_frame": key, "frame": frame, "key_feat": feat}
    for want, got in zip(_session(model).run(None, feeds), _session(rewritten).run(None, feeds), strict=True):
        if want.dtype == np.uint8:
            assert np.mean(want == got) >= 0.999  # labels: float rounding may flip a tie
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    assert gather_warp(onnx.load(tiny_export / "task.onnx"))[1] == 0  # nothing to rewrite: the model itself


def test_backend_labels_with_and_without_gathers(tiny_export: Path) -> None:
    frames = vtest_frames(7, (128, 160), start=20)
    labels = {}
    for gather in (True, False):
        with open_backend("onnxruntime", model=tiny_export, gather_warp=gather) as engine:
            assert engine.gather_warp == gather
            runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(3))
            labels[gather] = [runtime(frame).labels for frame in frames]
    assert all(np.mean(a == b) >= 0.999 for a, b in zip(labels[True], labels[False]))
