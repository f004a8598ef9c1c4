"""F's key-frame half of conv1 computed once per key frame (dff.runtime.key_flow_half): the split graphs give F's and the
task's outputs of the files to float rounding, on the trained demo model (a random F's last heads are zero, so its
outputs would not depend on conv1 at all); the CPU backends use it by default with the same labels, keep one half per
live key frame and let it go with the frame; graphs of another form (int8) run unsplit."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import vtest_frames

from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, MultiStreamRuntime, open_backend
from dff.runtime.key_flow_half import KEY_FLOW_HALF, split_key_half

SIZE = (128, 160)


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("role", ["flow", "propagate"])
@pytest.mark.parametrize("size", [(64, 64), SIZE, (256, 320)])
def test_split_graphs_compute_what_the_file_computes(demo_export: Path, role: str, size: tuple[int, int]) -> None:
    model = onnx.load(demo_export / f"{role}.onnx")
    split = split_key_half(model)
    assert split is not None
    inputs = {value.name for value in split.graph.graph.input}
    assert KEY_FLOW_HALF in inputs and "key_frame" not in inputs and [v.name for v in split.key_half.graph.input] == ["key_frame"]
    assert "Concat" not in {node.op_type for node in split.graph.graph.node[:12]}  # the frames are no longer concatenated
    key, frame = (f[None] for f in vtest_frames(2, size, start=30))
    feeds = {"key_frame": key, "frame": frame}
    if role == "propagate":
        feeds["key_feat"] = _session(onnx.load(demo_export / "feature.onnx")).run(None, {"frame": key})[0]
    half = _session(split.key_half).run(None, {"key_frame": key})[0]
    assert half.shape == (1, split.spec.shape[1], size[0] // 4, size[1] // 4)
    split_feeds = {name: value for name, value in feeds.items() if name != "key_frame"} | {KEY_FLOW_HALF: half}
    names = [output.name for output in model.graph.output]
    want = dict(zip(names, _session(model).run(None, feeds)))
    got = dict(zip(names, _session(split.graph).run(names, split_feeds)))
    for name in names:
        if want[name].dtype == np.uint8:  # labels: float rounding may flip a near-tie
            assert np.mean(want[name] == got[name]) >= 0.9999, name
        else:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5 * np.abs(want[name]).max(), err_msg=name)
    if role == "flow":
        assert np.abs(want["flow"]).max() > 0.05  # a trained F: its flow depends on both frames' halves


def test_graphs_of_another_form_are_not_split(demo_export: Path) -> None:
    assert split_key_half(onnx.load(demo_export / "feature.onnx")) is None  # no key frame
    model = onnx.load(demo_export / "flow.onnx")
    # The key frame read elsewhere too (here: one more output of its cast): the split would drop that use.
    cast = next(node for node in model.graph.node if list(node.input) == ["key_frame"])
    model.graph.output.append(onnx.helper.make_tensor_value_info(cast.output[0], onnx.TensorProto.FLOAT, None))
    assert split_key_half(model) is None


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_give_the_same_labels_and_drop_halves_with_their_key_frames(demo_export: Path, backend: str) -> None:
    frames = vtest_frames(11, SIZE, start=40)
    labels = {}
    for split in (None, False):
        with open_backend(backend, model=demo_export, key_flow_half=split) as engine:
            assert engine.key_flow_half == (split is None)  # on by default on the CPU
            runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(4))
            labels[split] = [runtime(frame).labels for frame in frames]
            if split is None:
                assert len(engine._key_halves) == 1  # the live key frame's, frames 8-10 propagated from it
                del runtime
                gc.collect()
                # ONNX Runtime lets it go at once; an OpenVINO infer request holds its last input until the next run.
                assert len(engine._key_halves) <= (0 if backend == "onnxruntime" else 1)
    assert all(np.mean(a == b) >= 0.9999 for a, b in zip(labels[None], labels[False], strict=True))


def test_streams_compute_their_key_halves_in_one_batch(demo_export: Path) -> None:
    streams = [vtest_frames(6, SIZE, start=start) for start in (0, 200, 400)]
    with open_backend("onnxruntime", model=demo_export) as engine:
        assert engine.key_flow_half
        compute, batches = engine._key_halves._compute, []
        engine._key_halves._compute = lambda frames: batches.append(len(frames)) or compute(frames)
        together = MultiStreamRuntime(backend=engine, schedulers=[FixedInterval(3) for _ in streams])
        ticks = [together(dict(enumerate(stream[t] for stream in streams))) for t in range(6)]
        assert batches == [3, 3]  # key frames at ticks 0 and 3: each set's halves in one call, on the tick after
        alone = []
        for stream in streams:
            runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(3))
            alone.append([runtime(frame).labels for frame in stream])
    for s in range(len(streams)):
        assert all(np.mean(ticks[t][s].labels == alone[s][t]) >= 0.9999 for t in range(6))
