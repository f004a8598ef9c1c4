"""TensorRT against ONNX Runtime: each engine's outputs through Polygraphy, then Algorithm 1's timing per backend.

    python benchmarks/bench_tensorrt.py EXPORT_DIR                      # ../shared/data car video, l = 10
    python benchmarks/bench_tensorrt.py EXPORT_DIR --plugin-lib plugins/build/libdff_warp_plugin.so
    python benchmarks/bench_tensorrt.py EXPORT_DIR --source video.mp4 --frames 300 --interval 5
    python benchmarks/bench_tensorrt.py EXPORT_DIR --streams 1,2,4,8,16

1. Per engine, ``polygraphy run X.onnx --trt --onnxrt`` on random inputs at the chosen frame size
   (strongly typed, as ``dff build`` builds), within ``dff check``'s tolerance for the export's dtype
   (1e-4 float32, 3e-2 float16; Polygraphy's own default, 1e-5, is below what reordered sums give);
   the plugin warp (``warp_plugin.onnx --trt --plugins LIB_static.so``) is compared with ONNX
   Runtime's run of ``warp.onnx`` on the same inputs, since ONNX Runtime has no DFFWarp kernel.
   Polygraphy loads plugins with ``ctypes.CDLL``, which registers nothing from the ``loadLibrary``
   library ``libdff_warp_plugin.so``: it needs ``libdff_warp_plugin_static.so`` from beside it.
   Without TensorRT, ONNX Runtime alone runs each file (a smoke test).
2. Algorithm 1 on real video frames (decoded beforehand, so decoding is not timed), per-stage
   times synchronised, with every backend this machine has: ONNX Runtime on the CPU (and its CUDA and
   TensorRT providers where onnxruntime-gpu is installed), and the TensorRT backend without and with
   CUDA graphs (engines built by ``dff build`` first, reused when up to date). The warm-up frame
   captures every graph the timed frames replay; the run says how many captures fell inside the
   timing (0, or its timings are not the steady state), and the ratio of graphs over plain enqueues.
3. Many streams (``--streams 1,4,8``): engines built with ``dff build --max-batch`` the largest S,
   aggregate fps of S streams batched (one engine call per stage per tick) over the same S streams one
   after another at batch 1, with and without CUDA graphs, and how many labels agree.

Without TensorRT it says so, runs what it can, and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dff.benchmark.streams import batched, one_after_another  # noqa: E402
from dff.engines.errors import INSTALL_HINT  # noqa: E402
from dff.engines.graphs import GraphStats  # noqa: E402
from dff.engines.profiles import FrameSize, input_shapes, make_profile  # noqa: E402
from dff.export.check import TOLERANCES  # noqa: E402
from dff.manifest import FLOW, FRAME, KEY_FRAME, load_manifest  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, TimingSummary, open_backend  # noqa: E402
from dff.sources import open_source  # noqa: E402

DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "videos" / "car_traffic_small.mp4"
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
#: Value ranges of the random inputs: frames are uint8 images, flow a few feature cells; the rest Polygraphy's [0, 1].
VALUE_RANGES = {FRAME: "[0,255]", KEY_FRAME: "[0,255]", FLOW: "[-3.0,3.0]"}


def polygraphy() -> str:
    beside = Path(sys.executable).parent / "polygraphy"
    found = str(beside) if beside.is_file() else shutil.which("polygraphy")
    if found is None:
        raise SystemExit("polygraphy is not installed (pip install polygraphy)")
    return found


def polygraphy_inputs(shapes: dict[str, tuple[int, ...]]) -> list[str]:
    args = ["--input-shapes", *(f"{name}:[{','.join(map(str, shape))}]" for name, shape in shapes.items())]
    ranges = [f"{name}:{VALUE_RANGES[name]}" for name in shapes if name in VALUE_RANGES]
    return args + (["--val-range", *ranges] if ranges else [])


def run_polygraphy(label: str, args: list[str]) -> bool:
    """Run one Polygraphy command; print its verdict line (and its tail when it fails)."""
    result = subprocess.run([polygraphy(), "run", *args], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).strip().splitlines()
    verdict = next((line for line in reversed(lines) if "| Runtime:" in line), "")
    runtime = verdict.split("| Runtime:")[-1].split("|")[0].strip() if verdict else "-"
    print(f"| {label} | {'PASSED' if result.returncode == 0 else 'FAILED'} | {runtime} |")
    if result.returncode != 0:
        print("\n".join("    " + line for line in lines[-15:]))
    return result.returncode == 0


def self_registering(plugin_lib: Path) -> Path:
    """The plugin library Polygraphy can load (``ctypes.CDLL``): libdff_warp_plugin_static.so beside ``plugin_lib``."""
    if plugin_lib.name.endswith("_static.so"):
        return plugin_lib
    static = plugin_lib.with_name(plugin_lib.name.removesuffix(".so") + "_static.so")
    if not static.is_file():
        raise SystemExit(
            f"{static} does not exist: Polygraphy needs the self-registering plugin library, which CMake builds where "
            f"it finds libnvinfer (plugins/README.md, Build)"
        )
    return static


def compare_engines(export_dir: Path, size: FrameSize, plugin_lib: Path | None) -> None:
    manifest = load_manifest(export_dir)
    profile = make_profile(manifest.sizes, min=size, opt=size, max=size)
    files = manifest.files()
    tolerance = str(TOLERANCES[manifest.dtype])
    check = ["--atol", tolerance, "--rtol", tolerance]
    runners = ["--trt", "--strongly-typed", "--onnxrt", *check] if HAS_TENSORRT else ["--onnxrt"]
    print(
        f"\n## Engines, TensorRT {'against ONNX Runtime' if HAS_TENSORRT else 'absent: ONNX Runtime alone'} at {size}\n"
    )
    print("| model | result | Polygraphy run time |\n|---|---|---|")
    for role in ("feature", "flow", "warp", "task"):
        shapes = {name: opt for name, (_, opt, _) in input_shapes(files[role], profile).items()}
        run_polygraphy(files[role].file, [str(export_dir / files[role].file), *runners, *polygraphy_inputs(shapes)])
    if plugin_lib is None or not HAS_TENSORRT:
        return
    static_plugin = self_registering(plugin_lib)
    shapes = {name: opt for name, (_, opt, _) in input_shapes(files["warp"], profile).items()}
    with tempfile.TemporaryDirectory() as scratch:
        inputs, outputs = Path(scratch) / "inputs.json", Path(scratch) / "onnxrt.json"
        reference = [str(export_dir / files["warp"].file), "--onnxrt", *polygraphy_inputs(shapes)]
        if run_polygraphy(
            "warp.onnx (reference for the plugin)",
            [*reference, "--save-inputs", str(inputs), "--save-outputs", str(outputs)],
        ):
            run_polygraphy(
                f"{files['warp_plugin'].file} + {static_plugin.name}",
                [
                    str(export_dir / files["warp_plugin"].file),
                    "--trt",
                    "--strongly-typed",
                    "--plugins",
                    str(static_plugin),
                    "--load-inputs",
                    str(inputs),
                    "--load-outputs",
                    str(outputs),
                    *check,
                ],
            )


def backends(export_dir: Path, plugin_lib: Path | None) -> list[tuple[str, str, dict[str, object]]]:
    """(label, backend name, options) of every backend this machine can run."""
    import onnxruntime as ort

    chosen: list[tuple[str, str, dict[str, object]]] = [("onnxruntime cpu", "onnxruntime", {"provider": "cpu"})]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        chosen.append(("onnxruntime cuda", "onnxruntime", {"provider": "cuda"}))
    if "TensorrtExecutionProvider" in available:
        cache = export_dir / "engines" / "onnxruntime-trt"
        chosen.append(("onnxruntime tensorrt", "onnxruntime", {"provider": "tensorrt", "engine_cache_dir": cache}))
    if HAS_TENSORRT:
        from dff.engines.build import BuildOptions, build_engines

        build_engines(export_dir, BuildOptions(plugin_lib=plugin_lib))
        chosen.append(("tensorrt", "tensorrt", {"cuda_graph": False}))
        chosen.append(("tensorrt + CUDA graphs", "tensorrt", {"cuda_graph": True}))
    else:
        print(f"\nTensorRT is not installed: the TensorRT backend is skipped ({INSTALL_HINT}).")
    return chosen


def graph_totals(backend: object) -> GraphStats | None:
    """The TensorRT backend's CUDA graph counts summed over its engines; None for other backends."""
    stats = getattr(backend, "graph_stats", None)
    return None if stats is None else sum(stats().values(), GraphStats())


def time_backends(export_dir: Path, frames: list[np.ndarray], interval: int, plugin_lib: Path | None) -> None:
    results = []
    for label, name, options in backends(export_dir, plugin_lib):
        with open_backend(name, model=export_dir, **options) as backend:
            runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(interval), sync_timing=True)
            runtime.warmup(*frames[0].shape[:2])
            before = graph_totals(backend)
            timing = TimingSummary.of([runtime(frame).timing for frame in frames], interval=interval)
            after = graph_totals(backend)
        results.append((label, timing))
        print(f"\n### {label}\n" + "\n".join(timing.lines()))
        if before is not None and after is not None and after.replays + after.captures:
            captures = after.captures - before.captures
            print(
                f"CUDA graphs: {after.captures} captured ({captures} during the timed frames"
                f"{'' if captures == 0 else ': these timings include captures'}), "
                f"{after.replays - before.replays} replays timed, {after.failures} failed captures"
            )
    print(f"\n## Algorithm 1, l = {interval}, {len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]}\n")
    print("| backend | fps | key ms | non-key ms | r (Eq. 5) |\n|---|---|---|---|---|")
    for label, t in results:
        key = f"{t.key.mean_ms:.2f}" if t.key else "-"
        non_key = f"{t.non_key.mean_ms:.2f}" if t.non_key else "-"
        ratio = f"{t.ratio:.3f}" if t.ratio is not None else "-"
        print(f"| {label} | {t.fps:.1f} | {key} | {non_key} | {ratio} |")
    timings = dict(results)
    plain, graphed = timings.get("tensorrt"), timings.get("tensorrt + CUDA graphs")
    if plain and graphed and plain.non_key and graphed.non_key:
        print(f"\nCUDA graphs over plain enqueues: non-key frame time {graphed.non_key.mean_ms / plain.non_key.mean_ms:.3f}x, "
              f"fps {graphed.fps / plain.fps:.3f}x")


def time_streams(export_dir: Path, frames: list[np.ndarray], interval: int, counts: list[int], plugin_lib: Path | None) -> None:
    """Aggregate fps of S streams batched over the same streams one after another, on TensorRT engines of batch 1..max S."""
    if not HAS_TENSORRT:
        print("\nMany streams: TensorRT is not installed, skipped (bench_streams.py measures ONNX Runtime).")
        return
    from dff.engines.build import BuildOptions, build_engines

    engines = export_dir / "engines-batch"
    build_engines(export_dir, BuildOptions(out=engines, plugin_lib=plugin_lib, max_batch=max(counts)))
    size = load_manifest(export_dir).sizes.nearest(*frames[0].shape[:2])
    pool = [cv2.resize(frame, (size[1], size[0])) for frame in frames]
    length = len(pool) - max(counts)
    if length < interval:
        raise SystemExit(f"--frames {len(pool)} leaves under l = {interval} frames per stream for S = {max(counts)}")
    print(f"\n## Many streams, l = {interval}, {length} frames per stream, engines of batch 1..{max(counts)}\n")
    print("| CUDA graphs | S | batched fps | one-by-one fps | ratio | same labels |\n|---|---|---|---|---|---|")
    for cuda_graph in (False, True):
        with open_backend("tensorrt", model=export_dir, engines=engines, cuda_graph=cuda_graph) as backend:
            for count in counts:
                streams = [pool[j : j + length] for j in range(count)]  # each stream its own offset
                batched(backend, streams, interval, "staggered")  # warm-up: captures every batch size's graph
                seconds_b, _, labels_b = batched(backend, streams, interval, "staggered")
                seconds_s, labels_s = one_after_another(backend, streams, interval, "staggered")
                same = np.mean([(labels_b[i][j] == labels_s[j][i]).mean() for j in range(count) for i in range(length)])
                total = count * length
                print(f"| {'on' if cuda_graph else 'off'} | {count} | {total / seconds_b:.1f} | {total / seconds_s:.1f} | "
                      f"{seconds_s / seconds_b:.2f}x | {same:.6f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", type=Path, help="directory written by `dff export`")
    parser.add_argument(
        "--source", default=str(DEFAULT_SOURCE), help="video file or frame folder (default: %(default)s)"
    )
    parser.add_argument("--frames", type=int, default=100, help="frames to time (default: %(default)s)")
    parser.add_argument("--interval", type=int, default=10, help="key-frame interval l (default: %(default)s)")
    parser.add_argument(
        "--plugin-lib", type=Path, help="DFFWarp plugin library: the TensorRT warp engine uses the plugin"
    )
    parser.add_argument("--streams", default="1,4,8", help="stream counts S to batch (default: %(default)s)")
    args = parser.parse_args()
    counts = [int(count) for count in args.streams.split(",")]

    frames = [frame.image for _, frame in zip(range(args.frames), open_source(args.source))]
    if not frames:
        raise SystemExit(f"{args.source} gave no frames")
    manifest = load_manifest(args.export_dir)
    size = FrameSize(*manifest.sizes.nearest(*frames[0].shape[:2]))
    compare_engines(args.export_dir, size, args.plugin_lib)
    time_backends(args.export_dir, frames, args.interval, args.plugin_lib)
    time_streams(args.export_dir, frames, args.interval, counts, args.plugin_lib)
    return 0


if __name__ == "__main__":
    sys.exit(main())
