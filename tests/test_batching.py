"""Batched backend calls: the default loops and every native implementation equal the single-frame calls, item by item."""

from __future__ import annotations

import numpy as np
import pytest

from dff.runtime import Backend, open_backend

SIZE = (64, 96)


def frames(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    # Shifted copies: frames of one scene, so that the flow between them is not noise alone.
    return [np.ascontiguousarray(np.roll(base, 3 * i, axis=1)) for i in range(count)]


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
