"""cuda-python's CUDA runtime API, imported on first use, and a check for its ``(error, value...)`` results.

cuda-python returns every call's status first: ``err, ptr = cudart.cudaMalloc(n)``. :func:`call`
raises on a failed status and returns the rest, the way TensorRT's Python samples do it
(``cuda_call`` in ``samples/python/common_runtime.py`` of NVIDIA/TensorRT).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from dff.engines.errors import EngineError, missing


class CudaError(EngineError, RuntimeError):
    """A CUDA runtime call failed (no device, out of memory, ...); the message names the call and CUDA's error name."""


def import_cudart(what: str = "this") -> ModuleType:
    """The ``cudart`` module: ``cuda.bindings.runtime`` (cuda-python >= 12.6) or the older ``cuda.cudart``."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6 only has the old name
        except ImportError as error:
            raise missing("cuda-python", error, what) from None
    return runtime


def call(result: tuple[Any, ...], name: str) -> Any:
    """The value(s) after the status in ``result``; CudaError if the status is not cudaSuccess."""
    status, values = result[0], result[1:]
    if status.value:  # cudaSuccess is 0 (the samples test err.value the same way)
        cudart = import_cudart()
        _, label = cudart.cudaGetErrorName(status)
        raise CudaError(f"{name} failed: {label.decode() if isinstance(label, bytes) else label} ({status.value})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values
