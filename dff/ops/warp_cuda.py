"""The fused warp kernel of the TensorRT plugin, as a PyTorch CUDA extension built on first use.

``dff.ops.warp`` calls it for CUDA tensors when autograd is off: one pass over memory for Eq. (1)-(3) instead of
``grid_sample`` followed by a multiply. The sources are those of the plugin (plugins/src/warp_kernel.cu, and the
binding plugins/torch/warp_binding.cpp), so PyTorch on a GPU and TensorRT run the same kernel. Inference only:
float32 or float16, all three tensors of one dtype, on one device.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

PLUGINS_DIR = Path(__file__).resolve().parents[2] / "plugins"
SOURCES = (PLUGINS_DIR / "torch" / "warp_binding.cpp", PLUGINS_DIR / "src" / "warp_kernel.cu")
INCLUDE_DIR = PLUGINS_DIR / "include"
DTYPES = (torch.float32, torch.float16)


@dataclass(frozen=True)
class _Build:
    """The compiled extension, or why there is none."""

    module: ModuleType | None
    reason: str


@functools.cache
def _build() -> _Build:
    if not torch.cuda.is_available():
        return _Build(None, "no CUDA device is available to torch")
    missing = [str(path) for path in (*SOURCES, INCLUDE_DIR) if not path.exists()]
    if missing:
        return _Build(None, f"extension sources not found: {', '.join(missing)} (plugins/ ships with the repository)")
    try:
        from torch.utils import cpp_extension

        module = cpp_extension.load(
            name="dff_warp_cuda",
            sources=[str(path) for path in SOURCES],
            extra_include_paths=[str(INCLUDE_DIR)],
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3"],
        )
    # Building runs a compiler and loads a shared library: anything can fail, and available() must not raise.
    except Exception as error:
        reason = f"building the CUDA warp extension failed ({type(error).__name__}: {error})"
        warnings.warn(f"{reason}; dff.ops.warp falls back to grid_sample", RuntimeWarning, stacklevel=3)
        return _Build(None, reason)
    return _Build(module, "")


def available() -> bool:
    """True when a CUDA device is present and the extension builds (tried once per process; never raises)."""
    return _build().module is not None


def unavailable_reason() -> str:
    """Why ``available()`` is False ("" when it is True)."""
    return _build().reason


def supports(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor | None = None) -> bool:
    """Whether the kernel takes these tensors: CUDA, one device, one dtype among float32 and float16."""
    operands = (feat, flow) if scale is None else (feat, flow, scale)
    return feat.is_cuda and feat.dtype in DTYPES and all(
        t.device == feat.device and t.dtype == feat.dtype for t in operands
    )


def warp(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """f_i = W(f_k, M, S) (Eq. 3) with the fused kernel; ``scale=None`` means S = 1. Not differentiable.

    feat (N, C, H, W), flow (N, 2, H', W') in feature pixels, scale (N, C, H', W'); returns (N, C, H', W').
    """
    build = _build()
    if build.module is None:
        raise RuntimeError(f"the CUDA warp kernel is unavailable: {build.reason}")
    if not supports(feat, flow, scale):
        dtypes = [str(t.dtype) for t in (feat, flow, scale) if t is not None]
        devices = [str(t.device) for t in (feat, flow, scale) if t is not None]
        raise ValueError(
            "the CUDA warp kernel expects feat, flow and scale on one CUDA device with one dtype among "
            f"float32 and float16; got dtypes {dtypes} on devices {devices}"
        )
    return build.module.warp(feat.contiguous(), flow.contiguous(), None if scale is None else scale.contiguous())


def pixels_per_thread(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor | None = None) -> int:
    """Pixels per thread the kernel uses for these (contiguous) tensors: 2 with paired loads, 1 on odd planes or
    misaligned pointers. For tests that must prove which path they ran."""
    build = _build()
    if build.module is None:
        raise RuntimeError(f"the CUDA warp kernel is unavailable: {build.reason}")
    return int(build.module.pixels_per_thread(feat, flow, scale))
