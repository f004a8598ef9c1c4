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
    nice python benchmarks/bench_streams.py --backend onnxruntime,openvino,torch --threads 2 --streams 1,8
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
from dff.benchmark.streams import HEADER, measure_streams  # noqa: E402
from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.runtime import open_backend  # noqa: E402

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"


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
    flows, scales = sessions["flow"].run(["flow", "scale"], {"key_frame": images, "frame": images[::-1].copy()})
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


def kernel_profile(export: Path, frames: list[np.ndarray], count: int, threads: int, repeats: int = 5) -> None:
    """ONNX Runtime's own profile of the feature and flow sessions: kernel µs per frame by operator type, batch 1 vs
    batch S (where the time goes, and which operators lose per frame when the batch grows)."""
    import json
    from collections import defaultdict

    import onnxruntime as ort

    images = np.stack(frames[:count])
    for role, feeds in (("feature", lambda b: {"frame": images[:b]}),
                        ("flow", lambda b: {"key_frame": images[:b], "frame": images[::-1][:b].copy()})):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_profiling = True
        options.profile_file_prefix = str(export.parent / f"profile-{role}")
        session = ort.InferenceSession(str(export / f"{role}.onnx"), options, providers=["CPUExecutionProvider"])
        per_batch = {}
        for batch in (1, count):
            session.run(None, feeds(batch))  # first runs allocate
            per_batch[batch] = feeds(batch)
        for _ in range(repeats):
            for batch in (1, count):
                for _ in range(count // batch):
                    session.run(None, per_batch[batch])
        events = json.loads(Path(session.end_profiling()).read_text())
        runs = [e for e in events if e.get("name") == "model_run"]
        totals: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
        bounds = sorted((r["ts"], r["ts"] + r["dur"]) for r in runs)[2:]  # the two allocating runs come first
        sizes = [batch for _ in range(repeats) for batch in [1] * count + [count]]
        for event in events:
            if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
                continue
            for (low, high), batch in zip(bounds, sizes):
                if low <= event["ts"] <= high:
                    totals[event["args"]["op_name"]][batch] += event["dur"] / (repeats * count)
                    break
        print(f"kernel profile of {role}.onnx, {threads} thread(s), us per frame, batch 1 vs batch {count}:")
        for op, by_batch in sorted(totals.items(), key=lambda kv: -kv[1][1])[:8]:
            print(f"  {op:16s} {by_batch[1]:9.1f} {by_batch[count]:9.1f}  ({by_batch[1] / max(by_batch[count], 1e-9):.2f}x)")
        print(f"  {'all kernels':16s} {sum(v[1] for v in totals.values()):9.1f} {sum(v[count] for v in totals.values()):9.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEMO))
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--streams", default="1,2,4,8,16")
    parser.add_argument("--frames", type=int, default=20, help="frames per stream")
    parser.add_argument("--interval", "-l", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2, help="turns of batched and one-after-another per S")
    parser.add_argument("--threads", default="1", help="intra-op threads, a list runs each (e.g. 1,2)")
    parser.add_argument("--backend", default="onnxruntime", help="onnxruntime, openvino, torch (CPU), a list runs each")
    parser.add_argument("--ceiling", action="store_true", help="only the bare ONNX Runtime ceiling: batch 1 vs batch S per stage")
    parser.add_argument("--ceiling-repeats", type=int, default=9, help="repeats of the ceiling's timings (best of them)")
    parser.add_argument("--no-flatness", action="store_true", help="skip the tick flatness runs at S = l")
    args = parser.parse_args()
    counts = [int(c) for c in args.streams.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "export"
        size = (args.height, args.width)
        export_checkpoint(args.checkpoint, export, ExportOptions(min_size=size, max_size=size))
        pool = benchmark_frames(args.frames + max(*counts, args.interval), height=args.height, width=args.width)
        for threads in [int(t) for t in args.threads.split(",")]:
            if args.ceiling:
                ceiling(export, pool, counts, args.interval, threads, args.ceiling_repeats)
                kernel_profile(export, pool, max(counts), threads, args.ceiling_repeats)
            else:
                for name in args.backend.split(","):
                    runtimes(name, export, pool, counts, args, threads)
    return 0


def cpu_backend(name: str, export: Path, checkpoint: str, threads: int):
    """Backend ``name`` on the CPU with ``threads`` threads: the export's graphs, or the checkpoint in torch."""
    if name == "torch":
        import torch

        torch.set_num_threads(threads)  # process-wide: torch has no per-model thread count
        return open_backend("torch", model=checkpoint)
    return open_backend(name, model=export, threads=threads)


def runtimes(name: str, export: Path, pool: list[np.ndarray], counts: list[int], args: argparse.Namespace, threads: int) -> None:
    """Batched against one after another at batch 1 through the runtimes, then tick flatness at S = l."""
    with cpu_backend(name, export, args.checkpoint, threads) as backend:
        print(f"{args.checkpoint} at {args.height}x{args.width}, l = {args.interval}, {name} CPU, "
              f"{threads} thread(s), {args.frames} frames per stream, {args.repeats} repeats")
        print(HEADER)
        for row in measure_streams(backend, pool, counts, frames=args.frames, interval=args.interval, repeats=args.repeats):
            print(row.line(), flush=True)
        for phase in ("staggered", "aligned") if not args.no_flatness else ():
            (row,) = measure_streams(backend, pool, [args.interval], frames=args.frames, interval=args.interval, phase=phase,
                                     repeats=max(args.repeats, 5))
            print(f"S = l = {args.interval}, {phase:9s}: slowest tick / mean tick = {row.tick_max_over_mean:.2f} "
                  f"(p50 tick {row.p50_ms:.2f} ms)")

if __name__ == "__main__":
    sys.exit(main())
