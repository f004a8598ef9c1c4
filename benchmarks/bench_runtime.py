"""The runtime's own cost: DeepFeatureFlowRuntime on ONNX Runtime against bare sessions of the same graphs in a plain loop.

Both sides run the export's ONNX files in ONNX Runtime sessions with the same options (CPU provider,
``--threads`` intra-op threads), on the same frames, already at an allowed size, held in memory.
The bare loop is what a user would write by hand: ``session.run`` on numpy arrays, key frames
``feature`` → ``task``, other frames ``flow`` → ``warp`` → ``task``, labels to the host. The
runtime adds its checks, per-stage timing, scheduling, I/O binding and label download. Goal:
per-frame mode at >= 0.97× the bare loop's speed.

The two take turns frame by frame (who goes first alternates), so a machine whose load drifts
(this CPU is shared) slows both alike; they must return the same labels. Each repeat, a pass
over the frames, gives one ratio, bare time / runtime time; the figure is their median with the
range; a first, uncounted pass warms both up.

    dff init --feature tiny --flow tiny --num-classes 4 --out /tmp/tiny.safetensors
    dff export /tmp/tiny.safetensors --out /tmp/tiny
    nice python benchmarks/bench_runtime.py /tmp/tiny --height 256 --width 512
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dff import manifest as names  # noqa: E402
from dff.benchmark.frames import benchmark_frames  # noqa: E402
from dff.benchmark.speedup import Spread  # noqa: E402
from dff.manifest import load_manifest  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend  # noqa: E402


class BareSessions:
    """The export's feature, flow, warp and task graphs in plain sessions, called frame by frame in a plain loop."""

    def __init__(self, directory: Path, *, threads: int, interval: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        files = load_manifest(directory).files()
        self.feature, self.flow, self.warp, self.task = (
            ort.InferenceSession(str(directory / files[role].file), options, providers=["CPUExecutionProvider"])
            for role in ("feature", "flow", "warp", "task")
        )
        self.interval = interval
        self.reset()

    def reset(self) -> None:
        """Start a new stream: the next frame is a key frame."""
        self.index = 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Labels of the stream's next frame: a key frame every ``interval`` frames."""
        frame = image[None]
        if self.index % self.interval == 0:
            self.key_frame = frame
            self.key_feat = feat = self.feature.run([names.FEAT], {names.FRAME: frame})[0]
        else:
            flow, scale = self.flow.run([names.FLOW, names.SCALE], {names.KEY_FRAME: self.key_frame, names.FRAME: frame})
            feat = self.warp.run([names.FEAT], {names.KEY_FEAT: self.key_feat, names.FLOW: flow, names.SCALE: scale})[0]
        self.index += 1
        return self.task.run([names.LABELS], {names.FEAT: feat})[0][0]


def compare(export: Path, images: list[np.ndarray], *, interval: int, repeats: int, threads: int) -> dict:
    """Bare-loop time / runtime time per repeat at key-frame interval ``interval`` (1: per-frame mode).

    Within a repeat the two take turns frame by frame (who goes first alternates), so a machine
    whose load drifts slows both alike.
    """
    backend = open_backend("onnxruntime", model=export, threads=threads)
    runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(interval))
    bare = BareSessions(export, threads=threads, interval=interval)
    ratios, bare_ms, runtime_ms = [], [], []
    for repeat in range(repeats + 1):  # the first repeat warms up both sides and is not counted
        runtime.reset()
        bare.reset()
        seconds = {"bare": 0.0, "runtime": 0.0}
        for index, image in enumerate(images):
            sides = [("bare", lambda: bare(image)), ("runtime", lambda: runtime(image).labels)]
            labels = {}
            for name, step in sides if index % 2 == 0 else sides[::-1]:
                start = time.perf_counter()
                labels[name] = step()
                seconds[name] += time.perf_counter() - start
            if not np.array_equal(labels["bare"], labels["runtime"]):
                raise RuntimeError(f"frame {index}: the runtime and the bare loop disagree on the labels, so they do not run the same graphs")
        if repeat:
            ratios.append(seconds["bare"] / seconds["runtime"])
            bare_ms.append(seconds["bare"] * 1e3 / len(images))
            runtime_ms.append(seconds["runtime"] * 1e3 / len(images))
    backend.close()
    ratio = Spread.range(ratios)
    return {
        "interval": interval,
        "runtime_speed_over_bare": ratio.median,
        "range": [ratio.low, ratio.high],
        "bare_ms_per_frame": float(np.median(bare_ms)),
        "runtime_ms_per_frame": float(np.median(runtime_ms)),
        "runtime_overhead_ms_per_frame": float(np.median(np.subtract(runtime_ms, bare_ms))),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("export", type=Path, help="export directory (dff export)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--frames", type=int, default=40, help="frames per timed pass")
    parser.add_argument("--repeats", type=int, default=7, help="alternating timed passes of each side")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads of both sides")
    parser.add_argument("--intervals", type=int, nargs="+", default=[1, 10], help="key-frame intervals to compare (1: per frame)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    images = benchmark_frames(args.frames, height=args.height, width=args.width)
    rows = [compare(args.export, images, interval=l, repeats=args.repeats, threads=args.threads) for l in args.intervals]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{args.export}: {args.height}x{args.width}, {args.frames} frames, {args.repeats} repeats, {args.threads} thread(s)")
    print(f"{'l':>3} {'bare ms/frame':>14} {'runtime ms/frame':>17} {'overhead ms':>12} {'runtime speed / bare [range]':>30}")
    for row in rows:
        low, high = row["range"]
        print(
            f"{row['interval']:>3} {row['bare_ms_per_frame']:>14.3f} {row['runtime_ms_per_frame']:>17.3f} "
            f"{row['runtime_overhead_ms_per_frame']:>12.3f} {row['runtime_speed_over_bare']:>12.3f}x [{low:.3f}, {high:.3f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
