"""Many streams on one backend: batched ticks against the same streams one after another at batch 1, and tick flatness.

Exports the shipped demo model (or any checkpoint) at a fixed size, then on the same frames, in one
process, taking turns so machine load hits every variant alike:

* throughput: aggregate fps of S streams in one MultiStreamRuntime (one batched call per stage per
  tick) over S single-stream runtimes run one after another at batch 1, S = 1, 2, 4, 8, 16;
* same answers: labels of every stream in the batch equal to those of the stream alone (fraction);
* flat ticks: at S = l = 5 the slowest steady-state tick over the mean tick, staggered and aligned
  (the first l ticks, where every stream needs its first key frame, are left out);
* the ceiling (``--ceiling``): bare ONNX Runtime sessions on the same graphs, per stage, batch S against S calls at
  batch 1 (interleaved, best of the repeats), and the same weighted by the stage mix of interval l (a key frame runs
  feature, the others flow and warp, every frame task): what batching can gain at most on this machine.

    nice python benchmarks/bench_streams.py                      # demo model at 128x256, ONNX Runtime, 1 thread
    nice python benchmarks/bench_streams.py --checkpoint ckpt.safetensors --height 256 --width 512
    nice python benchmarks/bench_streams.py --ceiling --threads 1,2      # bare ONNX Runtime, batch 1 vs S
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from dff.benchmark.frames import benchmark_frames  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, MultiStreamRuntime, open_backend, phased_schedulers  # noqa: E402

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"


def batched(backend, streams: list[list[np.ndarray]], interval: int, phase: str) -> tuple[float, list[float], list]:
    runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(len(streams), interval, phase))
    ticks, labels = [], []
    start = time.perf_counter()
    for i in range(len(streams[0])):
        t = time.perf_counter()
        out = runtime({j: s[i] for j, s in enumerate(streams)})
        ticks.append(time.perf_counter() - t)
        labels.append([out[j].labels for j in range(len(streams))])
    return time.perf_counter() - start, ticks, labels


def one_after_another(backend, streams: list[list[np.ndarray]], interval: int, phase: str) -> tuple[float, list]:
    labels = []
    start = time.perf_counter()
    for scheduler, images in zip(phased_schedulers(len(streams), interval, phase), streams):
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
        labels.append([runtime(image).labels for image in images])
    return time.perf_counter() - start, labels


def bare_sessions(export: Path, threads: int) -> dict:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return {role: ort.InferenceSession(str(export / f"{role}.onnx"), options, providers=["CPUExecutionProvider"])
            for role in ("feature", "flow", "warp", "task")}


def ceiling(export: Path, frames: list[np.ndarray], counts: list[int], interval: int, threads: int, repeats: int = 9) -> None:
    """Per stage, ms per frame of S calls at batch 1 and of one call at batch S, interleaved; best of ``repeats``."""
    sessions = bare_sessions(export, threads)
    images = np.stack(frames[: max(counts)])
    feats = sessions["feature"].run(None, {"frame": images})[0]
    flows, scales = sessions["flow"].run(None, {"key_frame": images, "frame": images[::-1].copy()})
    stages = {
        "feature": lambda a, b: sessions["feature"].run(None, {"frame": images[a:b]}),
        "flow": lambda a, b: sessions["flow"].run(None, {"key_frame": images[a:b], "frame": images[::-1][a:b]}),
        "warp": lambda a, b: sessions["warp"].run(None, {"key_feat": feats[a:b], "flow": flows[a:b], "scale": scales[a:b]}),
        "task": lambda a, b: sessions["task"].run(None, {"feat": feats[a:b]}),
    }
    share = {"feature": 1 / interval, "flow": 1 - 1 / interval, "warp": 1 - 1 / interval, "task": 1.0}
    print(f"ceiling: bare ONNX Runtime sessions, {threads} thread(s), ms per frame (best of {repeats}), batch 1 vs batch S")
    for count in counts:
        mixed = {1: 0.0, count: 0.0}
        cells = []
        for stage, run in stages.items():
            best = {1: np.inf, count: np.inf}
            run(0, count)
            for _ in range(repeats):
                for batch in (1, count):
                    start = time.perf_counter()
                    for a in range(0, count, batch):
                        run(a, a + batch)
                    best[batch] = min(best[batch], (time.perf_counter() - start) / count * 1e3)
            mixed[1] += share[stage] * best[1]
            mixed[count] += share[stage] * best[count]
            cells.append(f"{stage} {best[1]:.2f}/{best[count]:.2f} ({best[1] / best[count]:.2f}x)")
        print(f"  S = {count:>2}: " + ", ".join(cells) + f"; l = {interval} mix {mixed[1] / mixed[count]:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEMO))
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--streams", default="1,2,4,8,16")
    parser.add_argument("--frames", type=int, default=20, help="frames per stream")
    parser.add_argument("--interval", "-l", type=int, default=5)
    parser.add_argument("--threads", default="1", help="intra-op threads, a list runs each (e.g. 1,2)")
    parser.add_argument("--ceiling", action="store_true", help="only the bare ONNX Runtime ceiling: batch 1 vs batch S per stage")
    args = parser.parse_args()
    counts = [int(c) for c in args.streams.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "export"
        size = (args.height, args.width)
        export_checkpoint(args.checkpoint, export, ExportOptions(min_size=size, max_size=size))
        pool = benchmark_frames(args.frames + max(counts), height=args.height, width=args.width)
        for threads in [int(t) for t in args.threads.split(",")]:
            if args.ceiling:
                ceiling(export, pool, counts, args.interval, threads)
            else:
                runtimes(export, pool, counts, args, threads)
    return 0


def runtimes(export: Path, pool: list[np.ndarray], counts: list[int], args: argparse.Namespace, threads: int) -> None:
    """Batched against one after another at batch 1 through the runtimes, then tick flatness."""
    with open_backend("onnxruntime", model=export, threads=threads) as backend:
        DeepFeatureFlowRuntime(backend=backend, scheduler=phased_schedulers(1, 1)[0]).warmup(args.height, args.width)
        print(f"{args.checkpoint} at {args.height}x{args.width}, l = {args.interval}, ONNX Runtime CPU, "
              f"{threads} thread(s), {args.frames} frames per stream")
        print(f"{'S':>3} {'batched fps':>12} {'1-by-1 fps':>11} {'ratio':>6} {'same labels':>12}")
        for count in counts:
            streams = [pool[j : j + args.frames] for j in range(count)]  # each stream its own offset
            seconds_b, _, labels_b = batched(backend, streams, args.interval, "staggered")
            seconds_s, labels_s = one_after_another(backend, streams, args.interval, "staggered")
            same = np.mean([(labels_b[i][j] == labels_s[j][i]).mean() for j in range(count) for i in range(args.frames)])
            frames = count * args.frames
            print(f"{count:>3} {frames / seconds_b:>12.1f} {frames / seconds_s:>11.1f} "
                  f"{seconds_s / seconds_b:>5.2f}x {same:>12.6f}")
        streams = [pool[j : j + args.frames] for j in range(args.interval)]
        for phase in ("staggered", "aligned"):
            _, ticks, _ = batched(backend, streams, args.interval, phase)
            steady = np.array(ticks[args.interval :])
            print(f"S = l = {args.interval}, {phase:9s}: slowest tick / mean tick = {steady.max() / steady.mean():.2f} "
                  f"(mean {steady.mean() * 1e3:.2f} ms, {len(steady)} steady-state ticks)")


if __name__ == "__main__":
    sys.exit(main())
