"""The cheaper graphs of issue 19, on the shipped demo model in ONNX Runtime and OpenVINO: the task graph's ArgMax over
NHWC (same labels), the flow graph's normalisation after F's 2x2 halving, the BGR -> RGB reorder folded into the first
convolutions and the decoder's crops once per level, none at a fixed size that needs none (same outputs to float32
rounding)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
import torch
import torch.nn.functional as F

from dff.checkpoint import load_checkpoint
from dff.commands.demo import DEMO_MODEL
from dff.export import ExportOptions, export_checkpoint
from dff.frame_halving_layers import frame_halving_layers
from dff.frames import FEATURE_STRIDE
from dff.models.preprocess import FrameNormalizer
from tests.helpers import vtest_frames

SIZE = (128, 160)



def _engines(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """Every output of ``path`` on ``feeds``, in ONNX Runtime and in OpenVINO (f32)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    model = ov.Core().read_model(str(path))
    model.reshape({name: value.shape for name, value in feeds.items()})
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": ov.Type.f32})
    result = compiled(feeds)
    return {"onnxruntime": session.run(None, feeds), "openvino": [result[o] for o in compiled.outputs]}


def test_task_labels_equal_the_nchw_argmax(demo_export: Path) -> None:
    model, config = load_checkpoint(DEMO_MODEL)
    argmax = [n for n in onnx.load(demo_export / "task.onnx").graph.node if n.op_type == "ArgMax"]
    assert [a.i for n in argmax for a in n.attribute if a.name == "axis"] == [3]  # the innermost (contiguous) axis
    rng = np.random.default_rng(0)
    feat = np.abs(rng.standard_normal((2, config.channels, SIZE[0] // FEATURE_STRIDE, SIZE[1] // FEATURE_STRIDE))).astype(np.float32)
    with torch.no_grad():
        probs = model.task_net(torch.from_numpy(feat)).softmax(dim=1)
        expected = F.interpolate(probs, scale_factor=FEATURE_STRIDE, mode="bilinear", align_corners=False).argmax(dim=1)
    for engine, outputs in _engines(demo_export / "task.onnx", {"feat": feat}).items():
        labels = outputs[2]
        assert labels.dtype == np.uint8 and labels.shape == (2, *SIZE)  # the export's contract: uint8 labels
        assert np.array_equal(labels, expected.numpy()), engine


def test_flow_halving_and_normalising_in_one_convolution_equals_normalised_before(demo_export: Path) -> None:
    model, config = load_checkpoint(DEMO_MODEL)
    key, current = (frame[None] for frame in vtest_frames(2, SIZE, start=40))
    normalize = FrameNormalizer(mean=config.mean, std=config.std, layout="nhwc_bgr")
    with torch.no_grad():  # the published order: normalise both frames, then F (which halves them)
        expected = model.flow_net(*(normalize(torch.from_numpy(f).float()) for f in (key, current)))
    flow = onnx.load(demo_export / "flow.onnx")
    graph = flow.graph
    weights = {i.name: i.dims for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # Each frame pooled and normalised by one convolution reading the frame as one channel, no copy transposed to NCHW
    assert [weights[n.input[1]] for n in convs[:2]] == [[3, 1, 2, 6]] * 2 and weights[convs[2].input[1]][1] == 6
    assert frame_halving_layers(flow) == [n.name for n in convs[:2]]  # what the quantizer and the MAC count leave out
    before_f = [n.op_type for n in graph.node[: list(graph.node).index(convs[2])]]
    assert not {"Transpose", "AveragePool", "Sub", "Mul"} & set(before_f), before_f
    for engine, outputs in _engines(demo_export / "flow.onnx", {"key_frame": key, "frame": current}).items():
        for got, want in zip(outputs, expected):
            want = want.numpy()
            assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), engine


def test_feature_graph_reads_bgr_without_a_flip(demo_export: Path) -> None:
    model, config = load_checkpoint(DEMO_MODEL)
    (frame,) = (f[None] for f in vtest_frames(1, SIZE, start=40))
    normalize = FrameNormalizer(mean=config.mean, std=config.std, layout="nhwc_bgr")
    with torch.no_grad():  # the published order: BGR -> RGB, normalise, N_feat
        expected = model.feature_net(normalize(torch.from_numpy(frame).float())).numpy()
    assert "Slice" not in {n.op_type for n in onnx.load(demo_export / "feature.onnx").graph.node}
    for engine, (feat,) in _engines(demo_export / "feature.onnx", {"frame": frame}).items():
        assert np.abs(feat - expected).max() <= 1e-5 * np.abs(expected).max(), engine


def test_fixed_size_flow_graph_has_no_crops_and_equal_outputs(demo_export: Path, tmp_path: Path) -> None:
    # 128x256 needs no crop (every skip of the decoder is even); 128x160 does (the export above crops at run time).
    size = (128, 256)
    fixed = tmp_path / "fixed"
    export_checkpoint(DEMO_MODEL, fixed, ExportOptions(height=size[0], width=size[1]))
    nodes = {n.op_type for n in onnx.load(fixed / "flow.onnx").graph.node}
    assert "Slice" not in nodes and "Slice" in {n.op_type for n in onnx.load(demo_export / "flow.onnx").graph.node}
    key, current = (frame[None] for frame in vtest_frames(2, size, start=40))
    feeds = {"key_frame": key, "frame": current}
    dynamic = _engines(demo_export / "flow.onnx", feeds)["onnxruntime"]
    for engine, outputs in _engines(fixed / "flow.onnx", feeds).items():
        for got, want in zip(outputs, dynamic, strict=True):
            assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max(), engine
