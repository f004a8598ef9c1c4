"""TensorRT backend: the engines ``dff build`` made for this GPU, on one CUDA stream, through cuda-python.

* Before an engine is deserialised its build record must name this GPU, this TensorRT and this
  export, and the engine file must match its SHA-256 (:mod:`dff.engines.records`); otherwise the
  error says to run ``dff build`` again.
* One execution context per engine. Handles are device tensors from one pool of ``cudaMalloc``
  blocks: the feature engine's output *is* the warp engine's input (``set_tensor_address`` on the
  same pointer), nothing is copied between stages, and a dropped handle's block is reused by a
  later stage, which on one stream runs after every stage that read it.
* With ``cuda_graph=True`` the non-key path (flow, warp, task) runs as CUDA graphs: per engine and
  per set of shapes and addresses, one plain enqueue, then a capture, then graph launches (the
  pattern of trtexec, NVIDIA/TensorRT ``samples/common/sampleInference.cpp``). If capture fails the
  engine falls back to plain ``execute_async_v3``.

TensorRT and CUDA calls follow NVIDIA's documented Python API and samples (``samples/python/
common_runtime.py``: cudaMalloc, cudaMemcpyAsync, cudaStreamCreate, execute_async_v3;
cuda-python's ``examples/3_CUDA_Features/simple_cuda_graphs.py``: cudaStreamBeginCapture,
cudaStreamEndCapture, cudaGraphInstantiate(graph, 0), cudaGraphLaunch). Not yet run against a
real TensorRT: it could not be installed where this was written.
"""

from __future__ import annotations

import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dff import manifest as names
from dff.engines.cudart import call, import_cudart
from dff.engines.errors import EngineError
from dff.engines.gpu import gpu_from_cuda
from dff.engines.loaders import EngineFromBytes, import_tensorrt, load_plugin_library
from dff.engines.records import ROLES, check_plugin_library, read_engine, select_record
from dff.errors import InputSizeError
from dff.manifest import SizeRange, load_manifest
from dff.runtime.adaptive_signals import FLOW_STATS, FlowStatistics
from dff.runtime.backend import Backend, FeatureHandle, FlowHandle, FrameHandle, LabelHandle

#: Engines whose enqueues become CUDA graphs: the non-key path (Algorithm 1, lines 11-12).
GRAPH_ROLES = ("flow", "warp", "task")
#: Graphs kept per engine; pooled handles cycle through a few addresses, so a few graphs cover a stream.
GRAPHS_PER_ENGINE = 8


class DevicePool:
    """``cudaMalloc`` blocks by size, reused once the handle holding one is gone."""

    def __init__(self, cudart: Any) -> None:
        self._cudart = cudart
        self._free: dict[int, list[int]] = {}
        self._all: list[int] = []

    def take(self, nbytes: int) -> int:
        blocks = self._free.get(nbytes)
        if blocks:
            return blocks.pop()
        pointer = call(self._cudart.cudaMalloc(max(nbytes, 1)), "cudaMalloc")
        self._all.append(pointer)
        return pointer

    def give_back(self, nbytes: int, pointer: int) -> None:
        if pointer in self._all:  # not after close()
            self._free.setdefault(nbytes, []).append(pointer)

    def close(self) -> None:
        for pointer in self._all:
            self._cudart.cudaFree(pointer)
        self._all.clear()
        self._free.clear()


class DeviceTensor:
    """A handle: a tensor in a pooled device block, returned to the pool when the handle is dropped."""

    __slots__ = ("pointer", "shape", "dtype", "nbytes", "__weakref__")

    def __init__(self, pool: DevicePool, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.shape = shape
        self.dtype = dtype
        self.nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        self.pointer = pool.take(self.nbytes)
        weakref.finalize(self, pool.give_back, self.nbytes, self.pointer)


class GraphCache:
    """CUDA graphs of one execution context's enqueue, keyed by the shapes and addresses they were captured with."""

    def __init__(self, cudart: Any, stream: Any, role: str) -> None:
        self._cudart = cudart
        self._stream = stream
        self._role = role
        self._graphs: OrderedDict[tuple, Any] = OrderedDict()
        self.enabled = True

    def launch(self, key: tuple) -> bool:
        """Launch the graph captured for ``key``; False if there is none (yet)."""
        graph_exec = self._graphs.get(key)
        if graph_exec is None:
            return False
        self._graphs.move_to_end(key)
        call(self._cudart.cudaGraphLaunch(graph_exec, self._stream), "cudaGraphLaunch")
        return True

    def capture(self, key: tuple, enqueue: Callable[[], bool]) -> None:
        """Capture ``enqueue`` as the graph for ``key``; call after one plain enqueue with the same shapes and
        addresses, which leaves TensorRT's one-time initialisation out of the graph (as trtexec does)."""
        if not self.enabled:
            return
        cudart = self._cudart
        call(cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        if cudart.cudaStreamBeginCapture(self._stream, mode)[0].value:
            return self._disable("cudaStreamBeginCapture failed")
        captured = enqueue()  # TensorRT returns False if an operation is not allowed under capture
        status, graph = cudart.cudaStreamEndCapture(self._stream)
        if not (captured and status.value == 0):
            if status.value == 0 and graph is not None:
                cudart.cudaGraphDestroy(graph)
            return self._disable("the engine cannot be captured")
        status, graph_exec = cudart.cudaGraphInstantiate(graph, 0)
        cudart.cudaGraphDestroy(graph)  # the executable graph does not need it (trtexec's endCapture)
        if status.value:
            return self._disable("cudaGraphInstantiate failed")
        self._graphs[key] = graph_exec
        if len(self._graphs) > GRAPHS_PER_ENGINE:
            _, oldest = self._graphs.popitem(last=False)
            cudart.cudaGraphExecDestroy(oldest)

    def _disable(self, reason: str) -> None:
        """Run without graphs from now on, after clearing the failed capture's error (trtexec's endCaptureOnError)."""
        self._cudart.cudaGetLastError()
        self.enabled = False
        print(
            f"warning: CUDA graph capture of the {self._role} engine failed ({reason}); running it without graphs",
            file=sys.stderr,
        )

    def close(self) -> None:
        for graph_exec in self._graphs.values():
            self._cudart.cudaGraphExecDestroy(graph_exec)
        self._graphs.clear()


@dataclass
class EngineRunner:
    """One engine, its execution context, and its graphs: device tensors in, device tensors out."""

    role: str
    context: Any
    inputs: tuple[str, ...]
    outputs: dict[str, np.dtype]
    graphs: GraphCache | None

    def run(self, pool: DevicePool, stream: int, tensors: dict[str, DeviceTensor]) -> dict[str, DeviceTensor]:
        context = self.context
        for name in self.inputs:
            tensor = tensors[name]
            if not context.set_input_shape(name, tensor.shape):
                raise InputSizeError(
                    f"the {self.role} engine does not take {name} of shape {tensor.shape}: its profile is narrower"
                )
            context.set_tensor_address(name, tensor.pointer)
        results = {}
        for name, dtype in self.outputs.items():
            shape = tuple(context.get_tensor_shape(name))
            if min(shape, default=0) < 0:
                raise EngineError(
                    f"the {self.role} engine cannot infer the shape of {name} from its inputs (got {shape})"
                )
            results[name] = DeviceTensor(pool, shape, dtype)
            context.set_tensor_address(name, results[name].pointer)

        key = tuple((n, t.shape, t.pointer) for n, t in (*((n, tensors[n]) for n in self.inputs), *results.items()))
        if self.graphs is None or not self.graphs.launch(key):
            if not context.execute_async_v3(stream):
                raise EngineError(
                    f"TensorRT's execute_async_v3 failed for the {self.role} engine (see TensorRT's log above)"
                )
            if self.graphs is not None:
                self.graphs.capture(key, lambda: context.execute_async_v3(stream))
        return results


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
        self._stream = call(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._pool = DevicePool(cudart)
        self._runners: dict[str, EngineRunner] = {}
        try:
            for role in ROLES:
                engine = EngineFromBytes(plans[role], source=f"{engines_dir / records[role].engine_file}")()
                tensors = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
                is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in tensors}
                self._runners[role] = EngineRunner(
                    role=role,
                    context=engine.create_execution_context(),  # holds on to its engine (pybind keep_alive)
                    inputs=tuple(n for n in tensors if is_input[n]),
                    outputs={n: np.dtype(trt.nptype(engine.get_tensor_dtype(n))) for n in tensors if not is_input[n]},
                    graphs=GraphCache(cudart, self._stream, role) if cuda_graph and role in GRAPH_ROLES else None,
                )
        except BaseException:
            self.close()
            raise

    def _run(self, role: str, tensors: dict[str, DeviceTensor]) -> dict[str, DeviceTensor]:
        # execute_async_v3 takes the stream as an integer handle (pyCore.cpp binds it as size_t), as Polygraphy passes it.
        return self._runners[role].run(self._pool, int(self._stream), tensors)

    def upload(self, image: np.ndarray) -> FrameHandle:
        image = np.ascontiguousarray(image)
        frame = DeviceTensor(self._pool, (1, *image.shape), image.dtype)
        # From pageable memory, cudaMemcpyAsync returns once the source has been staged, so the caller
        # may reuse ``image`` at once (CUDA Runtime API, "API synchronization behavior").
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        call(
            self._cudart.cudaMemcpyAsync(frame.pointer, image.ctypes.data, frame.nbytes, kind, self._stream),
            "cudaMemcpyAsync",
        )
        return frame

    def feature(self, frame: FrameHandle) -> FeatureHandle:
        return self._run("feature", {names.FRAME: frame})[names.FEAT]

    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        out = self._run("flow", {names.KEY_FRAME: key_frame, names.FRAME: frame})
        # The statistics are the flow engine's third output where flow.onnx has them (exports after issue 16).
        return (out[names.FLOW], out[names.SCALE]) + ((out[FLOW_STATS],) if FLOW_STATS in out else ())

    def flow_statistics(self, flow: FlowHandle) -> FlowStatistics | None:
        return FlowStatistics.from_array(self._to_host(flow[2], np.float32)) if len(flow) > 2 else None

    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        flow_field, scale = flow[:2]
        return self._run("warp", {names.KEY_FEAT: key_feat, names.FLOW: flow_field, names.SCALE: scale})[names.FEAT]

    def task(self, feat: FeatureHandle) -> LabelHandle:
        return self._run("task", {names.FEAT: feat})[names.LABELS]  # scores and probs go back to the pool

    def download(self, labels: LabelHandle) -> np.ndarray:
        return self._to_host(labels, np.uint8)[0]

    def _to_host(self, tensor: DeviceTensor, dtype: type[np.generic]) -> np.ndarray:
        """Wait for ``tensor`` and copy it into a new host array."""
        host = np.empty(tensor.shape, dtype=dtype)
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        call(
            self._cudart.cudaMemcpyAsync(host.ctypes.data, tensor.pointer, tensor.nbytes, kind, self._stream),
            "cudaMemcpyAsync",
        )
        self.synchronize()
        return host

    def synchronize(self) -> None:
        call(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def close(self) -> None:
        if not hasattr(self, "_runners"):
            return
        self.synchronize()
        for runner in self._runners.values():
            if runner.graphs is not None:
                runner.graphs.close()
        self._runners.clear()  # contexts before engines before memory, as TensorRT requires
        self._pool.close()
        self._cudart.cudaStreamDestroy(self._stream)
        del self._runners


BACKEND = TensorRTBackend
