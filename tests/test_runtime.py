"""Algorithm 1 over the ONNX Runtime and PyTorch backends, against the PyTorch model itself; schedulers; timing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import DATA, make_checkpoint, make_export, run_without_torch, vtest_frames

from dff.checkpoint import load_checkpoint
from dff.errors import ConfigError, ExportError, VideoError
from dff.models.preprocess import FrameNormalizer
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, TimingSummary, backend_names, open_backend, predicted_speedup
from dff.runtime.backends import backend_options

VIDEOS = DATA / "videos"
needs_data = pytest.mark.skipif(not VIDEOS.is_dir(), reason=f"real test videos not found at {VIDEOS}")
#: Source frames are 120×160: the runtime resizes them to the nearest allowed size, 128×160.
SOURCE_SIZE = (120, 160)
NETWORK_SIZE = (128, 160)
#: Labels are an argmax: float differences between runtimes may flip the rare near-tie pixel.
MIN_LABEL_AGREEMENT = 0.995


def real_frames(count: int) -> list[np.ndarray]:
    """The first ``count`` frames of vtest.avi (pedestrians), shrunk to SOURCE_SIZE."""
    return vtest_frames(count, SOURCE_SIZE)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def export_dir(checkpoint, tmp_path_factory) -> Path:
    return make_export(checkpoint, tmp_path_factory.mktemp("export") / "tiny")


@pytest.fixture(scope="module")
def ort_backend(export_dir):
    with open_backend("onnxruntime", model=export_dir) as backend:
        yield backend


def reference(checkpoint: Path, frames: list[np.ndarray], interval: int) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """Algorithm 1 written out with the PyTorch model (DeepFeatureFlow.key / propagate / task): labels and features."""
    model, config = load_checkpoint(checkpoint)
    normalize = FrameNormalizer(mean=config.mean, std=config.std, layout="nhwc_bgr")
    labels, features = [], []
    with torch.no_grad():
        for i, image in enumerate(frames):
            resized = cv2.resize(image, NETWORK_SIZE[::-1], interpolation=cv2.INTER_LINEAR)
            frame = normalize(torch.from_numpy(resized)[None])
            if i % interval == 0:
                key_frame, key_feat = frame, model.key(frame)
                feat = key_feat
            else:
                feat = model.propagate(key_feat, key_frame, frame)
            probs = model.task_net.probabilities(feat, NETWORK_SIZE)
            label = probs.argmax(dim=1)[0].to(torch.uint8).numpy()
            labels.append(cv2.resize(label, SOURCE_SIZE[::-1], interpolation=cv2.INTER_NEAREST))
            features.append(feat)
    return labels, features


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


@needs_data
class TestAlgorithm1:
    def test_onnxruntime_equals_pytorch_on_key_and_non_key_frames(self, checkpoint, ort_backend):
        frames = real_frames(5)
        expected, _ = reference(checkpoint, frames, interval=3)
        runtime = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(3))
        results = [runtime(image) for image in frames]
        assert [r.key for r in results] == [True, False, False, True, False]
        for result, labels in zip(results, expected):
            assert result.labels.shape == SOURCE_SIZE and result.labels.dtype == np.uint8
            assert agreement(result.labels, labels) >= MIN_LABEL_AGREEMENT
        # The non-key frames must differ from their key frame's labels, or propagation was not tested.
        assert agreement(expected[1], expected[0]) < 0.999

    def test_stages_equal_pytorch(self, checkpoint, ort_backend):
        """Features, flow, propagated features: the stages themselves, to float tolerance."""
        frames = [cv2.resize(f, NETWORK_SIZE[::-1]) for f in real_frames(3)]
        _, features = reference(checkpoint, frames, interval=3)
        key = ort_backend.upload(frames[0])
        key_feat = ort_backend.feature(key)
        flow = ort_backend.flow(key, ort_backend.upload(frames[2]))
        propagated = ort_backend.warp(key_feat, flow)
        np.testing.assert_allclose(key_feat.numpy(), features[0].numpy(), atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(propagated.numpy(), features[2].numpy(), atol=1e-4, rtol=1e-4)
        assert np.abs(flow[0].numpy()).max() > 0.1, "the test model's flow should move features"

    def test_backends_agree(self, checkpoint, ort_backend):
        frames = real_frames(4)
        with open_backend("torch", model=checkpoint) as torch_backend:
            runs = []
            for backend in (ort_backend, torch_backend):
                runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(2))
                runs.append([runtime(image) for image in frames])
        for a, b in zip(*runs):
            assert a.key == b.key
            assert agreement(a.labels, b.labels) >= MIN_LABEL_AGREEMENT

    def test_handles_stay_valid_while_held(self, ort_backend):
        """A backend never writes into memory a handle the caller still holds (the key frame and features)."""
        frames = [cv2.resize(f, NETWORK_SIZE[::-1]) for f in real_frames(3)]
        key_feat = ort_backend.feature(ort_backend.upload(frames[0]))
        before = key_feat.numpy().copy()
        for image in frames[1:]:
            ort_backend.download(ort_backend.task(ort_backend.feature(ort_backend.upload(image))))
        np.testing.assert_array_equal(key_feat.numpy(), before)

    def test_upload_copies_the_frame(self, ort_backend):
        image = cv2.resize(real_frames(1)[0], NETWORK_SIZE[::-1])
        frame = ort_backend.upload(image)
        expected = ort_backend.download(ort_backend.task(ort_backend.feature(frame)))
        image[:] = 0  # the caller reuses its buffer
        np.testing.assert_array_equal(ort_backend.download(ort_backend.task(ort_backend.feature(frame))), expected)


@needs_data
class TestStream:
    def test_size_change_starts_a_key_frame_at_the_new_size(self, ort_backend):
        small, = real_frames(1)
        large = cv2.resize(small, (224, 176))
        runtime = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(10))
        paths = [runtime(image) for image in (small, small, large, large, small)]
        assert [p.key for p in paths] == [True, False, True, False, True]
        assert [p.labels.shape for p in paths] == [SOURCE_SIZE, SOURCE_SIZE, (176, 224), (176, 224), SOURCE_SIZE]

    def test_reset_starts_a_key_frame(self, ort_backend):
        frames = real_frames(3)
        runtime = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(10))
        first = [runtime(image).key for image in frames]
        runtime.reset()
        assert runtime.key_feat is None
        second = [runtime(image).key for image in frames]
        assert first == second == [True, False, False]

    def test_streams_share_a_backend(self, ort_backend):
        frames = real_frames(4)
        alone = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(3))
        expected = [alone(image).labels for image in frames]
        one = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(3))
        other = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(3))
        for image, labels in zip(frames, expected):
            other(image[::-1].copy())  # a different stream in between
            np.testing.assert_array_equal(one(image).labels, labels)

    def test_timing_per_path_and_summary(self, ort_backend):
        frames = real_frames(6)
        runtime = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(3))
        runtime.warmup(*SOURCE_SIZE)
        timings = [runtime(image).timing for image in frames]
        # The export has fused graphs: each path is one ONNX Runtime call, timed as one stage.
        assert set(timings[0].stages_ms) == {"preprocess", "key_path", "postprocess"}
        assert set(timings[1].stages_ms) == {"preprocess", "propagate", "postprocess"}
        assert all(ms >= 0 for t in timings for ms in t.stages_ms.values())
        summary = TimingSummary.of(timings, interval=3)
        assert summary.frames == 6 and summary.key.frames == 2 and summary.non_key.frames == 4
        assert summary.ratio == pytest.approx(
            np.mean([t.total_ms for t in timings if not t.key]) / np.mean([t.total_ms for t in timings if t.key])
        )
        assert summary.predicted_speedup == pytest.approx(3 / (1 + 2 * summary.ratio))
        assert summary.fps == pytest.approx(6e3 / sum(t.total_ms for t in timings))
        assert any("r (Eq. 5" in line for line in summary.lines())

    def test_rejects_what_is_not_an_image(self, ort_backend):
        runtime = DeepFeatureFlowRuntime(backend=ort_backend, scheduler=FixedInterval(3))
        with pytest.raises(VideoError, match="expected a uint8 H×W×3 BGR image, got float32"):
            runtime(np.zeros((64, 64, 3), np.float32))


class TestScheduler:
    def pattern(self, scheduler, sizes):
        return [scheduler.is_key(np.zeros((*size, 3), np.uint8)) for size in sizes]

    def test_fixed_interval(self):
        assert self.pattern(FixedInterval(3), [(8, 8)] * 7) == [True, False, False, True, False, False, True]

    def test_interval_one_is_per_frame(self):
        assert self.pattern(FixedInterval(1), [(8, 8)] * 4) == [True] * 4

    def test_new_size_and_reset_force_a_key_frame(self):
        scheduler = FixedInterval(4)
        assert self.pattern(scheduler, [(8, 8), (8, 8), (8, 16), (8, 16)]) == [True, False, True, False]
        scheduler.reset()
        assert self.pattern(scheduler, [(8, 16), (8, 16)]) == [True, False]

    def test_interval_restarts_after_a_forced_key_frame(self):
        assert self.pattern(FixedInterval(3), [(8, 8), (8, 8), (4, 4), (4, 4), (4, 4), (4, 4)]) == [
            True, False, True, False, False, True,
        ]

    @pytest.mark.parametrize("interval", [0, -2, 2.5])
    def test_bad_interval(self, interval):
        with pytest.raises(ValueError, match=f"integer >= 1, got {interval}"):
            FixedInterval(interval)


def test_predicted_speedup_is_eq_7():
    assert predicted_speedup(1, 0.3) == pytest.approx(1.0)  # per-frame: no speed-up whatever r
    assert predicted_speedup(10, 0.0) == pytest.approx(10.0)  # free propagation: l times faster
    assert predicted_speedup(10_000, 0.1) == pytest.approx(10.0, rel=1e-3)  # s → 1/r as l grows


class TestBadInput:
    def test_missing_export(self, tmp_path):
        with pytest.raises(ExportError, match="does not exist: create it with `dff export"):
            open_backend("onnxruntime", model=tmp_path / "absent")

    def test_not_an_export(self, tmp_path):
        with pytest.raises(ExportError, match="has no manifest.json"):
            open_backend("onnxruntime", model=tmp_path)

    def test_corrupt_manifest(self, export_dir, tmp_path):
        broken = tmp_path / "broken"
        broken.mkdir()
        for file in export_dir.iterdir():
            (broken / file.name).write_bytes(file.read_bytes())
        (broken / "manifest.json").write_text((export_dir / "manifest.json").read_text()[:200])
        with pytest.raises(ExportError, match="is corrupt"):
            open_backend("onnxruntime", model=broken)

    @pytest.mark.parametrize("damage", ["changed", "missing"])
    def test_model_file_changed_or_missing(self, export_dir, tmp_path, damage):
        broken = tmp_path / "broken"
        broken.mkdir()
        for file in export_dir.iterdir():
            (broken / file.name).write_bytes(file.read_bytes())
        if damage == "changed":
            data = bytearray((broken / "flow.onnx").read_bytes())
            data[len(data) // 2] ^= 0xFF
            (broken / "flow.onnx").write_bytes(bytes(data))
            match = r"flow\.onnx \(flow model\) does not match the SHA-256"
        else:
            (broken / "flow.onnx").unlink()
            match = r"flow\.onnx \(flow model\) is missing"
        with pytest.raises(ExportError, match=match):
            open_backend("onnxruntime", model=broken)

    def test_unknown_backend(self, export_dir):
        with pytest.raises(ConfigError, match=r"unknown backend 'onnx'; the backends are \[.*'onnxruntime'.*\]"):
            open_backend("onnx", model=export_dir)

    def test_unknown_option(self, export_dir):
        with pytest.raises(ConfigError, match=r"takes no option\(s\) \['half'\]; its options are \['provider'"):
            open_backend("onnxruntime", model=export_dir, half=True)

    def test_provider_not_installed(self, export_dir):
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("this onnxruntime has the CUDA provider")
        with pytest.raises(ConfigError, match="provider 'cuda' .* is not available .* onnxruntime-gpu"):
            open_backend("onnxruntime", model=export_dir, provider="cuda")

    def test_torch_backend_gpu_options_need_cuda(self, checkpoint):
        with pytest.raises(ConfigError, match="half and cuda_graphs need a CUDA device, got device='cpu'"):
            open_backend("torch", model=checkpoint, half=True)


def test_backends_are_found_by_name():
    assert {"onnxruntime", "torch"} <= set(backend_names())
    assert "provider" in backend_options("onnxruntime") and "cuda_graphs" in backend_options("torch")


@needs_data
def test_onnxruntime_backend_runs_without_torch(export_dir):
    """The runtime and its ONNX Runtime backend in a process where importing torch fails."""
    code = f"""
import cv2
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
capture = cv2.VideoCapture({str(VIDEOS / "vtest.avi")!r})
frames = [capture.read()[1][:120, :160].copy() for _ in range(3)]
runtime = DeepFeatureFlowRuntime(backend=open_backend("onnxruntime", model={str(export_dir)!r}), scheduler=FixedInterval(2))
print([runtime(f).key for f in frames], "torch" in sys.modules)
"""
    result = run_without_torch(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["[True,", "False,", "True]", "False"]
