"""One TensorRT engine on one CUDA stream: device tensors in, device tensors out, plainly or as CUDA graphs.

Plain runs bind the caller's tensors (``set_input_shape``, ``set_tensor_address``) and call
``execute_async_v3``: nothing is copied, and the feature engine's output is the warp engine's input.

With graphs, each set of input shapes (a frame size, a batch size) gets its own execution context,
its own input and output buffers and one CUDA graph captured on them; a call copies its inputs into
those buffers, launches the graph and copies the outputs it wants into new tensors. A graph bakes in
every address and shape it ran with and whatever state its context held, so no address or shape
ever changes under it: it does not depend on which handles the caller holds (any number of streams
share one graph per shape) and no context runs two shapes. All contexts of one engine share one
block of activation memory (``USER_MANAGED`` allocation, where the TensorRT version has it): they
run one after another on one stream.

An execution context is not thread-safe, and work enqueued on the stream by another thread during
a capture would end up in the graph: every call holds the backend's lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from dff.engines.cudart import call
from dff.engines.errors import EngineError
from dff.engines.graphs import GraphStats, capture_graph
from dff.engines.memory import DevicePool, DeviceSlice, DeviceTensor
from dff.errors import InputSizeError

#: Graphs (each with its context and buffers) kept per engine: one per frame size and batch size in use.
GRAPHS_PER_ENGINE = 16


def numpy_dtype(trt: Any, dtype: Any, *, what: str) -> np.dtype:
    """The numpy type of a TensorRT data type; EngineError for those numpy has none of (BF16, FP8, INT4)."""
    try:
        return np.dtype(trt.nptype(dtype))
    except TypeError:
        raise EngineError(
            f"{what} has TensorRT type {dtype}, which the tensorrt backend cannot hand between stages; "
            f"export with `dff export --dtype float32` or `--dtype float16`"
        ) from None


def copy_on_device(cudart: Any, stream: Any, destination: int, source: DeviceTensor | DeviceSlice) -> None:
    """Enqueue a copy of ``source`` to device address ``destination`` on ``stream``."""
    kind = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
    call(cudart.cudaMemcpyAsync(destination, source.pointer, source.nbytes, kind, stream), "cudaMemcpyAsync")


@dataclass
class _Graph:
    """A graph with everything it captured: its context and its input and output tensors."""

    context: Any
    inputs: dict[str, DeviceTensor]
    outputs: dict[str, DeviceTensor]
    graph_exec: Any


class EngineRunner:
    """An engine's execution contexts, and its graphs when ``cuda_graph`` is set."""

    def __init__(
        self,
        *,
        trt: Any,
        cudart: Any,
        engine: Any,
        role: str,
        stream: Any,
        pool: DevicePool,
        lock: threading.RLock,
        cuda_graph: bool,
    ) -> None:
        self.role = role
        self.stats = GraphStats()
        self._trt = trt
        self._cudart = cudart
        self._engine = engine
        self._stream = stream
        self._pool = pool
        self._lock = lock
        self._cuda_graph = cuda_graph
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        is_input = {n: engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.inputs = tuple(n for n in names if is_input[n])
        self.outputs = {
            n: numpy_dtype(trt, engine.get_tensor_dtype(n), what=f"output {n!r} of the {role} engine")
            for n in names
            if not is_input[n]
        }
        self._scratch = self._shared_activation_memory() if cuda_graph else None
        self._context = self._new_context()
        #: Input shapes -> their graph, or None where the capture failed (those shapes run plainly).
        self._graphs: OrderedDict[tuple[tuple[int, ...], ...], _Graph | None] = OrderedDict()

    def _shared_activation_memory(self) -> tuple[DeviceTensor, int] | None:
        """One block for the activations of all contexts, where TensorRT lets contexts share one (10.0+ Python API)."""
        strategy = getattr(getattr(self._trt, "ExecutionContextAllocationStrategy", None), "USER_MANAGED", None)
        size = getattr(self._engine, "device_memory_size_v2", None)
        if size is None:
            size = getattr(self._engine, "device_memory_size", None)
        if strategy is None or size is None:
            return None
        return DeviceTensor(self._pool, (max(int(size), 1),), np.dtype(np.uint8)), int(size)

    def _new_context(self) -> Any:
        if self._scratch is None:
            context = self._engine.create_execution_context()
        else:
            context = self._engine.create_execution_context(self._trt.ExecutionContextAllocationStrategy.USER_MANAGED)
        if context is None:  # documented: None when it cannot be created (out of device memory, mostly)
            raise EngineError(
                f"TensorRT could not create an execution context for the {self.role} engine (out of device memory? "
                f"see TensorRT's log above)"
            )
        if self._scratch is not None:
            memory, size = self._scratch
            if hasattr(context, "set_device_memory"):  # 10.1+; the property is deprecated there
                context.set_device_memory(memory.pointer, size)
            else:
                context.device_memory = memory.pointer
        return context

    def run(self, tensors: dict[str, DeviceTensor], wanted: tuple[str, ...] | None = None) -> dict[str, DeviceTensor]:
        """The outputs ``wanted`` (default: all) of the engine on ``tensors``, enqueued on the stream."""
        wanted = tuple(self.outputs) if wanted is None else wanted
        with self._lock:
            if not self._cuda_graph:
                return self._run_plain(self._context, tensors)
            key = tuple(tensors[name].shape for name in self.inputs)
            if key not in self._graphs:
                return self._first_run(key, tensors, wanted)
            graph = self._graphs[key]
            if graph is None:
                return self._run_plain(self._context, tensors)
            self._graphs.move_to_end(key)
            for name in self.inputs:
                self._copy(graph.inputs[name], tensors[name])
            call(self._cudart.cudaGraphLaunch(graph.graph_exec, self._stream), "cudaGraphLaunch")
            self.stats.replays += 1
            return self._copy_out(graph, wanted)

    def _bind(self, context: Any, tensors: dict[str, DeviceTensor]) -> dict[str, DeviceTensor]:
        """Set ``tensors`` as the context's inputs and new tensors as its outputs; the outputs."""
        for name in self.inputs:
            tensor = tensors[name]
            if not context.set_input_shape(name, tensor.shape):
                raise InputSizeError(
                    f"the {self.role} engine does not take {name} of shape {tensor.shape}: its profile is narrower "
                    f"(run `dff build` with --min-size/--max-size covering this frame size)"
                )
        outputs = {}
        for name, dtype in self.outputs.items():
            shape = tuple(context.get_tensor_shape(name))
            if min(shape, default=0) < 0:
                raise EngineError(f"the {self.role} engine cannot infer the shape of {name} from its inputs (got {shape})")
            outputs[name] = DeviceTensor(self._pool, shape, dtype)
        for name, tensor in (*((n, tensors[n]) for n in self.inputs), *outputs.items()):
            if not context.set_tensor_address(name, tensor.pointer):
                raise EngineError(
                    f"TensorRT refused the address of tensor {name!r} of the {self.role} engine (is it an I/O "
                    f"tensor of this engine? see TensorRT's log above)"
                )
        return outputs

    def _enqueue(self, context: Any) -> None:
        # execute_async_v3 takes the stream as an integer handle (pyCore.cpp binds it as size_t), as Polygraphy passes it.
        if not context.execute_async_v3(int(self._stream)):
            raise EngineError(f"TensorRT's execute_async_v3 failed for the {self.role} engine (see TensorRT's log above)")

    def _run_plain(self, context: Any, tensors: dict[str, DeviceTensor]) -> dict[str, DeviceTensor]:
        outputs = self._bind(context, tensors)
        self._enqueue(context)
        self.stats.plain += 1
        return outputs

    def _first_run(
        self, key: tuple[tuple[int, ...], ...], tensors: dict[str, DeviceTensor], wanted: tuple[str, ...]
    ) -> dict[str, DeviceTensor]:
        """Run ``key``'s shapes plainly on a context and buffers of their own (this call's result), then capture."""
        context = self._new_context()
        inputs = {name: DeviceTensor(self._pool, tensors[name].shape, tensors[name].dtype) for name in self.inputs}
        for name in self.inputs:
            self._copy(inputs[name], tensors[name])
        outputs = self._bind(context, inputs)
        self._enqueue(context)
        self.stats.plain += 1
        graph_exec = capture_graph(
            self._cudart, self._stream, lambda: context.execute_async_v3(int(self._stream)), what=f"the {self.role} engine"
        )
        graph = _Graph(context=context, inputs=inputs, outputs=outputs, graph_exec=graph_exec)
        result = self._copy_out(graph, wanted)
        if graph_exec is None:
            self.stats.failures += 1
            self._graphs[key] = None
        else:
            self.stats.captures += 1
            self._graphs[key] = graph
            if len(self._graphs) > GRAPHS_PER_ENGINE:
                _, oldest = self._graphs.popitem(last=False)
                # Its context and buffers go with it: nothing in flight may still use them.
                call(self._cudart.cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")
                self._destroy(oldest)
        return result

    def _copy(self, destination: DeviceTensor, source: DeviceTensor | DeviceSlice) -> None:
        copy_on_device(self._cudart, self._stream, destination.pointer, source)

    def _copy_out(self, graph: _Graph, wanted: tuple[str, ...]) -> dict[str, DeviceTensor]:
        results = {}
        for name in wanted:
            static = graph.outputs[name]
            results[name] = DeviceTensor(self._pool, static.shape, static.dtype)
            self._copy(results[name], static)
        return results

    def _destroy(self, graph: _Graph | None) -> None:
        if graph is not None and graph.graph_exec is not None:
            self._cudart.cudaGraphExecDestroy(graph.graph_exec)

    def close(self) -> None:
        """Destroy the graphs and drop the contexts (before the engine and the memory, as TensorRT requires)."""
        with self._lock:
            for graph in self._graphs.values():
                self._destroy(graph)
            self._graphs.clear()
            self._context = None
            self._scratch = None
