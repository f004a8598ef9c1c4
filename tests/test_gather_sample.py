"""GridSample as row gathers (dff.runtime.gather_sample): the same samples as ONNX Runtime's GridSample on warp.onnx and
propagate.onnx, zero padding outside the map included, and the ONNX Runtime backend's labels unchanged by it."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import vtest_frames

from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.gather_sample import gather_warp, nhwc_graph, nhwc_name


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


def test_graphs_reading_the_rows_give_the_same_outputs(tiny_export: Path) -> None:
    """With ``nhwc_inputs`` the key features' rows come in transposed once (nhwc_graph): outputs bit for bit those of
    the graph transposing them itself, for the warp and the fused graph, at batch 1 and 3."""
    rng = np.random.default_rng(1)
    feature = _session(onnx.load(tiny_export / "feature.onnx"))
    for role in ("warp", "propagate"):
        model = onnx.load(tiny_export / f"{role}.onnx")
        inline, reading = gather_warp(model)[0], gather_warp(model, nhwc_inputs=True)[0]
        onnx.checker.check_model(reading, full_check=True)
        assert nhwc_name("key_feat") in {i.name for i in reading.graph.input}
        assert "Transpose" not in {n.op_type for n in reading.graph.node if "key_feat" in n.input}
        for batch in (1, 3):
            frames = rng.integers(0, 256, (2, batch, 128, 160, 3), dtype=np.uint8)
            feat = feature.run(None, {"frame": frames[0]})[0]
            channels, h, w = feat.shape[1:]
            feeds = (
                {"key_feat": feat, "flow": (rng.standard_normal((batch, 2, h, w)) * 3).astype(np.float32),
                 "scale": rng.uniform(0.5, 1.5, (batch, channels, h, w)).astype(np.float32)}
                if role == "warp" else {"key_frame": frames[0], "frame": frames[1], "key_feat": feat}
            )
            nhwc = _session(nhwc_graph("key_feat", onnx.TensorProto.FLOAT, 17)).run(None, {"key_feat": feat})[0]
            np.testing.assert_array_equal(nhwc, feat.transpose(0, 2, 3, 1))
            for want, got in zip(_session(inline).run(None, feeds), _session(reading).run(None, {**feeds, nhwc_name("key_feat"): nhwc}), strict=True):
                np.testing.assert_array_equal(got, want)


def test_backend_transposes_key_features_once_per_key_frame(tiny_export: Path) -> None:
    frames = vtest_frames(8, (128, 160), start=20)
    with open_backend("onnxruntime", model=tiny_export) as engine:
        assert engine._reads_nhwc == {"warp", "propagate"}
        compute, calls = engine._key_nhwc._compute, []
        engine._key_nhwc._compute = lambda feats: calls.append(len(feats)) or compute(feats)
        runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(4))
        for frame in frames:
            runtime(frame)
        assert calls == [1, 1]  # key frames 0 and 4, each transposed on its first propagated frame
        assert len(engine._key_nhwc) == 1  # the live key features' rows only
        del runtime
        gc.collect()
        assert len(engine._key_nhwc) == 0  # gone with the runtime's key features
