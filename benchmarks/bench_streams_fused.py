"""Many streams, fused paths against stages: MultiStreamRuntime with ``fused=True`` (one batched call per path per tick)
against ``fused=False`` (one batched call per stage), same backend, same frames, taking turns tick by tick.

    nice python benchmarks/bench_streams_fused.py --export DIR [--ticks 60] [--streams 1,4,8] [--backend onnxruntime,openvino]

Every stream is a held-out synthetic video at the export's (fixed) size (seeds 10, 11, ...), key frames every 5 frames
with staggered phases. Printed per backend and S: aggregate fps of each and their ratio, and whether every label
of every tick was equal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig  # noqa: E402
from dff.manifest import load_manifest  # noqa: E402
from dff.runtime import open_backend  # noqa: E402
from dff.runtime.streams import MultiStreamRuntime, phased_schedulers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True)
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--streams", default="1,4,8")
    parser.add_argument("--backend", default="onnxruntime,openvino")
    args = parser.parse_args()
    sizes = load_manifest(args.export).sizes
    height, width = sizes.max_height, sizes.max_width
    for kind in args.backend.split(","):
        with open_backend(kind, model=args.export, threads=1) as backend:
            for count in (int(s) for s in args.streams.split(",")):
                configs = [SyntheticVideoConfig(length=args.ticks, num_classes=4, seed=10 + j, height=height, width=width) for j in range(count)]
                videos = [SyntheticVideo(config) for config in configs]
                images = [[video.image(t) for t in range(args.ticks)] for video in videos]
                runtimes = {
                    fused: MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(count, 5), fused=fused) for fused in (True, False)
                }
                for runtime in runtimes.values():
                    runtime({j: images[j][0] for j in range(count)})  # first key frames, first runs
                seconds = {fused: 0.0 for fused in runtimes}
                same = True
                for i in range(1, args.ticks):
                    results = {}
                    for fused in (True, False) if i % 2 else (False, True):
                        start = time.perf_counter()
                        results[fused] = runtimes[fused]({j: images[j][i] for j in range(count)})
                        seconds[fused] += time.perf_counter() - start
                    same &= all(np.array_equal(results[True][j].labels, results[False][j].labels) for j in range(count))
                fps = {fused: count * (args.ticks - 1) / s for fused, s in seconds.items()}
                print(f"{height}x{width} {kind:11s} S={count}: fused {fps[True]:7.1f} fps, stages {fps[False]:7.1f} fps, "
                      f"fused/stages {fps[True] / fps[False]:.3f}, labels equal {same}")


if __name__ == "__main__":
    main()
