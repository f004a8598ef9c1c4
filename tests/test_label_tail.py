"""The task graph's tail on the host (issue 19, item 3): labels_from_probs gives task.onnx's labels on real and
synthetic frames (pixels that differ are counted, and must be float ties), and the ONNX Runtime and OpenVINO backends
that run it give the labels of the graph's tail."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.errors import ConfigError
from dff.export import ExportOptions, export_checkpoint
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.label_tail import _two_class_quads, graph_before_tail, labels_from_probs
from dff.sources import open_source

DEMO_MODEL = Path(__file__).resolve().parents[1] / "dff" / "assets" / "demo_model.safetensors"
SIZE = (128, 160)  # 8x10 quads inside, and the half-blocks of every border
#: A pixel whose two best interpolated probabilities (float64) are this close is a tie the engines may break apart.
TIE = 1e-6


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained demo model (its labels have real boundaries), at SIZE."""
    out = tmp_path_factory.mktemp("label_tail") / "export"
    export_checkpoint(DEMO_MODEL, out, ExportOptions(height=SIZE[0], width=SIZE[1]))
    return out


def _ties(probs: np.ndarray) -> np.ndarray:
    """Per pixel: whether the two best classes of the bilinear ×16 upsampling of (C, h, w) ``probs`` are within TIE."""
    up = np.stack([cv2.resize(p.astype(np.float64), None, fx=16, fy=16, interpolation=cv2.INTER_LINEAR) for p in probs])
    top = np.sort(up, axis=0)
    return top[-1] - top[-2] < TIE


def _frames(shared_data: Path) -> dict[str, list[np.ndarray]]:
    videos = {name: shared_data / "videos" / name for name in ("vtest.avi", "car_traffic_small.mp4")}
    frames = {
        name: [cv2.resize(f.image, SIZE[::-1], interpolation=cv2.INTER_AREA) for _, f in zip(range(12), open_source(path))]
        for name, path in videos.items()
    }
    video = SyntheticVideo(SyntheticVideoConfig(length=12, num_classes=4, seed=1, height=SIZE[0], width=SIZE[1]))
    frames["synthetic"] = [video.image(t) for t in range(12)]
    return frames


def test_host_labels_equal_the_graphs_on_real_and_synthetic_frames(export: Path, shared_data: Path) -> None:
    session = ort.InferenceSession(str(export / "key_path.onnx"), providers=["CPUExecutionProvider"])
    propagate = ort.InferenceSession(str(export / "propagate.onnx"), providers=["CPUExecutionProvider"])
    for name, frames in _frames(shared_data).items():
        changed = ties = mixed = 0
        for n, frame in enumerate(frames):
            if n % 4 == 0:  # key frames and propagated frames, as the runtime gets them
                key, (feat, probs, labels) = frame, session.run(["feat", "probs", "labels"], {"frame": frame[None]})
            else:
                feeds = {"key_frame": key[None], "frame": frame[None], "key_feat": feat}
                probs, labels = propagate.run(["probs", "labels"], feeds)
            got = labels_from_probs(probs[0])
            assert got.dtype == np.uint8 and got.shape == SIZE
            differ = got != labels[0]
            tie = _ties(probs[0])
            assert not (differ & ~tie).any(), f"{name} frame {n}: a label differs from the graph's away from a tie"
            changed, ties = changed + int(differ.sum()), ties + int(tie.sum())
            mixed += int(len(np.unique(probs[0].argmax(0))) > 1)
        # Measured on this export: no pixel of any of these frames differs (ties: none either at 1e-6).
        assert changed == 0, f"{name}: {changed} pixels differ ({ties} ties)"
        assert mixed, f"{name}: the frames should hold class boundaries, or the comparison proves little"


def test_host_labels_on_random_probabilities_equal_the_task_graph(export: Path) -> None:
    """Random features: nearly every quad has corners of different classes, so nearly every pixel is interpolated."""
    session = ort.InferenceSession(str(export / "task.onnx"), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feat = np.abs(rng.standard_normal((3, 128, SIZE[0] // 16, SIZE[1] // 16))).astype(np.float32) * 3
    probs, labels = session.run(["probs", "labels"], {"feat": feat})
    for p, want in zip(probs, labels):
        differ = labels_from_probs(p) != want
        assert not (differ & ~_ties(p)).any()
        assert differ.mean() <= 1e-4


def test_edges_and_one_cell_grids() -> None:
    """Against a float64 reference (clamped half-pixel bilinear, first maximum), on grids of 1 and 2 cells a side."""
    rng = np.random.default_rng(1)
    for h, w in ((1, 1), (1, 3), (2, 1), (3, 2)):
        probs = rng.dirichlet(np.ones(5), size=(h, w)).transpose(2, 0, 1).astype(np.float32)
        up = np.stack([cv2.resize(p.astype(np.float64), (16 * w, 16 * h), interpolation=cv2.INTER_LINEAR) for p in probs])
        want = up.argmax(0)
        got = labels_from_probs(probs)
        assert got.shape == (16 * h, 16 * w)
        assert ((got == want) | _ties(probs)).all()
    with pytest.raises(ValueError, match="even stride"):
        labels_from_probs(np.zeros((2, 2, 2), np.float32), stride=3)


def _confident(classes: int, grid: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Probabilities of a trained model's kind: blobs of classes, softmax of 5 · one-hot plus noise."""
    blobs = cv2.resize(rng.integers(0, classes, (grid[0] // 3 + 1, grid[1] // 3 + 1)).astype(np.uint8), grid[::-1], interpolation=cv2.INTER_NEAREST)
    logits = 5 * np.eye(classes, dtype=np.float32)[blobs].transpose(2, 0, 1) + rng.standard_normal((classes, *grid)).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=0))
    return (exp / exp.sum(axis=0)).astype(np.float32)


@pytest.mark.parametrize("classes", [2, 4, 19])
def test_two_class_quads_give_the_labels_of_every_class(classes: int) -> None:
    """The two-class path (sign of p_b - p_a where no third class can win) against interpolating every class, and
    against a float64 reference, on confident probabilities (most mixed quads take it) and random ones (few do)."""
    rng = np.random.default_rng(classes)
    for probs in (_confident(classes, (12, 15), rng), rng.dirichlet(np.ones(classes), size=(12, 15)).transpose(2, 0, 1).astype(np.float32)):
        up = np.stack([cv2.resize(p.astype(np.float64), (16 * 15, 16 * 12), interpolation=cv2.INTER_LINEAR) for p in probs])
        fast, every = labels_from_probs(probs), labels_from_probs(probs, two_class=False)
        assert ((fast == every) | _ties(probs)).all()
        assert ((fast == up.argmax(0)) | _ties(probs)).all()


def test_a_third_class_winning_inside_a_quad_is_not_left_out() -> None:
    """Corners won by classes 0 and 1 alone, but class 2, second at every corner, wins the middle of the quad: the
    quad must take the every-class path."""
    corner_a, corner_b = [0.50, 0.02, 0.48], [0.02, 0.50, 0.48]
    probs = np.array([[corner_a, corner_b], [corner_b, corner_a]], np.float32).transpose(2, 0, 1)  # (3, 2, 2)
    two, _, _ = _two_class_quads(np.stack([probs[:, 0, 0], probs[:, 0, 1], probs[:, 1, 0], probs[:, 1, 1]], -1)[:, None], np.array([[0, 1, 1, 0]]))
    assert not two.any()
    labels = labels_from_probs(probs)
    assert (labels[8:24, 8:24] == 2).any()  # the inner quad: class 2 in its middle
    up = np.stack([cv2.resize(p.astype(np.float64), (32, 32), interpolation=cv2.INTER_LINEAR) for p in probs])
    assert ((labels == up.argmax(0)) | _ties(probs)).all()


def test_graph_cut_before_the_tail_has_no_frame_size_nodes(export: Path) -> None:
    for role in ("task", "key_path", "propagate"):
        model = onnx.load(export / f"{role}.onnx")
        cut = graph_before_tail(model)
        onnx.checker.check_model(cut, full_check=True)
        assert "labels" not in [o.name for o in cut.graph.output] and "probs" in [o.name for o in cut.graph.output]
        ops = {node.op_type for node in cut.graph.node}
        assert {"Resize", "ArgMax"} <= {node.op_type for node in model.graph.node} and not {"ArgMax"} & ops, role
        assert sum(n.op_type == "Resize" for n in cut.graph.node) == sum(n.op_type == "Resize" for n in model.graph.node) - 1


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_backends_on_the_host_tail_give_the_graphs_labels(export: Path, shared_data: Path, backend: str) -> None:
    frames = _frames(shared_data)["vtest.avi"] + _frames(shared_data)["synthetic"]
    results = {}
    for tail in ("graph", "host"):
        with open_backend(backend, model=export, label_tail=tail) as engine:
            assert engine.label_tail == tail
            runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(3))
            results[tail] = [runtime(frame).labels for frame in frames]
    assert all(np.array_equal(a, b) for a, b in zip(results["graph"], results["host"]))
    with open_backend(backend, model=export) as engine:
        assert engine.label_tail == "host"  # the default on the CPU


def test_host_tail_refused_where_the_export_has_no_float32_probabilities(tmp_path: Path) -> None:
    half = tmp_path / "f16"
    export_checkpoint(DEMO_MODEL, half, ExportOptions(height=64, width=64, dtype="float16", fused_graphs=False))
    with pytest.raises(ConfigError, match="label_tail=host needs .* float32 probs"):
        open_backend("onnxruntime", model=half, label_tail="host")
    with open_backend("onnxruntime", model=half) as engine:
        assert engine.label_tail == "graph"
