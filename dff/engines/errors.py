"""The engine errors, and what to install when TensorRT or cuda-python is missing."""

from __future__ import annotations

from dff.errors import DFFError

#: The install hint every "TensorRT is missing" message carries: one extra per CUDA major version, because
#: TensorRT and cuda-python for CUDA 13 need an NVIDIA driver of 580 or newer.
INSTALL_HINT = (
    "install it with `pip install 'deep-feature-flow[tensorrt-cu13]'` (NVIDIA driver 580 or newer) or "
    "`pip install 'deep-feature-flow[tensorrt-cu12]'` (driver 525 or newer)"
)


class EngineError(DFFError):
    """An engine is missing, corrupt, built for another GPU or TensorRT, or cannot be built."""


class TensorRTMissingError(EngineError, ImportError):
    """TensorRT (or cuda-python, which the TensorRT backend needs) cannot be imported."""


def missing(package: str, error: ImportError, what: str) -> TensorRTMissingError:
    """The error for ``package`` failing to import while doing ``what``."""
    return TensorRTMissingError(
        f"{what} needs the Python package {package!r}, which cannot be imported ({error}); {INSTALL_HINT}"
    )
