"""The fused paths of issue 19: key_path.onnx (N_feat → N_task) and propagate.onnx (F → W → N_task) give what the
stages give one after another, in ONNX Runtime and OpenVINO, and exports without them still run stage by stage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from helpers import make_checkpoint, vtest_frames

from dff.export import ExportOptions, export_checkpoint
from dff.manifest import MANIFEST_NAME, load_manifest
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.adaptive_signals import FlowStatistics

#: 120x160 frames run at 128x160, a size whose decoder crops (a skip of odd size) are in the graphs.
FRAMES = 7
SIZE = (120, 160)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("fused") / "model.safetensors")


@pytest.fixture(scope="module")
def export(checkpoint: Path) -> Path:
    out = checkpoint.parent / "export"
    export_checkpoint(checkpoint, out, ExportOptions(min_size=(64, 64), max_size=(256, 320)))
    return out


def _run(export: Path, backend: str, **options) -> list:
    with open_backend(backend, model=export, **options) as engine:
        runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(3))
        return [runtime(frame) for frame in vtest_frames(FRAMES, SIZE, start=20)]


def test_manifest_records_the_fused_graphs_with_hashes(export: Path) -> None:
    manifest = load_manifest(export)  # verifies every hash, the fused files' too
    fused = manifest.fused_files()
    assert {role: entry.file for role, entry in fused.items()} == {"key_path": "key_path.onnx", "propagate": "propagate.onnx"}
    assert [s.name for s in fused["key_path"].inputs] == ["frame"]
    assert [s.name for s in fused["key_path"].outputs] == ["feat", "scores", "probs", "labels"]
    assert [s.name for s in fused["propagate"].inputs] == ["key_frame", "frame", "key_feat"]
    assert [s.name for s in fused["propagate"].outputs] == ["scores", "probs", "labels", "flow_stats"]
    for role, entry in fused.items():  # the files hold the interfaces the manifest names
        session = ort.InferenceSession(str(export / entry.file), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == [s.name for s in entry.inputs], role
        assert [o.name for o in session.get_outputs()] == [s.name for s in entry.outputs], role


def test_fused_graphs_compute_the_stages_exactly(export: Path) -> None:
    sessions = {
        role: ort.InferenceSession(str(export / f"{role}.onnx"), providers=["CPUExecutionProvider"])
        for role in ("feature", "flow", "warp", "task", "key_path", "propagate")
    }
    key, frame = (f[None] for f in vtest_frames(2, (128, 160), start=20))
    feat = sessions["feature"].run(None, {"frame": key})[0]
    flow, scale, stats = sessions["flow"].run(None, {"key_frame": key, "frame": frame})
    warped = sessions["warp"].run(None, {"key_feat": feat, "flow": flow, "scale": scale})[0]
    fused_key = sessions["key_path"].run(None, {"frame": key})
    for got, want in zip(fused_key, [feat, *sessions["task"].run(None, {"feat": feat})], strict=True):
        assert np.array_equal(got, want)
    fused = sessions["propagate"].run(None, {"key_frame": key, "frame": frame, "key_feat": feat})
    for got, want in zip(fused, [*sessions["task"].run(None, {"feat": warped}), stats], strict=True):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fused_runtime_gives_the_stage_by_stage_labels(export: Path, backend: str) -> None:
    fused, staged = _run(export, backend), _run(export, backend, fused_graphs=False)
    assert [r.key for r in fused] == [r.key for r in staged] == [True, False, False] * 2 + [True]
    for a, b in zip(fused, staged):
        # OpenVINO compiles the fused graph as one model and may pick other kernels: float rounding, not labels.
        assert np.mean(a.labels == b.labels) >= (1.0 if backend == "onnxruntime" else 0.999)
    # The timing log: one fused call per path, the stages otherwise.
    assert set(fused[0].timing.stages_ms) == {"preprocess", "key_path", "postprocess"}
    assert set(fused[1].timing.stages_ms) == {"preprocess", "propagate", "postprocess"}
    assert set(staged[0].timing.stages_ms) == {"preprocess", "feature", "task", "postprocess"}
    assert set(staged[1].timing.stages_ms) == {"preprocess", "flow", "warp", "task", "postprocess"}


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_fused_propagation_reports_the_flow_statistics(export: Path, backend: str) -> None:
    key, frame = vtest_frames(2, (128, 160), start=20)
    with open_backend(backend, model=export) as engine:
        key_frame, current = engine.upload(key), engine.upload(frame)
        feat, _ = engine.key_path(key_frame)
        _, fused = engine.propagate(key_frame, feat, current, statistics=True)
        staged = engine.flow_statistics(engine.flow(key_frame, current))
        assert engine.propagate(key_frame, feat, current)[1] is None  # not copied unless asked for
    assert isinstance(fused, FlowStatistics)
    np.testing.assert_allclose(fused.as_tuple(), staged.as_tuple(), rtol=1e-5, atol=1e-6)


def test_exports_without_fused_graphs_run_stage_by_stage(checkpoint: Path, export: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    export_checkpoint(checkpoint, bare, ExportOptions(min_size=(64, 64), max_size=(256, 320), fused_graphs=False))
    assert load_manifest(bare).fused_files() == {} and not (bare / "propagate.onnx").exists()
    # An export made before the fused graphs: its manifest has no such fields at all.
    data = json.loads((bare / MANIFEST_NAME).read_text())
    for role in ("key_path", "propagate"):
        data["models"].pop(role)
    (bare / MANIFEST_NAME).write_text(json.dumps(data))
    expected = _run(export, "onnxruntime")
    for backend in ("onnxruntime", "openvino"):
        results = _run(bare, backend)
        assert "propagate" not in results[1].timing.stages_ms and "warp" in results[1].timing.stages_ms
        for got, want in zip(results, expected):
            assert np.mean(got.labels == want.labels) >= (1.0 if backend == "onnxruntime" else 0.999)
