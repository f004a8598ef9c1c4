"""Batched backend calls: the default loops and every native implementation equal the single-frame calls, item by item."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import DATA, vtest_frames

from dff.runtime import Backend, open_backend

SIZE = (128, 160)
pytestmark = pytest.mark.skipif(not (DATA / "videos").is_dir(), reason=f"real test videos not found at {DATA}")


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """``count`` consecutive frames of vtest.avi from frame ``3 * seed``, shrunk to SIZE."""
    return vtest_frames(count, SIZE, start=3 * seed)


def single_frame_labels(backend: Backend, images: list[np.ndarray]) -> list[np.ndarray]:
    """Frame 0 is the key frame of every later one: labels of key and non-key path, one call per frame."""
    key = backend.upload(images[0])
    key_feat = backend.feature(key)
    out = [backend.download(backend.task(key_feat))]
    for image in images[1:]:
        feat = backend.warp(key_feat, backend.flow(key, backend.upload(image)))
        out.append(backend.download(backend.task(feat)))
    return out


def batched_labels(backend: Backend, images: list[np.ndarray], calls: type) -> list[np.ndarray]:
    """The same through the batched methods of ``calls`` (a class: its implementation, bound to ``backend``)."""
    uploaded = calls.upload_batch(backend, images)
    key_feats = calls.feature_batch(backend, uploaded[:1])
    count = len(images) - 1
    flows = calls.flow_batch(backend, uploaded[:1] * count, uploaded[1:])
    feats = calls.warp_batch(backend, key_feats * count, flows)
    return calls.download_batch(backend, calls.task_batch(backend, key_feats + feats))


@pytest.fixture(scope="module")
def ort_backend(tiny_export):
    with open_backend("onnxruntime", model=tiny_export, threads=1) as backend:
        yield backend


def test_default_batched_methods_loop_over_single_frame_calls(ort_backend):
    """What an unbatched backend (tensorrt, openvino) inherits: the base class's loops."""
    images = frames(4)
    expected = single_frame_labels(ort_backend, images)
    got = batched_labels(ort_backend, images, Backend)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.dtype == np.uint8 and a.shape == SIZE
        np.testing.assert_array_equal(a, b)


@pytest.fixture(scope="module")
def moving_model(tmp_path_factory):
    """A tiny checkpoint whose F predicts non-zero flow and scale, and its export (64 to 512 pixels a side)."""
    from helpers import make_checkpoint, make_export

    root = tmp_path_factory.mktemp("moving")
    checkpoint = make_checkpoint(root / "model.safetensors")
    return checkpoint, make_export(checkpoint, root / "export")


def test_onnxruntime_batches_equal_single_frames_exactly(moving_model):
    _, export = moving_model
    with open_backend("onnxruntime", model=export, threads=1) as backend:
        assert backend.native_batching
        images = frames(5, seed=1)
        expected = single_frame_labels(backend, images)
        got = batched_labels(backend, images, type(backend))
        # The non-key labels must differ from the key frame's, or propagation was not exercised.
        assert (expected[3] != expected[0]).mean() > 0.01
        for a, b in zip(got, expected):
            np.testing.assert_array_equal(a, b)


def test_onnxruntime_device_stacking_graphs(moving_model):
    """The Concat/Split graphs other providers stack with, run here by the CPU provider, against numpy."""
    import onnxruntime as ort

    from dff.runtime.backends.onnxruntime import DeviceStacking

    stacking = DeviceStacking(ort.SessionOptions(), ["CPUExecutionProvider"], ("cpu", 0))
    rng = np.random.default_rng(0)
    for dtype in (np.uint8, np.float32, np.float16):
        parts = [(rng.random((1, 3, 4, 5)) * 200).astype(dtype) for _ in range(3)]
        stacked = stacking.stack([ort.OrtValue.ortvalue_from_numpy(p) for p in parts])
        np.testing.assert_array_equal(stacked.numpy(), np.concatenate(parts))
        split = stacking.split(stacked)
        assert len(split) == 3
        for value, part in zip(split, parts):
            np.testing.assert_array_equal(value.numpy(), part)


def test_torch_batches_agree_with_single_frames(moving_model, one_torch_thread):
    checkpoint, _ = moving_model
    with open_backend("torch", model=checkpoint) as backend:
        images = frames(5, seed=1)
        expected = single_frame_labels(backend, images)
        got = batched_labels(backend, images, type(backend))
        for a, b in zip(got, expected):
            # Batched oneDNN convolutions may round differently: a near-tie argmax pixel may flip.
            assert a.shape == b.shape and (a == b).mean() >= 0.9999


@pytest.mark.parametrize("backend_name", ["onnxruntime", "torch"])
def test_one_backend_shared_by_threads(moving_model, backend_name, one_torch_thread):
    """Four threads, each its own stream over one backend, single-frame and batched calls mixed: each thread's labels
    equal those of the same frames run alone (the ONNX Runtime backend used to fail here with shared bindings)."""
    import threading

    checkpoint, export = moving_model
    with open_backend(backend_name, model=checkpoint if backend_name == "torch" else export) as backend:
        streams = [frames(4, seed=10 + n) for n in range(4)]
        expected = [single_frame_labels(backend, images) for images in streams]
        results: dict[int, list] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(len(streams))

        def work(n: int) -> None:
            try:
                start.wait()
                runs = []
                for repeat in range(6):
                    run = single_frame_labels if repeat % 2 else (lambda b, i: batched_labels(b, i, type(b)))
                    runs.append(run(backend, streams[n]))
                results[n] = runs
            except BaseException as error:  # noqa: BLE001 - reported below, with the thread's stream
                errors.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(len(streams))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors, errors
        for n, runs in results.items():
            for run in runs:
                for a, b in zip(run, expected[n]):
                    assert (a == b).mean() >= (1.0 if backend_name == "onnxruntime" else 0.9999)
        assert sorted(results) == list(range(len(streams)))
