"""Which GPU this is: the part of an engine's identity that TensorRT ties it to.

A TensorRT engine runs only on GPUs of the compute capability it was built for, and its tactics
were timed on one GPU model, so both go into the cache key and the build record. The identity comes
from cuda-python's ``cudaGetDeviceProperties`` where cuda-python is installed, else from
``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from dff.engines.errors import EngineError, TensorRTMissingError


@dataclass(frozen=True)
class GpuIdentity:
    """A GPU model: its name as CUDA reports it ("NVIDIA H200") and its compute capability ("9.0")."""

    name: str
    compute_capability: str

    def __post_init__(self) -> None:
        if not (self.name and re.fullmatch(r"\d+\.\d+", self.compute_capability)):
            raise ValueError(
                f"a GPU identity needs a name and a compute capability like '8.6'; "
                f"got name={self.name!r}, compute_capability={self.compute_capability!r}"
            )

    def __str__(self) -> str:
        return f"{self.name} (compute capability {self.compute_capability})"


def parse_nvidia_smi(text: str, device: int = 0) -> GpuIdentity:
    """The identity of GPU ``device`` from ``nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader`` output."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not (0 <= device < len(lines)):
        raise EngineError(f"nvidia-smi lists {len(lines)} GPU(s), so there is no GPU {device}")
    name, _, capability = lines[device].rpartition(",")
    try:
        return GpuIdentity(name=name.strip(), compute_capability=capability.strip())
    except ValueError:
        raise EngineError(
            f"cannot read nvidia-smi's line {lines[device]!r}: expected 'NAME, MAJOR.MINOR' "
            f"(compute_cap needs nvidia-smi from driver 510 or newer)"
        ) from None


def gpu_from_cuda(device: int = 0) -> GpuIdentity:
    """The identity of CUDA device ``device`` through cuda-python's ``cudaGetDeviceProperties``."""
    from dff.engines.cudart import call, import_cudart

    cudart = import_cudart("reading the GPU's identity")
    properties = call(cudart.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    # ``name`` is the C struct's char[256]: bytes, NUL-padded.
    name = bytes(properties.name).split(b"\0", 1)[0].decode(errors="replace").strip()
    return GpuIdentity(name=name, compute_capability=f"{properties.major}.{properties.minor}")


def gpu_from_nvidia_smi(device: int = 0) -> GpuIdentity:
    """The identity of CUDA device ``device`` as ``nvidia-smi`` reports it.

    nvidia-smi numbers all GPUs, CUDA only the visible ones: CUDA_VISIBLE_DEVICES (indices or UUIDs)
    maps one onto the other.
    """
    if shutil.which("nvidia-smi") is None:
        raise EngineError(
            "no GPU found: neither cuda-python nor nvidia-smi is available; TensorRT engines need an NVIDIA GPU"
        )
    visible = [entry.strip() for entry in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if entry.strip()]
    selected = visible[device] if device < len(visible) else str(device)
    command = ["nvidia-smi", f"--id={selected}", "--query-gpu=name,compute_cap", "--format=csv,noheader"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EngineError(
            f"`{' '.join(command)}` failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}"
        )
    return parse_nvidia_smi(result.stdout)


def current_gpu(device: int = 0) -> GpuIdentity:
    """This machine's GPU ``device``: through cuda-python when it is installed, else through nvidia-smi."""
    try:
        return gpu_from_cuda(device)
    except TensorRTMissingError:
        return gpu_from_nvidia_smi(device)
