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


#: cudaErrorInsufficientDriver and cudaErrorCallRequiresNewerDriver: the driver is older than the CUDA runtime.
DRIVER_TOO_OLD = (35, 36)
#: cudaErrorNoDevice: a driver, but no GPU it can see.
NO_DEVICE = 100


def _cuda_version(encoded: int) -> str:
    """CUDA's ``1000 * major + 10 * minor`` as "major.minor"."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def driver_too_old_message(name: str, driver_version: int, runtime_version: int) -> str:
    """The error for ``name`` failing because the driver (``cudaDriverGetVersion``) is older than the runtime."""
    if driver_version <= 0:
        return f"{name} failed: no NVIDIA driver is installed; TensorRT needs an NVIDIA GPU and its driver"
    runtime = _cuda_version(runtime_version) if runtime_version > 0 else "a newer CUDA"
    advice = (
        "install the cu12 extra instead (pip install 'deep-feature-flow[tensorrt-cu12]', TensorRT and cuda-python "
        "for CUDA 12, drivers 525 and newer) or update the driver to 580 or newer"
        if runtime_version >= 13000
        else "update the NVIDIA driver"
    )
    return (
        f"{name} failed: the NVIDIA driver is too old for this CUDA (the driver supports CUDA up to "
        f"{_cuda_version(driver_version)}, cuda-python and TensorRT here are built for CUDA {runtime}); {advice}"
    )


def call(result: tuple[Any, ...], name: str) -> Any:
    """The value(s) after the status in ``result``; CudaError if the status is not cudaSuccess."""
    status, values = result[0], result[1:]
    if status.value:  # cudaSuccess is 0 (the samples test err.value the same way)
        cudart = import_cudart()
        if status.value in DRIVER_TOO_OLD:
            raise CudaError(
                driver_too_old_message(name, _version(cudart.cudaDriverGetVersion()), _version(cudart.cudaRuntimeGetVersion()))
            )
        _, label = cudart.cudaGetErrorName(status)
        raise CudaError(f"{name} failed: {label.decode() if isinstance(label, bytes) else label} ({status.value})")
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def _version(result: tuple[Any, ...]) -> int:
    """The version from ``cudaDriverGetVersion()`` / ``cudaRuntimeGetVersion()``; 0 where the call failed."""
    status, version = result
    return 0 if status.value else int(version)


def device_count() -> int:
    """The CUDA GPUs this process sees; 0 without one; CudaError where the driver is too old for this CUDA."""
    cudart = import_cudart("counting CUDA GPUs")
    status, count = cudart.cudaGetDeviceCount()
    if status.value == NO_DEVICE:
        return 0
    call((status,), "cudaGetDeviceCount")
    return int(count)
