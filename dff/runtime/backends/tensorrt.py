"""TensorRT backend: the engines ``dff build`` made for this GPU, on one CUDA stream, through cuda-python.

* Before an engine is deserialised its build record must name this GPU, this TensorRT and this
  export, and the engine file must match its SHA-256 (:mod:`dff.engines.records`); otherwise the
  error says to run ``dff build`` again.
* Handles are device tensors from one pool of ``cudaMalloc`` blocks (:mod:`dff.engines.memory`):
  the feature engine's output *is* the warp engine's input (``set_tensor_address`` on the same
  pointer), nothing is copied between stages, and a dropped handle's block is reused by a later
  stage, which on one stream runs after every stage that read it.
* With ``cuda_graph=True`` the flow and task engines (the non-key path's networks, Algorithm 1
  lines 11-12) run as CUDA graphs, one per set of input shapes, each on a context and buffers of
  its own (:mod:`dff.engines.runner`); the warp is one or three kernels, so a graph would save less
  than copying its feature-sized inputs into a graph's buffers costs, and it runs plainly.
  ``graph_stats()`` says what was captured and replayed; a failed capture warns and that shape
  runs plainly. A detection export's task engine always runs plainly (its NMS has data-dependent shapes).
* Batches (``*_batch``, for :mod:`dff.runtime.streams`): per-frame handles are stacked on the
  device (no copy where they already are consecutive views of one batch), run as one engine call of
  batch N (engines built with ``dff build --max-batch``; ``max_batch`` is the smallest engine's), and
  split into per-frame views of the batch's block. With graphs each batch size is a shape of its
  own, with its own graph.
* The backend may be shared by threads: every call that touches the stream holds one lock.

TensorRT and CUDA calls follow NVIDIA's documented Python API and samples (``samples/python/
common_runtime.py``: cudaMalloc, cudaMemcpyAsync, cudaStreamCreate, execute_async_v3;
cuda-python's ``examples/3_CUDA_Features/simple_cuda_graphs.py``: cudaStreamBeginCapture,
cudaStreamEndCapture, cudaGraphInstantiate(graph, 0), cudaGraphLaunch). Not yet run against a
real TensorRT: it could not be installed where this was written.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dff import manifest as names
from dff.engines.cudart import call, import_cudart
from dff.engines.errors import EngineError
from dff.engines.gpu import gpu_from_cuda
from dff.engines.graphs import GraphStats
from dff.engines.loaders import EngineFromBytes, import_tensorrt, load_plugin_library
from dff.engines.memory import DevicePool, DeviceSlice, DeviceTensor, contiguous_run, split
from dff.engines.records import ROLES, check_plugin_library, read_engine, select_record
from dff.engines.runner import EngineRunner, copy_on_device
from dff.errors import InputSizeError
from dff.manifest import SizeRange, load_manifest
from dff.runtime.adaptive_signals import FLOW_STATS, FlowStatistics
from dff.runtime.backend import Backend, FeatureHandle, FlowHandle, FrameHandle, LabelHandle
from dff.runtime.detections import Detections, task_handle, task_outputs

#: Engines run as CUDA graphs with ``cuda_graph=True``: the networks of the non-key path (Algorithm 1, lines 11-12).
GRAPH_ROLES = ("flow", "task")


def _intersect(ranges: list[SizeRange]) -> SizeRange:
    return SizeRange(
        min_height=max(r.min_height for r in ranges),
        min_width=max(r.min_width for r in ranges),
        max_height=min(r.max_height for r in ranges),
        max_width=min(r.max_width for r in ranges),
        multiple=max(r.multiple for r in ranges),
    )


class TensorRTBackend(Backend):
    """The TensorRT engines of an export directory (``model``) on CUDA device ``device``.

    ``engines``: the engines directory (default ``model/engines``, where ``dff build`` puts them);
    ``plugin_lib``: the DFFWarp plugin library, for a plugin warp engine (default: the one it was
    built with); ``cuda_graph``: run the non-key path as CUDA graphs.

    For TensorRT through ONNX Runtime instead, use the ``onnxruntime`` backend with
    ``provider="tensorrt"`` and ``engine_cache_dir``.
    """

    name = "tensorrt"
    asynchronous = True
    native_batching = True

    def __init__(
        self,
        *,
        model: str | Path,
        engines: str | Path | None = None,
        plugin_lib: str | Path | None = None,
        cuda_graph: bool = True,
        device: int = 0,
    ) -> None:
        directory = Path(model)
        manifest = load_manifest(directory)
        self.task_kind = manifest.task
        self._task_outputs = task_outputs(manifest)
        engines_dir = Path(engines) if engines is not None else directory / "engines"
        trt = import_tensorrt("the tensorrt backend")
        cudart = self._cudart = import_cudart("the tensorrt backend")
        call(cudart.cudaSetDevice(device), "cudaSetDevice")
        gpu = gpu_from_cuda(device)
        files = manifest.files()
        # Everything that can fail on the files is checked before any device memory is taken.
        records = {}
        for role in ROLES:
            accepted = {files[role].sha256} | ({files["warp_plugin"].sha256} if role == "warp" else set())
            records[role] = select_record(
                engines_dir, role, onnx_sha256s=accepted, gpu=gpu, tensorrt_version=trt.__version__
            )
            if records[role].key.plugin_sha256 is not None:
                if plugin_lib is None and not records[role].plugin_library:
                    raise EngineError(f"the {role} engine needs the DFFWarp plugin library: pass -O plugin_lib=PATH")
                library = Path(plugin_lib) if plugin_lib is not None else Path(records[role].plugin_library)
                check_plugin_library(records[role], library)
                load_plugin_library(trt, library)
        plans = {role: read_engine(engines_dir, record) for role, record in records.items()}

        self.sizes = _intersect(
            [manifest.sizes] + [r.key.profile.size_range(manifest.sizes.multiple) for r in records.values()]
        )
        self.class_names = manifest.class_names
        self.max_batch = min(r.key.profile.max_batch for r in records.values())
        self._lock = threading.RLock()
        stream = call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._stream = stream
        self._pool = DevicePool(
            allocate=lambda nbytes: call(cudart.cudaMalloc(nbytes), "cudaMalloc"),
            free=cudart.cudaFree,
            synchronize=lambda: call(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize"),
        )
        self._runners: dict[str, EngineRunner] = {}
        # Released when close() is called or, failing that, when the backend is garbage-collected; the finalizer
        # holds what it frees, never the backend itself.
        self._release = weakref.finalize(self, _release, cudart, stream, self._pool, self._runners)
        try:
            for role in ROLES:
                engine = EngineFromBytes(plans[role], source=f"{engines_dir / records[role].engine_file}")()
                self._runners[role] = EngineRunner(
                    trt=trt,
                    cudart=cudart,
                    engine=engine,  # each context holds on to its engine (pybind keep_alive)
                    role=role,
                    stream=stream,
                    pool=self._pool,
                    lock=self._lock,
                    # A detection task engine holds NMS, whose data-dependent shapes TensorRT cannot capture.
                    cuda_graph=cuda_graph and role in GRAPH_ROLES and not (role == "task" and self.task_kind == "detection"),
                )
        except BaseException:
            self.close()
            raise
        # (M, S), and their statistics where flow.onnx has them (exports before issue 16 do not).
        produced = self._runners["flow"].outputs
        self._flow_outputs = tuple(n for n in (names.FLOW, names.SCALE, FLOW_STATS) if n in produced)

    def graph_stats(self) -> dict[str, GraphStats]:
        """Per engine: CUDA graphs captured and replayed, failed captures, plain enqueues (copies, not live)."""
        with self._lock:
            return {role: GraphStats(**vars(runner.stats)) for role, runner in self._runners.items()}

    def to_host(self, handle: DeviceTensor | DeviceSlice) -> np.ndarray:
        """A host copy of any handle (features, flow, scale, labels): for inspection and tests."""
        host = np.empty(handle.shape, dtype=handle.dtype)
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self._lock:
            call(
                self._cudart.cudaMemcpyAsync(host.ctypes.data, handle.pointer, handle.nbytes, kind, self._stream),
                "cudaMemcpyAsync",
            )
            self.synchronize()
        return host

    def upload(self, image: np.ndarray) -> FrameHandle:
        image = np.ascontiguousarray(image)
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        with self._lock:
            frame = DeviceTensor(self._pool, (1, *image.shape), image.dtype)
            # From pageable memory, cudaMemcpyAsync returns once the source has been staged, so the caller
            # may reuse ``image`` at once (CUDA Runtime API, "API synchronization behavior").
            call(
                self._cudart.cudaMemcpyAsync(frame.pointer, image.ctypes.data, frame.nbytes, kind, self._stream),
                "cudaMemcpyAsync",
            )
        return frame

    def feature(self, frame: FrameHandle) -> FeatureHandle:
        return self._runners["feature"].run({names.FRAME: frame})[names.FEAT]

    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        out = self._runners["flow"].run({names.KEY_FRAME: key_frame, names.FRAME: frame}, self._flow_outputs)
        return tuple(out[name] for name in self._flow_outputs)

    def flow_statistics(self, flow: FlowHandle) -> FlowStatistics | None:
        return FlowStatistics.from_array(self.to_host(flow[2]).astype(np.float32)) if len(flow) > 2 else None

    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        flow_field, scale = flow[:2]
        inputs = {names.KEY_FEAT: key_feat, names.FLOW: flow_field, names.SCALE: scale}
        return self._runners["warp"].run(inputs, (names.FEAT,))[names.FEAT]

    def task(self, feat: FeatureHandle) -> LabelHandle:
        # Only the labels (or a detection export's four padded outputs) are wanted: with graphs, scores and probs
        # are not even copied out.
        out = self._runners["task"].run({names.FEAT: feat}, self._task_outputs)
        return task_handle([out[name] for name in self._task_outputs])

    def download(self, labels: LabelHandle) -> np.ndarray | Detections:
        if isinstance(labels, tuple):  # boxes, scores, classes, count: a few hundred bytes a frame
            return Detections.from_padded(*(self.to_host(value)[0] for value in labels))
        return self.to_host(labels)[0]

    # Batches: one engine call per stage for the frames of many streams.

    def _stack(self, items: Sequence[DeviceTensor | DeviceSlice]) -> DeviceTensor | DeviceSlice:
        """One (N, ...) device tensor of per-frame handles: the handles themselves where they already are one."""
        items = list(items)
        if len({item.shape for item in items}) > 1:
            raise InputSizeError(f"a batch needs frames of one size; got shapes {sorted({i.shape for i in items})}")
        if len(items) == 1:
            return items[0]
        batch = contiguous_run(items)
        if batch is not None:
            return batch
        with self._lock:
            batch = DeviceTensor(self._pool, (len(items), *items[0].shape[1:]), items[0].dtype)
            for index, item in enumerate(items):
                copy_on_device(self._cudart, self._stream, batch.pointer + index * item.nbytes, item)
        return batch

    def upload_batch(self, images: Sequence[np.ndarray]) -> list[FrameHandle]:
        stacked = np.ascontiguousarray(np.stack(images))
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        with self._lock:
            frames = DeviceTensor(self._pool, stacked.shape, stacked.dtype)
            call(
                self._cudart.cudaMemcpyAsync(frames.pointer, stacked.ctypes.data, frames.nbytes, kind, self._stream),
                "cudaMemcpyAsync",
            )
        return split(frames)

    def feature_batch(self, frames: Sequence[FrameHandle]) -> list[FeatureHandle]:
        return split(self._runners["feature"].run({names.FRAME: self._stack(frames)})[names.FEAT])

    def flow_batch(self, key_frames: Sequence[FrameHandle], frames: Sequence[FrameHandle]) -> list[FlowHandle]:
        inputs = {names.KEY_FRAME: self._stack(key_frames), names.FRAME: self._stack(frames)}
        out = self._runners["flow"].run(inputs, self._flow_outputs)
        return list(zip(*(split(out[name]) for name in self._flow_outputs)))

    def warp_batch(self, key_feats: Sequence[FeatureHandle], flows: Sequence[FlowHandle]) -> list[FeatureHandle]:
        inputs = {
            names.KEY_FEAT: self._stack(key_feats),
            names.FLOW: self._stack([flow[0] for flow in flows]),
            names.SCALE: self._stack([flow[1] for flow in flows]),
        }
        return split(self._runners["warp"].run(inputs, (names.FEAT,))[names.FEAT])

    def task_batch(self, feats: Sequence[FeatureHandle]) -> list[LabelHandle]:
        out = self._runners["task"].run({names.FEAT: self._stack(feats)}, self._task_outputs)
        if len(self._task_outputs) == 1:
            return split(out[names.LABELS])
        return list(zip(*(split(out[name]) for name in self._task_outputs)))

    def download_batch(self, labels: Sequence[LabelHandle]) -> list[np.ndarray] | list[Detections]:
        if isinstance(labels[0], tuple):
            return [self.download(label) for label in labels]
        host = self.to_host(self._stack(labels))
        return [host[index] for index in range(host.shape[0])]

    def synchronize(self) -> None:
        with self._lock:
            call(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        self._release()


def _release(cudart: Any, stream: Any, pool: DevicePool, runners: dict[str, EngineRunner]) -> None:
    """Wait for the stream, then graphs and contexts before engines before memory, as TensorRT requires."""
    cudart.cudaStreamSynchronize(stream)
    for runner in runners.values():
        runner.close()
    runners.clear()
    pool.close()
    cudart.cudaStreamDestroy(stream)


BACKEND = TensorRTBackend
