"""Memory over a long many-stream run: RSS flat over 10,000 frames per stream at S = 8 (growth under 5%).

S streams of real frames (vtest.avi, cycled, each stream from its own offset) through the pipelined
driver (decoding threads, bounded queues, batched inference, writer threads writing an overlay video
and a timing log per stream), the shipped demo model exported at a small fixed size so the run is
short. The resident set size is sampled twice a second; growth is the mean of the last tenth of the
samples over the mean of the tenth after the warm-up tenth.

    nice python benchmarks/bench_streams_memory.py                 # S = 8, 10,000 frames per stream, 64x128
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from dff.benchmark.frames import benchmark_frames  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.runtime import RunOutputs, open_backend  # noqa: E402
from dff.runtime.pipeline import PipelineStream, run_pipeline  # noqa: E402
from dff.runtime.streams import MultiStreamRuntime, phased_schedulers  # noqa: E402
from dff.sources import ArrayFrames  # noqa: E402

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"
VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--frames", type=int, default=10_000, help="frames per stream")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--interval", "-l", type=int, default=5)
    args = parser.parse_args()
    pool = benchmark_frames(100, height=args.height, width=args.width, source=str(VIDEO))
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append(rss_mib())

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        size = (args.height, args.width)
        export_checkpoint(DEMO, root / "export", ExportOptions(min_size=size, max_size=size))
        with open_backend("onnxruntime", model=root / "export", threads=1) as backend:
            streams = [
                PipelineStream(
                    name=f"s{j}",
                    source=ArrayFrames(pool[(i + 7 * j) % len(pool)] for i in range(args.frames)),
                    outputs=RunOutputs(
                        num_classes=len(backend.class_names), overlay_path=root / f"s{j}.mp4", log_path=root / f"s{j}.jsonl"
                    ),
                )
                for j in range(args.streams)
            ]
            runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(args.streams, args.interval))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            start = time.perf_counter()
            report = run_pipeline(runtime, streams)
            done.set()
            sampler.join()
    tenth = max(1, len(samples) // 10)
    early, late = np.mean(samples[tenth : 2 * tenth]), np.mean(samples[-tenth:])
    print(f"S = {args.streams}, {args.frames} frames per stream at {args.height}x{args.width}, l = {args.interval}: "
          f"{report.frames} frames in {time.perf_counter() - start:.0f} s ({report.fps:.0f} fps), {len(samples)} RSS samples")
    print(f"RSS: after warm-up {early:.1f} MiB, at the end {late:.1f} MiB, max {max(samples):.1f} MiB: growth "
          f"{(late / early - 1) * 100:+.2f}% (floor: under 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
