"""Real TensorRT: `dff build` on tiny exports, then every stage of the TensorRT backend against ONNX Runtime.

The GPU tests need TensorRT, cuda-python and an NVIDIA GPU and are skipped with the reason where any is missing
(a driver too old for the installed CUDA is said so). Each claims one path and fails when that path was not taken:

* the flow net has random last layers, so M and S are far from the untrained M = 0, S = 1 that would make W the
  identity (checked here on the CPU through ONNX Runtime, and again on the GPU);
* features, flow, scale and warped features are compared with ONNX Runtime within a bound, not only labels;
* the plugin warp is built and run in float32 and in float16 (the engine's tensors say which), on an even feature grid
  (pixel pairs) and an odd one (one pixel per thread);
* CUDA graphs: the backend's counts must show captures, replays and no failed capture, one graph per shape whatever
  the number of streams, and the warm-up frame capturing all of them.

The plugin library is plugins/build/libdff_warp_plugin.so, built here by plugins/ci.sh when it is missing; that needs
TensorRT's headers (TensorRT_ROOT or TensorRT_INCLUDE_DIR; pip wheels ship none, see plugins/README.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from dff import manifest as names
from dff.atomic import write_bytes_atomic
from dff.engines.errors import INSTALL_HINT, EngineError
from dff.manifest import load_manifest
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend

REPO = Path(__file__).resolve().parents[1]
PLUGIN = REPO / "plugins" / "build" / "libdff_warp_plugin.so"
FRAMES = 12
#: Frame sizes whose feature grids (H/16 x W/16) have an even (4 x 8) and an odd (5 x 7) number of cells: the warp
#: kernel gives each thread a pixel pair on the first and one pixel on the second.
EVEN_SIZE, ODD_SIZE = (64, 128), (80, 112)
#: Feature bounds against ONNX Runtime, relative to the reference's largest magnitude: float32 engines may use TF32
#: convolutions (10-bit mantissa); float16 is dff check's float16 tolerance.
FEATURE_BOUND = {"float32": 1e-2, "float16": 3e-2}
#: The warp alone (same inputs on both sides): float32 arithmetic in both; float16 rounds its output once.
WARP_BOUND = {"float32": 1e-4, "float16": 1e-2}


def gpu_unavailable() -> str | None:
    """Why the TensorRT tests cannot run here, or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"TensorRT is not installed ({INSTALL_HINT})"
    if importlib.util.find_spec("cuda") is None:
        return f"cuda-python is not installed ({INSTALL_HINT})"
    from dff.engines.cudart import CudaError, device_count

    try:
        return None if device_count() else "no CUDA GPU: TensorRT engines need one"
    except CudaError as error:  # the driver is too old for this CUDA, and the message says which extra to install
        return str(error)


UNAVAILABLE = gpu_unavailable()
needs_gpu = pytest.mark.skipif(UNAVAILABLE is not None, reason=UNAVAILABLE or "")


def nontrivial_checkpoint(path: Path) -> Path:
    """A tiny model whose F gives flow of a few cells and a scale field far from 1 (a fresh F gives M = 0, S = 1)."""
    import torch

    from dff.checkpoint import save_checkpoint
    from dff.config import ModelConfig
    from dff.models import build_model

    config = ModelConfig(feature="tiny", flow="tiny", num_classes=3)
    torch.manual_seed(0)
    model = build_model(config)
    generator = torch.Generator().manual_seed(17)
    head, scale = model.flow_net.decoder[-1].predict_flow, model.flow_net.scale
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=generator) * 0.1)
        head.bias.copy_(torch.tensor([0.6, -0.4]))
        scale.weight.copy_(torch.randn(scale.weight.shape, generator=generator) * 0.2)
        scale.bias.copy_(torch.rand(scale.bias.shape, generator=generator) + 0.5)
    return save_checkpoint(path, model, config)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """float32 and float16 exports of the nontrivial checkpoint, frames 64x64 to 128x160."""
    from dff.export import ExportOptions, export_checkpoint

    root = tmp_path_factory.mktemp("tensorrt_exports")
    checkpoint = nontrivial_checkpoint(root / "model.safetensors")
    for dtype in ("float32", "float16"):
        export_checkpoint(
            checkpoint, root / dtype, ExportOptions(dtype=dtype, min_size=(64, 64), max_size=(128, 160))
        )
    return {dtype: root / dtype for dtype in ("float32", "float16")}


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    """Consecutive real street frames (CamVid 0016E5), BGR."""
    paths = sorted((shared_data / "camvid_0016E5" / "images").glob("*.jpg"))[:FRAMES]
    return [cv2.imread(str(path)) for path in paths]


def resized(frames: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    return [cv2.resize(frame, (size[1], size[0]), interpolation=cv2.INTER_LINEAR) for frame in frames]


class OnnxRuntimeStages:
    """The export's feature, flow and warp graphs in ONNX Runtime (CPU), stage by stage, on host arrays."""

    def __init__(self, export: Path) -> None:
        import onnxruntime as ort

        files = load_manifest(export).files()
        self.sessions = {
            role: ort.InferenceSession(str(export / files[role].file), providers=["CPUExecutionProvider"])
            for role in ("feature", "flow", "warp")
        }

    def feature(self, frame: np.ndarray) -> np.ndarray:
        return self.sessions["feature"].run([names.FEAT], {names.FRAME: frame[None]})[0]

    def flow(self, key_frame: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = {names.KEY_FRAME: key_frame[None], names.FRAME: frame[None]}
        flow, scale = self.sessions["flow"].run([names.FLOW, names.SCALE], inputs)
        return flow, scale

    def warp(self, key_feat: np.ndarray, flow: np.ndarray, scale: np.ndarray) -> np.ndarray:
        inputs = {names.KEY_FEAT: key_feat, names.FLOW: flow, names.SCALE: scale}
        return self.sessions["warp"].run([names.FEAT], inputs)[0]


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| over max |expected|, in float64."""
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    return float(np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-12))


# ---- CPU: the inputs are what the GPU tests claim they are ----


class TestInputsAreNontrivial:
    def test_flow_and_scale_are_far_from_identity(self, exports: dict[str, Path], frames: list[np.ndarray]) -> None:
        stages = OnnxRuntimeStages(exports["float32"])
        images = resized(frames, EVEN_SIZE)
        flow, scale = stages.flow(images[0], images[5])
        assert float(np.abs(flow).mean()) > 0.5, "the flow is near 0: W would read the key features in place"
        assert float(np.abs(scale - 1).mean()) > 0.1, "the scale is near 1: S would not be exercised"
        assert float(flow.std()) > 0.1, "the flow is constant over the grid"
        key_feat = stages.feature(images[0])
        warped = stages.warp(key_feat, flow, scale)
        assert relative_error(warped, key_feat) > 0.1, "W is close to the identity on these inputs"

    def test_grid_parities(self, exports: dict[str, Path]) -> None:
        sizes = load_manifest(exports["float32"]).sizes
        for size, parity in ((EVEN_SIZE, 0), (ODD_SIZE, 1)):
            assert sizes.nearest(*size) == size, f"{size} is not a size the export allows"
            assert (size[0] // 16) * (size[1] // 16) % 2 == parity

    def test_the_float16_export_is_float16(self, exports: dict[str, Path]) -> None:
        manifest = load_manifest(exports["float16"])
        assert manifest.dtype == "float16"
        assert {spec.dtype for spec in manifest.models.warp_plugin.inputs} == {"float16"}


# ---- GPU ----


@pytest.fixture(scope="module")
def plugin_library() -> Path:
    """plugins/build/libdff_warp_plugin.so, built by plugins/ci.sh if missing; skipped only without TensorRT's headers."""
    if not PLUGIN.is_file():
        if shutil.which("cmake") is None or shutil.which("nvcc") is None:
            pytest.fail("building the plugin needs cmake and nvcc (the CUDA toolkit)", pytrace=False)
        result = subprocess.run(
            ["bash", str(REPO / "plugins" / "ci.sh")], capture_output=True, text=True, env=dict(os.environ), check=False
        )
        output = result.stdout + result.stderr
        if "dff: TensorRT headers not found" in output:
            pytest.skip(
                "the plugin needs TensorRT's headers to build: set TensorRT_ROOT or TensorRT_INCLUDE_DIR "
                "(pip wheels ship none; plugins/README.md says where to get them)"
            )
        assert result.returncode == 0 and PLUGIN.is_file(), output[-4000:]
    return PLUGIN


def build(export: Path, engines: Path, plugin: Path | None = None, max_batch: int = 1) -> list:
    from dff.engines.build import BuildOptions, build_engines

    options = BuildOptions(out=engines, plugin_lib=plugin, max_batch=max_batch)
    return build_engines(export, options, log=lambda _: None)


@pytest.fixture(scope="module")
def shared_engines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder of engines folders for the module: a build whose engines are there already reuses them."""
    return tmp_path_factory.mktemp("engines")


@needs_gpu
class TestBuild:
    def test_builds_then_reuses(self, exports: dict[str, Path], tmp_path: Path) -> None:
        from dff.engines.build import BuildOptions, build_engines

        options = BuildOptions(out=tmp_path / "engines", timing_cache=tmp_path / "timing.cache")
        first = build_engines(exports["float32"], options)
        assert [o.record.key.role for o in first] == ["feature", "flow", "warp", "task"]
        assert all(o.built for o in first)
        assert (tmp_path / "timing.cache").stat().st_size > 0
        second = build_engines(exports["float32"], options)
        assert not any(o.built for o in second)
        assert [o.record for o in second] == [o.record for o in first]

    def test_records_name_the_manifest_tensors(self, exports: dict[str, Path], shared_engines: Path) -> None:
        task = build(exports["float32"], shared_engines / "float32-gridsample")[3].record
        assert {t.name for t in task.tensors} == {"feat", "scores", "probs", "labels"}
        assert next(t for t in task.tensors if t.name == "labels").dtype == "uint8"

    def test_corrupt_timing_cache_is_a_clear_error(self, exports: dict[str, Path], tmp_path: Path) -> None:
        from dff.engines.build import BuildOptions, build_engines

        cache = tmp_path / "timing.cache"
        cache.write_bytes(b"not a timing cache" * 50)
        with pytest.raises(EngineError, match="is not a timing cache TensorRT can read"):
            build_engines(exports["float32"], BuildOptions(out=tmp_path / "engines", timing_cache=cache))
        assert cache.read_bytes() == b"not a timing cache" * 50  # the user's file is left as it was

    def test_a_library_that_is_no_plugin_library_is_refused(self, tmp_path: Path) -> None:
        from dff.engines.loaders import import_tensorrt, load_plugin_library

        library = tmp_path / "libnot_a_plugin.so"
        source = tmp_path / "lib.c"
        source.write_text("int answer(void) { return 42; }\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
        with pytest.raises(EngineError, match="could not load plugin library"):
            load_plugin_library(import_tensorrt(), library)

    def test_plugin_library_registers_dffwarp(self, plugin_library: Path) -> None:
        from dff.engines.loaders import WARP_PLUGIN, import_tensorrt, load_plugin_library

        trt = import_tensorrt()
        load_plugin_library(trt, plugin_library)
        assert trt.get_plugin_registry().get_creator(*WARP_PLUGIN) is not None


@needs_gpu
class TestStagesAgainstOnnxRuntime:
    """Every stage's tensors against ONNX Runtime's on the same frames: float32 and float16, both warps, both grids."""

    @pytest.mark.parametrize("size", [EVEN_SIZE, ODD_SIZE], ids=["even-grid", "odd-grid"])
    @pytest.mark.parametrize("warp", ["gridsample", "plugin"])
    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_features_flow_and_warp(
        self,
        exports: dict[str, Path],
        frames: list[np.ndarray],
        shared_engines: Path,
        request: pytest.FixtureRequest,
        dtype: str,
        warp: str,
        size: tuple[int, int],
    ) -> None:
        export = exports[dtype]
        plugin = request.getfixturevalue("plugin_library") if warp == "plugin" else None
        engines = shared_engines / f"{dtype}-{warp}"
        outcomes = build(export, engines, plugin)
        warp_record = outcomes[2].record
        assert warp_record.key.onnx_file == ("warp_plugin.onnx" if plugin else "warp.onnx")
        # The engine's own tensor types: the float16 branch of the plugin runs iff these are float16.
        assert {t.dtype for t in warp_record.tensors} == {dtype}
        reference = OnnxRuntimeStages(export)
        images = resized(frames, size)
        with open_backend("tensorrt", model=export, engines=engines, cuda_graph=False) as backend:
            key_frame, frame = backend.upload(images[0]), backend.upload(images[5])
            key_feat = backend.feature(key_frame)
            flow, scale = backend.flow(key_frame, frame)
            warped = backend.warp(key_feat, (flow, scale))
            host = {name: backend.to_host(t) for name, t in
                    (("key_feat", key_feat), ("flow", flow), ("scale", scale), ("warped", warped))}
        assert host["warped"].shape[2:] == (size[0] // 16, size[1] // 16)
        assert host["warped"].dtype == np.dtype(dtype)
        expected_feat = reference.feature(images[0])
        expected_flow, expected_scale = reference.flow(images[0], images[5])
        assert relative_error(host["key_feat"], expected_feat) <= FEATURE_BOUND[dtype]
        assert relative_error(host["flow"], expected_flow) <= FEATURE_BOUND[dtype]
        assert relative_error(host["scale"], expected_scale) <= FEATURE_BOUND[dtype]
        assert float(np.abs(host["flow"]).mean()) > 0.5 and float(np.abs(host["scale"] - 1).mean()) > 0.1
        # The warp alone, on TensorRT's own inputs, against warp.onnx in ONNX Runtime.
        expected_warped = reference.warp(host["key_feat"], host["flow"], host["scale"])
        assert relative_error(host["warped"], expected_warped) <= WARP_BOUND[dtype]
        assert relative_error(host["warped"], host["key_feat"]) > 0.1  # W moved the features
        # And end to end against ONNX Runtime's own features.
        assert relative_error(host["warped"], reference.warp(expected_feat, expected_flow, expected_scale)) <= (
            FEATURE_BOUND[dtype]
        )


def labels_of(export: Path, engines: Path, images: list[np.ndarray], **options: object) -> list[np.ndarray]:
    with open_backend("tensorrt", model=export, engines=engines, **options) as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4))
        return [runtime(image).labels for image in images]


@needs_gpu
class TestCudaGraphs:
    @pytest.fixture(scope="class")
    def engines(self, exports: dict[str, Path], shared_engines: Path) -> Path:
        build(exports["float32"], shared_engines / "float32-gridsample")
        return shared_engines / "float32-gridsample"

    def test_warmup_captures_every_graph_and_frames_replay_them(
        self, exports: dict[str, Path], engines: Path, frames: list[np.ndarray]
    ) -> None:
        images = resized(frames, EVEN_SIZE)
        with open_backend("tensorrt", model=exports["float32"], engines=engines, cuda_graph=True) as backend:
            runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4))
            runtime.warmup(*EVEN_SIZE)
            warm = backend.graph_stats()
            for image in images:
                runtime(image)
            stats = backend.graph_stats()
        non_key = sum(i % 4 != 0 for i in range(len(images)))
        for role in ("flow", "task"):
            assert warm[role].failures == 0 and warm[role].captures == 1, (role, warm[role])
            assert stats[role].captures == 1, f"{role}: timed frames captured again ({stats[role]})"
        assert stats["flow"].replays == non_key
        assert stats["task"].replays == len(images)  # key frames' task has the same shapes
        assert stats["feature"].replays == stats["warp"].replays == 0  # they run plainly by design

    def test_graphs_change_no_label(self, exports: dict[str, Path], engines: Path, frames: list[np.ndarray]) -> None:
        images = resized(frames, EVEN_SIZE)
        plain = labels_of(exports["float32"], engines, images, cuda_graph=False)
        graphed = labels_of(exports["float32"], engines, images, cuda_graph=True)
        assert all(np.array_equal(a, b) for a, b in zip(plain, graphed))

    def test_many_streams_and_size_changes_share_one_graph_per_shape(
        self, exports: dict[str, Path], engines: Path, frames: list[np.ndarray]
    ) -> None:
        # Four streams interleaved frame by frame, the frame size changing and changing back mid-way.
        sizes = [EVEN_SIZE] * 6 + [ODD_SIZE] * 3 + [EVEN_SIZE] * 3
        sequences = [[cv2.resize(f, (s[1], s[0])) for f, s in zip(frames[j:] + frames[:j], sizes)] for j in range(4)]
        expected = [labels_of(exports["float32"], engines, images, cuda_graph=False) for images in sequences]
        with open_backend("tensorrt", model=exports["float32"], engines=engines, cuda_graph=True) as backend:
            runtimes = [DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4)) for _ in sequences]
            got = [[] for _ in sequences]
            for i in range(len(sizes)):
                for j, runtime in enumerate(runtimes):
                    got[j].append(runtime(sequences[j][i]).labels)
            stats = backend.graph_stats()
        for role in ("flow", "task"):
            assert stats[role].failures == 0
            assert stats[role].captures == 2, f"{role}: one graph per frame size, whatever the streams ({stats[role]})"
        assert stats["flow"].replays > 0
        for j in range(len(sequences)):
            assert all(np.array_equal(a, b) for a, b in zip(expected[j], got[j])), f"stream {j}"

    def test_threads_share_one_backend(self, exports: dict[str, Path], engines: Path, frames: list[np.ndarray]) -> None:
        images = resized(frames, EVEN_SIZE)
        expected = labels_of(exports["float32"], engines, images, cuda_graph=True)
        results: dict[int, list[np.ndarray]] = {}
        with open_backend("tensorrt", model=exports["float32"], engines=engines, cuda_graph=True) as backend:

            def stream(j: int) -> None:
                runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4))
                results[j] = [runtime(image).labels for image in images]

            threads = [threading.Thread(target=stream, args=(j,)) for j in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert all(s.failures == 0 for s in backend.graph_stats().values())
        for j in range(3):
            assert all(np.array_equal(a, b) for a, b in zip(expected, results[j])), f"thread {j}"


@needs_gpu
class TestBatches:
    """Many streams through one backend: engines built with a batch range, one call per stage per tick."""

    @pytest.mark.parametrize("cuda_graph", [False, True])
    def test_each_stream_in_a_batch_equals_the_stream_alone(
        self, exports: dict[str, Path], frames: list[np.ndarray], shared_engines: Path, cuda_graph: bool
    ) -> None:
        from dff.runtime import MultiStreamRuntime, phased_schedulers

        export, engines, streams, interval = exports["float32"], shared_engines / "float32-batch4", 3, 4
        build(export, engines, max_batch=4)
        sequences = [resized(frames[j:] + frames[:j], EVEN_SIZE) for j in range(streams)]
        alone = []
        with open_backend("tensorrt", model=export, engines=engines, cuda_graph=cuda_graph) as backend:
            assert backend.max_batch == 4 and backend.native_batching
            for j, images in enumerate(sequences):
                runtime = MultiStreamRuntime(backend=backend, schedulers=[phased_schedulers(streams, interval)[j]])
                alone.append([runtime({0: image})[0].labels for image in images])
            together = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(streams, interval))
            batched: list[list[np.ndarray]] = [[] for _ in range(streams)]
            for i in range(len(frames)):
                for j, result in together({j: sequences[j][i] for j in range(streams)}).items():
                    batched[j].append(result.labels)
            stats = backend.graph_stats()
        for j in range(streams):
            # Batched convolutions may pick other kernels than batch 1: labels move only where classes nearly tie.
            agreement = float(np.mean([np.mean(a == b) for a, b in zip(alone[j], batched[j])]))
            assert agreement >= 0.999, f"stream {j}: {agreement:.5f} of pixels equal"
        if cuda_graph:
            for role in ("flow", "task"):
                # One graph per batch size (1 for the streams alone, 2 and 3 in the staggered ticks), none failed.
                assert stats[role].failures == 0 and 2 <= stats[role].captures <= 4, (role, stats[role])
                assert stats[role].replays > 0


@needs_gpu
class TestDetection:
    """A detection export: its task engine's four padded outputs become Detections, one stream and a batch of three."""

    def test_detections_match_onnxruntime_alone_and_batched(
        self, tmp_path: Path, frames: list[np.ndarray], shared_engines: Path
    ) -> None:
        from dff.export import ExportOptions, export_checkpoint
        from dff.export.detection_check import MIN_IOU, match_detections
        from dff.runtime import MultiStreamRuntime, phased_schedulers
        from helpers import make_detector
        from test_detection_export import MAX_DETECTIONS

        export, engines = tmp_path / "detector", shared_engines / "detection-batch4"
        export_checkpoint(make_detector(tmp_path, flow_std=0.05), export, ExportOptions(min_size=EVEN_SIZE, max_size=EVEN_SIZE, max_detections=MAX_DETECTIONS))
        build(export, engines, max_batch=4)
        images = resized(frames, EVEN_SIZE)

        def run(backend_name: str, **options: object) -> list:
            with open_backend(backend_name, model=export, **options) as backend:
                runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4))
                found = [runtime(image).detections for image in images]
                together = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(3, 4))
                batched = [together({j: image for j in range(3)}) for image in images]
                if backend_name == "tensorrt":
                    stats = backend.graph_stats()
                    assert stats["task"].captures == 0 and stats["flow"].captures > 0  # NMS runs plainly, F in graphs
            return found, batched

        reference, _ = run("onnxruntime")
        found, batched = run("tensorrt", engines=engines, cuda_graph=True)
        assert any(len(d) for d in reference), "the detector finds nothing: the comparison would be empty"

        def padded(d) -> dict[str, np.ndarray]:
            return {names.BOXES: d.boxes[None], names.DETECTION_SCORES: d.scores[None], names.CLASSES: d.classes[None],
                    names.COUNT: np.array([len(d)])}

        for i, expected in enumerate(reference):
            # Stream 0 of the staggered batch has phase 0, the key frames of FixedInterval(4) alone.
            for got in (found[i], batched[i][0].detections):
                iou_gap, score_gap, unmatched, count_gap = match_detections(padded(expected), padded(got))
                assert iou_gap <= 1 - MIN_IOU and score_gap <= 1e-2 and unmatched == 0 and count_gap == 0, (i, iou_gap, score_gap)


@needs_gpu
class TestAlgorithm1:
    @pytest.mark.parametrize("dtype", ["float32", "float16"])
    def test_plugin_labels_match_onnxruntime(
        self, exports: dict[str, Path], frames: list[np.ndarray], plugin_library: Path, shared_engines: Path, dtype: str
    ) -> None:
        export, engines = exports[dtype], shared_engines / f"{dtype}-plugin"
        build(export, engines, plugin_library)
        with open_backend("onnxruntime", model=export) as backend:
            runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(4))
            reference = [runtime(frame).labels for frame in frames]
        labels = labels_of(export, engines, frames, cuda_graph=True)
        agreement = float(np.mean([np.mean(a == b) for a, b in zip(labels, reference)]))
        assert agreement > 0.98  # labels flip only where classes nearly tie; the stage tests bound the features

    def test_undeserialisable_engine_is_a_clear_error(self, exports: dict[str, Path], tmp_path: Path) -> None:
        engines = tmp_path / "engines"
        record = build(exports["float32"], engines)[0].record
        # Garbage whose SHA-256 the record vouches for: only TensorRT itself can refuse it.
        garbage = b"not a TensorRT plan" * 100
        write_bytes_atomic(engines / record.engine_file, garbage)
        path = engines / f"{record.key.stem}.json"
        path.write_text(path.read_text().replace(record.engine_sha256, hashlib.sha256(garbage).hexdigest()))
        with pytest.raises(EngineError, match="TensorRT could not deserialise .* run `dff build` again"):
            open_backend("tensorrt", model=exports["float32"], engines=engines)
