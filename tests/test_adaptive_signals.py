"""F's statistics for adaptive key frames: the op against numpy, every backend on a real export, old exports, thumbnails."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from helpers import make_checkpoint, make_export, vtest_frames

from dff.export import ExportOptions, export_checkpoint
from dff.manifest import load_manifest
from dff.ops.flow_statistics import flow_statistics
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.runtime.adaptive_signals import FLOW_STATS, FlowStatistics, cut_score, thumbnail, thumbnail_distance

SIZE = (128, 160)


def numpy_statistics(flow: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The four statistics written out per location (flow (2, h, w), scale (C, h, w))."""
    h, w = flow.shape[1:]
    magnitude = np.hypot(flow[0], flow[1]).astype(np.float64)
    y, x = np.mgrid[0:h, 0:w]
    rx, ry = x + flow[0], y + flow[1]
    outside = (rx < -0.5) | (rx > w - 0.5) | (ry < -0.5) | (ry > h - 0.5)
    return np.array([magnitude.mean(), magnitude.std(), outside.mean(), np.abs(scale - 1).mean()])


class TestFlowStatistics:
    def test_equals_numpy(self):
        generator = torch.Generator().manual_seed(0)
        flow = torch.randn(3, 2, 5, 7, generator=generator) * 2
        flow[0] = 0  # no motion: nothing outside, zero magnitude and spread
        flow[1, :, 2, 3] = torch.tensor([-3.5, 0.0])  # x = -0.5 exactly: inside (nearest to column 0)
        scale = 1 + 0.1 * torch.randn(3, 4, 5, 7, generator=generator)
        got = flow_statistics(flow, scale).numpy()
        assert got.shape == (3, 4) and got.dtype == np.float32
        for n in range(3):
            np.testing.assert_allclose(got[n], numpy_statistics(flow[n].numpy(), scale[n].numpy()), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got[0, :3], [0, 0, 0])

    def test_float16_inputs_give_float32(self):
        flow, scale = torch.ones(1, 2, 4, 4, dtype=torch.float16), torch.ones(1, 3, 4, 4, dtype=torch.float16)
        got = flow_statistics(flow, scale)
        assert got.dtype == torch.float32
        # Everything reads one cell right and down: the last column and the last row read outside (7 of 16).
        np.testing.assert_allclose(got[0].numpy(), [np.sqrt(2), 0, 7 / 16, 0], atol=1e-6)
        half = flow_statistics(flow * 0.5, scale)  # half a cell out at the rim: still nearest to a cell
        assert half[0, 2] == 0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("model") / "tiny.safetensors")


@pytest.fixture(scope="module")
def export_dir(checkpoint, tmp_path_factory):
    return make_export(checkpoint, tmp_path_factory.mktemp("export") / "new")


@pytest.fixture(scope="module")
def old_export(checkpoint, tmp_path_factory):
    """The graphs exports had before the statistics (flow.onnx with M and S only)."""
    out = tmp_path_factory.mktemp("export") / "old"
    export_checkpoint(checkpoint, out, ExportOptions(min_size=(64, 64), max_size=(512, 512), flow_statistics=False))
    return out


@functools.cache
def frames() -> list[np.ndarray]:
    return vtest_frames(6, SIZE)


class TestBackends:
    def test_manifest_declares_the_output(self, export_dir, old_export):
        outputs = [spec.name for spec in load_manifest(export_dir).models.flow.outputs]
        assert outputs == ["flow", "scale", FLOW_STATS]
        assert [spec.name for spec in load_manifest(old_export).models.flow.outputs] == ["flow", "scale"]

    def test_equal_between_backends_and_to_the_fields(self, export_dir, checkpoint):
        key, current = frames()[0], frames()[5]
        found = {}
        for name, model in (("onnxruntime", export_dir), ("openvino", export_dir), ("torch", checkpoint)):
            with open_backend(name, model=model) as backend:
                flow = backend.flow(backend.upload(key), backend.upload(current))
                statistics = backend.flow_statistics(flow)
                assert isinstance(statistics, FlowStatistics)
                found[name] = np.array(statistics.as_tuple())
                if name == "onnxruntime":  # the fields themselves, downloaded only here, for the reference
                    expected = numpy_statistics(flow[0].numpy()[0], flow[1].numpy()[0])
        assert found["onnxruntime"][0] > 0.05  # F of this model moves things: the statistics are not trivially 0
        for name, values in found.items():
            np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-5, err_msg=name)

    def test_batched_statistics_equal_single(self, export_dir):
        images = frames()
        with open_backend("onnxruntime", model=export_dir) as backend:
            handles = backend.upload_batch(images[:3])
            batch = backend.flow_batch([handles[0]] * 3, handles)
            single = [backend.flow(handles[0], h) for h in handles]
            for b, s in zip(batch, single):
                np.testing.assert_allclose(
                    backend.flow_statistics(b).as_tuple(), backend.flow_statistics(s).as_tuple(), rtol=1e-5, atol=1e-6
                )

    @pytest.mark.parametrize("backend_name", ["onnxruntime", "openvino"])
    def test_old_exports_still_run(self, old_export, export_dir, backend_name):
        """An export without the statistics runs as before (None for them) and gives the new export's labels."""
        labels = {}
        for directory in (old_export, export_dir):
            with open_backend(backend_name, model=directory) as backend:
                runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(3))
                labels[directory] = [runtime(image).labels for image in frames()]
                flow = backend.flow(backend.upload(frames()[0]), backend.upload(frames()[1]))
                assert (backend.flow_statistics(flow) is None) == (directory == old_export)
        for old, new in zip(labels[old_export], labels[export_dir]):
            np.testing.assert_array_equal(old, new)


class TestThumbnails:
    def test_cut_scores_above_motion(self):
        video = vtest_frames(12, SIZE)
        other = np.ascontiguousarray(video[0][::-1, ::-1])  # the same colours rearranged: a cut all the same
        thumbs = [thumbnail(image) for image in video]
        assert thumbs[0].histogram.shape == (16, 16, 4) and thumbs[0].histogram.sum() == 48 * 48 and thumbs[0].grey is None
        motion = max(cut_score(a, b) for a, b in zip(thumbs[1:], thumbs))
        assert cut_score(thumbnail(other), thumbs[-1]) > 3 * motion
        assert cut_score(thumbs[0], thumbs[0]) == 0 and cut_score(thumbnail(np.zeros_like(other)), thumbnail(np.full_like(other, 255))) == 1

    def test_brightness_change_is_not_a_difference(self):
        image = vtest_frames(1, SIZE)[0]
        brighter = np.clip(image.astype(np.int16) + 30, 0, 255).astype(np.uint8)
        assert thumbnail_distance(thumbnail(image, grey=True), thumbnail(brighter, grey=True)) < 2.0
        with pytest.raises(ValueError, match="grey=True"):
            thumbnail_distance(thumbnail(image), thumbnail(brighter))
