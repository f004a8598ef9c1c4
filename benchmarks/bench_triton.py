"""Serving overhead: S streams through a real Triton server over gRPC against the in-process runtime, same frames.

Exports the shipped demo model (or any checkpoint) at a fixed size, writes a model repository (`dff triton`),
starts the nvidia-pytriton `tritonserver` on 127.0.0.1 (its own environment, created once), and for S = 1, 2, 4, 8
concurrent streams (one client thread each, gRPC) measures aggregate fps and per-frame latency p50/p99, then the
in-process runtime on the same frames and schedule: the S streams one after another at batch 1
(DeepFeatureFlowRuntime) and as one MultiStreamRuntime (batched ticks, as the server runs them). Served and local
variants take turns per S, so machine load hits them alike; the ratios are of figures from this one run. First it
prints the memory one stream's state takes at several frame sizes (the figure that sizes a server).

    nice python benchmarks/bench_triton.py                        # demo model at 128x256, l = 5, 1 thread
    nice python benchmarks/bench_triton.py --streams 1,4 --frames 40 --height 256 --width 512
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
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, MultiStreamRuntime, open_backend  # noqa: E402
from dff.serve.client import StreamClient  # noqa: E402
from dff.serve.environment import ensure_server_environment  # noqa: E402
from dff.serve.repository import ModelSettings, write_repository  # noqa: E402
from dff.serve.sequences import SequenceFrame, SequenceRuntime, handle_bytes  # noqa: E402
from dff.serve.server import Endpoints, TritonServer  # noqa: E402

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"


def served(grpc: str, streams: list[list[np.ndarray]]) -> tuple[float, list[float], list[list[np.ndarray]], int]:
    """S client threads, one stream each: seconds for all, per-frame latencies (ms), labels, largest server batch."""
    latencies: list[list[float]] = [[] for _ in streams]
    labels: list[list[np.ndarray]] = [[] for _ in streams]
    batches: list[int] = [0]
    clients = [StreamClient(grpc) for _ in streams]
    for client, images in zip(clients, streams):
        client.send(images[0], end=True)  # connect and warm the channel; the timed sequence starts anew
    barrier = threading.Barrier(len(streams) + 1)

    def run(j: int) -> None:
        barrier.wait()
        for i, image in enumerate(streams[j]):
            answer = clients[j].send(image, end=i == len(streams[j]) - 1)
            latencies[j].append(answer.latency_ms)
            labels[j].append(answer.labels)
            batches[0] = max(batches[0], answer.batch)

    threads = [threading.Thread(target=run, args=(j,)) for j in range(len(streams))]
    for thread in threads:
        thread.start()
    barrier.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    for client in clients:
        client.close()
    return seconds, [ms for each in latencies for ms in each], labels, batches[0]


def one_after_another(backend, streams: list[list[np.ndarray]], interval: int) -> tuple[float, list[float], list]:
    latencies, labels = [], []
    start = time.perf_counter()
    for images in streams:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(interval))
        out = []
        for image in images:
            t = time.perf_counter()
            out.append(runtime(image).labels)
            latencies.append((time.perf_counter() - t) * 1e3)
        labels.append(out)
    return time.perf_counter() - start, latencies, labels


def batched(backend, streams: list[list[np.ndarray]], interval: int) -> tuple[float, list[float]]:
    runtime = MultiStreamRuntime(backend=backend, schedulers=[FixedInterval(interval) for _ in streams])
    ticks = []
    start = time.perf_counter()
    for i in range(len(streams[0])):
        t = time.perf_counter()
        runtime({j: s[i] for j, s in enumerate(streams)})
        ticks.append((time.perf_counter() - t) * 1e3)
    return time.perf_counter() - start, ticks


def memory_per_stream(checkpoint: str, sizes: list[tuple[int, int]], scratch: Path) -> None:
    """Bytes one stream's state takes on the server at each frame size (the model's own measure), key frame and key
    features apart: how many streams fit in a server's memory."""
    export = scratch / "export-sizes"
    export_checkpoint(checkpoint, export, ExportOptions(min_size=min(sizes), max_size=max(sizes)))
    with open_backend("onnxruntime", model=export) as backend:
        print("state per stream (key frame + key features, ONNX Runtime CPU, float32):")
        for size in sizes:
            sequences = SequenceRuntime(backend=backend, interval=5, idle_timeout_s=60)
            sequences.step({1: SequenceFrame(benchmark_frames(1, height=size[0], width=size[1])[0], start=True)})
            state = sequences.streams[1]
            frame, feat = handle_bytes(state.key_frame), handle_bytes(state.key_feat)
            print(f"  {size[0]}x{size[1]}: {(frame + feat) / 2**20:.2f} MiB (key frame {frame / 2**20:.2f}, "
                  f"key features {feat / 2**20:.2f}); per GiB: {2**30 // (frame + feat)} streams")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEMO))
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--streams", default="1,2,4,8")
    parser.add_argument("--frames", type=int, default=30, help="frames per stream")
    parser.add_argument("--interval", "-l", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads, in the server and here")
    parser.add_argument("--queue-delay-us", type=int, default=2000, help="the sequence batcher's max queue delay")
    parser.add_argument("--repeats", type=int, default=3, help="turns per S; fps is the median, latency pooled")
    parser.add_argument("--memory-sizes", default="128x256,256x512,512x1024", help="frame sizes for the state per stream")
    args = parser.parse_args()
    counts = [int(c) for c in args.streams.split(",")]
    size = (args.height, args.width)
    with tempfile.TemporaryDirectory() as scratch:
        sizes = [tuple(int(v) for v in text.split("x")) for text in args.memory_sizes.split(",")]
        memory_per_stream(args.checkpoint, sizes, Path(scratch))
        export = Path(scratch) / "export"
        export_checkpoint(args.checkpoint, export, ExportOptions(min_size=size, max_size=size))
        settings = ModelSettings(
            interval=args.interval,
            options={"threads": args.threads},
            max_sequences=max(counts),
            max_queue_delay_us=args.queue_delay_us,
        )
        write_repository(export, Path(scratch) / "repo", settings)
        pool = benchmark_frames(args.frames + max(counts), height=args.height, width=args.width)
        server = TritonServer(Path(scratch) / "repo", environment=ensure_server_environment(), endpoints=Endpoints.free())
        with server.start(ready_timeout_s=120), open_backend("onnxruntime", model=export, threads=args.threads) as backend:
            DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1)).warmup(*size)
            print(f"{args.checkpoint} at {args.height}x{args.width}, l = {args.interval}, ONNX Runtime CPU, "
                  f"{args.threads} thread(s) in the server and in-process, {args.frames} frames per stream, "
                  f"queue delay {args.queue_delay_us} us, median of {args.repeats} turns")
            print(f"{'S':>2} {'served fps':>10} {'p50 ms':>7} {'p99 ms':>7} {'batch':>5} | {'local fps':>9} {'p50 ms':>7} "
                  f"{'p99 ms':>7} | {'batched fps':>11} | {'served/local':>12} {'served/batched':>14} {'same':>5}")
            for count in counts:
                streams = [pool[j : j + args.frames] for j in range(count)]  # each stream its own offset
                fps_t, fps_l, fps_b, lat_t, lat_l, batch, same = [], [], [], [], [], 0, True
                frames = count * args.frames
                for _ in range(args.repeats):  # taking turns; the median of each variant
                    seconds_t, latencies_t, labels_t, largest = served(server.endpoints.grpc, streams)
                    seconds_l, latencies_l, labels_l = one_after_another(backend, streams, args.interval)
                    seconds_b, _ = batched(backend, streams, args.interval)
                    same &= all(np.array_equal(a, b) for s_t, s_l in zip(labels_t, labels_l) for a, b in zip(s_t, s_l))
                    fps_t.append(frames / seconds_t)
                    fps_l.append(frames / seconds_l)
                    fps_b.append(frames / seconds_b)
                    lat_t += latencies_t
                    lat_l += latencies_l
                    batch = max(batch, largest)
                t, l, b = (float(np.median(v)) for v in (fps_t, fps_l, fps_b))
                print(f"{count:>2} {t:>10.1f} {np.percentile(lat_t, 50):>7.2f} {np.percentile(lat_t, 99):>7.2f} "
                      f"{batch:>5} | {l:>9.1f} {np.percentile(lat_l, 50):>7.2f} {np.percentile(lat_l, 99):>7.2f} | "
                      f"{b:>11.1f} | {t / l:>11.2f}x {t / b:>13.2f}x {str(same):>5}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
