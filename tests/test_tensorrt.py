"""Real TensorRT: `dff build` on a tiny export, then Algorithm 1 through the TensorRT backend against ONNX Runtime.

Needs TensorRT, cuda-python and an NVIDIA GPU; skipped with the reason where any is missing.
The plugin warp also needs plugins/build/libdff_warp_plugin.so (`make plugins` with TensorRT_ROOT set).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install deep-feature-flow[tensorrt])")
if importlib.util.find_spec("cuda") is None:
    pytest.skip("cuda-python is not installed (pip install deep-feature-flow[tensorrt])", allow_module_level=True)

from dff.engines.build import BuildOptions, build_engines  # noqa: E402
from dff.engines.errors import EngineError  # noqa: E402
from dff.atomic import write_bytes_atomic  # noqa: E402
from dff.engines.records import read_record  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "build" / "libdff_warp_plugin.so"
FRAMES = 12


def _gpu_count() -> int:
    from dff.engines.cudart import import_cudart

    status, count = import_cudart().cudaGetDeviceCount()
    return count if status.value == 0 else 0


if _gpu_count() == 0:
    pytest.skip("no CUDA GPU: TensorRT engines need one", allow_module_level=True)


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    """Consecutive real street frames (CamVid 0016E5), BGR, resized by the runtime to an allowed size."""
    paths = sorted((shared_data / "camvid_0016E5" / "images").glob("*.jpg"))[:FRAMES]
    return [cv2.imread(str(path)) for path in paths]


def labels_of(backend_name: str, tiny_export: Path, frames: list[np.ndarray], **options: object) -> list[np.ndarray]:
    with open_backend(backend_name, model=tiny_export, **options) as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4))
        return [runtime(frame).labels for frame in frames]


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))


class TestBuild:
    def test_builds_then_reuses(self, tiny_export: Path, tmp_path: Path) -> None:
        options = BuildOptions(out=tmp_path / "engines", timing_cache=tmp_path / "timing.cache")
        first = build_engines(tiny_export, options)
        assert [o.record.key.role for o in first] == ["feature", "flow", "warp", "task"]
        assert all(o.built for o in first)
        assert (tmp_path / "timing.cache").stat().st_size > 0
        second = build_engines(tiny_export, options)
        assert not any(o.built for o in second)
        assert [o.record for o in second] == [o.record for o in first]

    def test_records_name_the_manifest_tensors(self, tiny_export: Path) -> None:
        outcomes = build_engines(tiny_export, BuildOptions())
        task = read_record(tiny_export / "engines" / f"{outcomes[3].record.key.stem}.json")
        assert {t.name for t in task.tensors} == {"feat", "scores", "probs", "labels"}
        assert next(t for t in task.tensors if t.name == "labels").dtype == "uint8"


class TestTensorRTBackend:
    @pytest.fixture(scope="class")
    def reference(self, tiny_export: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
        build_engines(tiny_export, BuildOptions())
        return labels_of("onnxruntime", tiny_export, frames)

    @pytest.mark.parametrize("cuda_graph", [False, True])
    def test_algorithm_1_matches_onnxruntime(
        self, tiny_export: Path, frames: list[np.ndarray], reference: list[np.ndarray], cuda_graph: bool
    ) -> None:
        labels = labels_of("tensorrt", tiny_export, frames, cuda_graph=cuda_graph)
        assert [x.shape for x in labels] == [x.shape for x in reference]
        # TF32 and other tactics move scores by ~1e-3; labels flip only where classes nearly tie.
        assert agreement(labels, reference) > 0.98

    def test_cuda_graphs_change_nothing(
        self, tiny_export: Path, frames: list[np.ndarray], reference: list[np.ndarray]
    ) -> None:
        plain = labels_of("tensorrt", tiny_export, frames, cuda_graph=False)
        graphed = labels_of("tensorrt", tiny_export, frames, cuda_graph=True)
        assert all(np.array_equal(a, b) for a, b in zip(plain, graphed))

    @pytest.mark.skipif(not PLUGIN.is_file(), reason=f"{PLUGIN} is not built (`make plugins` with TensorRT_ROOT set)")
    def test_plugin_warp_matches_onnxruntime(
        self, tiny_export: Path, frames: list[np.ndarray], reference: list[np.ndarray], tmp_path: Path
    ) -> None:
        engines = tmp_path / "engines"
        outcomes = build_engines(tiny_export, BuildOptions(out=engines, plugin_lib=PLUGIN))
        assert outcomes[2].record.key.onnx_file == "warp_plugin.onnx"
        labels = labels_of("tensorrt", tiny_export, frames, engines=engines)
        assert agreement(labels, reference) > 0.98

    def test_undeserialisable_engine_is_a_clear_error(self, tiny_export: Path, tmp_path: Path) -> None:
        engines = tmp_path / "engines"
        outcomes = build_engines(tiny_export, BuildOptions(out=engines))
        record = outcomes[0].record
        # Garbage whose SHA-256 the record vouches for: only TensorRT itself can refuse it.
        garbage = b"not a TensorRT plan" * 100
        write_bytes_atomic(engines / record.engine_file, garbage)
        path = engines / f"{record.key.stem}.json"
        path.write_text(path.read_text().replace(record.engine_sha256, hashlib.sha256(garbage).hexdigest()))
        with pytest.raises(EngineError, match="TensorRT could not deserialise .* run `dff build` again"):
            open_backend("tensorrt", model=tiny_export, engines=engines)
