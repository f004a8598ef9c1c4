"""Micro-benchmark: the fused warp kernel (dff.ops.warp_cuda) against grid_sample followed by a multiply.

On a GPU, for each case and dtype: the median time of both over --repeats runs after --warmup runs (timed with
torch.cuda.Event), their ratio, and the kernel's achieved bandwidth, i.e. the bytes one pass must move (feat, flow
and scale read once, the output written once) over its time, against the GPU's peak computed from torch's device
properties as 2 (double data rate) x memory clock x bus width. Without a GPU it times the grid_sample path on the
CPU and says the CUDA part was skipped.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_warp.py [--repeats 50] [--warmup 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dff.ops import warp_cuda
from dff.ops.warp import sampling_grid


@dataclass(frozen=True)
class Case:
    """One feature map: N, C and the spatial size shared by the key features and the flow."""

    name: str
    n: int
    c: int
    h: int
    w: int


#: A CPU run of the largest case takes about a second on 2 cores: fewer repeats keep the fallback short.
CPU_MAX_REPEATS = 5

CASES = (
    Case("Cityscapes 1024x2048, stride 16", n=1, c=1024, h=64, w=128),
    Case("ImageNet VID 600x1000, stride 16", n=1, c=1024, h=38, w=63),
    Case("Cityscapes, batch 4, C=256, stride 8", n=4, c=256, h=128, w=256),
)


def grid_sample_warp(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """dff.ops.warp's portable path: a normalised grid, grid_sample, then the scale field."""
    grid = sampling_grid(flow, feat.shape[2], feat.shape[3])
    return F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True) * scale


def make_inputs(case: Case, dtype: torch.dtype, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(case.n, case.c, case.h, case.w, generator=g)
    flow = torch.randn(case.n, 2, case.h, case.w, generator=g) * 4.0
    scale = torch.rand(case.n, case.c, case.h, case.w, generator=g) + 0.5
    return tuple(t.to(device=device, dtype=dtype) for t in (feat, flow, scale))


def bytes_per_pass(case: Case, dtype: torch.dtype) -> int:
    """feat, flow and scale read once and the output written once."""
    elements = case.n * case.h * case.w * (3 * case.c + 2)
    return elements * torch.empty((), dtype=dtype).element_size()


def median_cuda_seconds(fn: Callable[[], torch.Tensor], *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def median_cpu_seconds(fn: Callable[[], torch.Tensor], *, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_bandwidth(device: int) -> tuple[float, str]:
    """Bytes per second, and how it was obtained."""
    props = torch.cuda.get_device_properties(device)
    clock_hz = props.memory_clock_rate * 1e3  # reported in kHz
    bus_bytes = props.memory_bus_width / 8
    peak = 2 * clock_hz * bus_bytes
    return peak, (
        f"{props.name}: peak {peak / 1e9:.0f} GB/s = 2 x memory clock {clock_hz / 1e6:.0f} MHz x bus "
        f"{props.memory_bus_width} bit (torch.cuda.get_device_properties)"
    )


def run_gpu(args: argparse.Namespace) -> None:
    peak, source = peak_bandwidth(torch.cuda.current_device())
    print(source)
    print(f"median of {args.repeats} runs after {args.warmup} warm-up runs, torch.cuda.Event timing")
    header = ("case", "dtype", "grid_sample+mul", "fused kernel", "speed-up", "kernel GB/s", "of peak")
    print("{:40} {:8} {:>16} {:>13} {:>9} {:>12} {:>8}".format(*header))
    timing = {"warmup": args.warmup, "repeats": args.repeats}
    for case in CASES:
        for dtype in (torch.float32, torch.float16):
            feat, flow, scale = make_inputs(case, dtype, "cuda")
            grid_s = median_cuda_seconds(lambda: grid_sample_warp(feat, flow, scale), **timing)
            fused_s = median_cuda_seconds(lambda: warp_cuda.warp(feat, flow, scale), **timing)
            bandwidth = bytes_per_pass(case, dtype) / fused_s
            print(
                f"{case.name:40} {str(dtype).removeprefix('torch.'):8} "
                f"{grid_s * 1e3:13.3f} ms {fused_s * 1e3:10.3f} ms "
                f"{grid_s / fused_s:8.2f}x {bandwidth / 1e9:12.0f} {bandwidth / peak:8.1%}"
            )


def run_cpu(args: argparse.Namespace) -> None:
    repeats = min(args.repeats, CPU_MAX_REPEATS)
    threads = torch.get_num_threads()
    print(f"grid_sample + multiply on the CPU ({threads} threads), float32, median of {repeats} runs after 1 warm-up:")
    for case in CASES:
        feat, flow, scale = make_inputs(case, torch.float32, "cpu")
        seconds = median_cpu_seconds(lambda: grid_sample_warp(feat, flow, scale), warmup=1, repeats=repeats)
        rate = bytes_per_pass(case, torch.float32) / seconds
        print(f"  {case.name:40} {seconds * 1e3:9.1f} ms  ({rate / 1e9:.2f} GB/s of one-pass traffic)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed runs before timing (GPU)")
    args = parser.parse_args()
    with torch.no_grad():
        if warp_cuda.available():
            run_gpu(args)
        else:
            print(f"CUDA part skipped: {warp_cuda.unavailable_reason()}")
            run_cpu(args)


if __name__ == "__main__":
    main()
