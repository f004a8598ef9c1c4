"""The paper's setting on a CUDA GPU: ResNet-101 + FlowNet at Cityscapes size, next to the FLOP lower bound.

The torch backend in float16, channels-last, every stage replayed from a CUDA graph, random
weights, 1024×2048 frames (Cityscapes, Section 5.1). Prints key-frame and non-key-frame
latency (ms, median over every frame) and the fps measured at l = 5 and l = 10 (the paper's l
for Cityscapes and ImageNet VID), each beside its lower bound from arithmetic alone:
MACs × 2 / the GPU's peak dense float16 tensor-core FLOP/s (key frame: N_feat + N_task;
non-key frame: F + N_task; W has no weight layer). The peak comes from ``PEAK_TFLOPS`` by GPU
name, or from ``--peak-tflops``. Without a CUDA GPU the script says so and exits with 0.

    python benchmarks/bench_gpu.py                      # ResNet-101 + FlowNet (simple)
    python benchmarks/bench_gpu.py --flow inception --frames 60 --repeats 3

Then many streams on the same backend (issue 12): S = 1, 2, 4, 8, 16 streams at l = 5, staggered, batched
in one MultiStreamRuntime (one CUDA graph per batch size) against the same streams one after another at
batch 1: aggregate fps, the gain, tick p50/p99, slowest/mean tick and label equality (``--streams ""``
skips it).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from dff.benchmark.complexity import checkpoint_macs  # noqa: E402
from dff.benchmark.frames import benchmark_frames  # noqa: E402
from dff.benchmark.streams import HEADER, measure_streams  # noqa: E402
from dff.benchmark.speedup import SweepSettings, measure_speedup  # noqa: E402
from dff.checkpoint import save_checkpoint  # noqa: E402
from dff.config import ModelConfig  # noqa: E402
from dff.flops import PAPER_FRAME_SIZE  # noqa: E402
from dff.models import build_model  # noqa: E402
from dff.runtime import open_backend  # noqa: E402

#: Peak dense (no sparsity) float16 tensor-core TFLOP/s by GPU name, from NVIDIA's datasheets (SXM where
#: a GPU comes in several forms). The most specific name that occurs in the device's name wins.
PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "H100 PCIe": 756.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "V100": 125.0,
    "T4": 65.0,
}
INTERVALS = (5, 10)


def peak_tflops(device_name: str) -> float | None:
    """The table's peak for ``device_name`` (longest key occurring as whole words first), or None where none does."""
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        # Whole words: an A10G is no A10, an L40S no L4.
        if re.search(rf"\b{re.escape(key)}\b", device_name):
            return PEAK_TFLOPS[key]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feature", default="resnet101", choices=("resnet50", "resnet101"))
    parser.add_argument("--flow", default="simple", choices=("simple", "half", "inception"))
    parser.add_argument("--height", type=int, default=PAPER_FRAME_SIZE[0])
    parser.add_argument("--width", type=int, default=PAPER_FRAME_SIZE[1])
    parser.add_argument("--frames", type=int, default=40, help="frames per timed run (at least 10)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak dense float16 TFLOP/s (default: from PEAK_TFLOPS)")
    parser.add_argument("--streams", default="1,2,4,8,16", help="stream counts S for the many-streams part (\"\" skips it)")
    parser.add_argument("--stream-frames", type=int, default=20, help="frames per stream in the many-streams part")
    args = parser.parse_args()
    counts = [int(count) for count in args.streams.split(",") if count.strip()]
    if not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU is visible to torch here; nothing to measure (run it on a CUDA machine)")
        return 0
    device_name = torch.cuda.get_device_name()
    peak = args.peak_tflops or peak_tflops(device_name)
    config = ModelConfig(feature=args.feature, flow=args.flow, num_classes=19)
    with tempfile.TemporaryDirectory() as scratch:
        torch.manual_seed(0)
        checkpoint = save_checkpoint(Path(scratch) / "model.safetensors", build_model(config), config)
        macs = checkpoint_macs(checkpoint, height=args.height, width=args.width)
        images = benchmark_frames(args.frames, height=args.height, width=args.width)
        settings = SweepSettings(intervals=(1, *INTERVALS), frames=args.frames, repeats=args.repeats)
        with open_backend("torch", model=checkpoint, device="cuda", half=True, cuda_graphs=True) as backend:
            result = measure_speedup(backend, images, settings, macs=macs, description={"gpu": device_name})
            if counts:  # stream j reads the pool from offset j, so the streams differ
                pool = benchmark_frames(args.stream_frames + max(counts) - 1, height=args.height, width=args.width)
                stream_rows = measure_streams(backend, pool, counts, frames=args.stream_frames, interval=5, repeats=args.repeats)
    print(f"{device_name}: {args.feature} + FlowNet {args.flow}, float16, channels-last, CUDA graphs, random weights, "
          f"{args.height}x{args.width}, {args.frames} frames x {args.repeats} repeats")
    print(f"GMACs per frame: N_feat {macs.feature / 1e9:.1f}, F {macs.flow / 1e9:.1f}, N_task {macs.task / 1e9:.2f}; "
          f"r FLOPs (Eq. 6) {macs.r_flops:.4f}, r measured (Eq. 5) {result.r_measured.median:.4f}")
    key_ms = result.stages_ms["key"]["total"].median
    non_key_ms = result.stages_ms["non-key"]["total"].median
    if peak is None:
        print(f"no peak FLOP/s known for {device_name!r}: pass --peak-tflops for the lower bound")
        key_bound = non_key_bound = None
    else:
        # MACs × 2 FLOPs / (TFLOP/s × 1e12) s → ms.
        key_bound = 2 * (macs.feature + macs.task) / (peak * 1e12) * 1e3
        non_key_bound = 2 * (macs.flow + macs.task) / (peak * 1e12) * 1e3
        print(f"lower bound at {peak:.0f} TFLOP/s (dense float16): arithmetic alone, no memory traffic")

    def beside(measured: float, bound: float | None, unit: str) -> str:
        return f"{measured:9.2f} {unit}" + ("" if bound is None else f"  (bound {bound:.2f} {unit}, {bound / measured:.0%} of it)")

    print(f"key frame      {beside(key_ms, key_bound, 'ms')}")
    print(f"non-key frame  {beside(non_key_ms, non_key_bound, 'ms')}")
    print(f"per frame      {result.baseline_fps:9.2f} fps")
    for l in INTERVALS:
        bound = None if key_bound is None else l / (key_bound + (l - 1) * non_key_bound) * 1e3
        # Bound and measurement are both fps here: the measurement reaches bound_fps only when it is its upper bound.
        fps = result.row(l).fps
        text = f"{fps:9.2f} fps" + ("" if bound is None else f"  (upper bound {bound:.1f} fps, {fps / bound:.0%} of it)")
        print(f"l = {l:<2}         {text}  measured s {result.row(l).measured_speedup.median:.2f}x, Eq. 7 {result.row(l).predicted_speedup:.2f}x")
    if counts:
        print(f"\nmany streams, l = 5 staggered, {args.stream_frames} frames per stream, batched vs one after another at batch 1:")
        print(HEADER)
        for row in stream_rows:
            print(row.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
