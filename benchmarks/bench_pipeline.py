"""Pipelining: wall-clock fps of the pipelined ``dff run`` over the inference-only fps of the same run.

Runs the shipped demo model (exported for any size, so the video keeps its own size, rounded to a
multiple of 16) over ``../shared/data/videos/car_traffic_small.mp4`` with an overlay video and a timing
log written, through the pipelined driver (``dff run VIDEO --out-dir D``: decoding, inference and writing
on their own threads), and reports frames / wall time over frames / time inside the runtime's ticks. For
comparison it then runs the one-stream serial path (``dff run VIDEO --out overlay.mp4``: decode, infer,
draw, encode in turn) on the same video, same process, and prints its wall fps.

    nice python benchmarks/bench_pipeline.py                 # -O threads=1, l = 5, overlay + log
    nice python benchmarks/bench_pipeline.py --labels        # label PNGs too
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dff.export import ExportOptions, export_checkpoint  # noqa: E402
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, RunOutputs, open_backend, run_source  # noqa: E402
from dff.runtime.pipeline import PipelineStream, run_pipeline  # noqa: E402
from dff.runtime.streams import MultiStreamRuntime, phased_schedulers  # noqa: E402
from dff.sources import open_source  # noqa: E402

DEMO = REPO / "dff" / "assets" / "demo_model.safetensors"
VIDEO = REPO.parent / "shared" / "data" / "videos" / "car_traffic_small.mp4"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=str(DEMO))
    parser.add_argument("--video", default=str(VIDEO))
    parser.add_argument("--interval", "-l", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (1 leaves a core to decode and write)")
    parser.add_argument("--labels", action="store_true", help="also write a label PNG per frame")
    parser.add_argument("--repeats", type=int, default=2, help="turns of the pipelined and the serial run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        export_checkpoint(args.checkpoint, root / "export", ExportOptions())
        with open_backend("onnxruntime", model=root / "export", threads=args.threads) as backend:
            source = open_source(args.video)
            height, width = source_size(args.video)
            DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1)).warmup(height, width)

            def outputs(name: str) -> RunOutputs:
                return RunOutputs(
                    num_classes=len(backend.class_names),
                    overlay_path=root / f"{name}.mp4",
                    labels_dir=root / f"{name}-labels" if args.labels else None,
                    log_path=root / f"{name}.jsonl",
                    fps=source.fps or 25.0,
                )

            pipelined, serial_fps = [], []
            for repeat in range(args.repeats):  # alternating which goes first, so a drifting load hits both alike
                for run in ("pipelined", "serial") if repeat % 2 == 0 else ("serial", "pipelined"):
                    if run == "pipelined":
                        runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(1, args.interval))
                        pipelined.append(run_pipeline(runtime, [PipelineStream("video", open_source(args.video), outputs=outputs(run))]))
                    else:
                        serial_fps.append(serial_run(backend, args, outputs(run)))
    frames = pipelined[0].frames
    print(f"{Path(args.video).name} ({frames} frames, {height}x{width}), demo model, l = {args.interval}, ONNX Runtime CPU "
          f"{args.threads} thread(s), overlay + log{' + label PNGs' if args.labels else ''} written, {args.repeats} turns")
    for report, serial in zip(pipelined, serial_fps):
        print(f"pipelined: wall {report.fps:.1f} fps, inference alone {report.inference_fps:.1f} fps: wall / inference = "
              f"{report.pipelining:.3f} (floor 0.9); serial one-stream path: wall {serial:.1f} fps; pipelined / serial "
              f"wall fps = {report.fps / serial:.2f}x")
    return 0


def serial_run(backend, args: argparse.Namespace, outputs: RunOutputs) -> float:
    """Wall fps of the one-stream path: decode, infer, draw and encode in turn, as one-source ``dff run --out``."""
    runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(args.interval))
    start = time.perf_counter()
    frames = 0
    with outputs as out:
        for step in run_source(runtime, open_source(args.video), warmup=False):
            out.write(step.frame, step.result)
            frames += 1
    return frames / (time.perf_counter() - start)


def source_size(video: str) -> tuple[int, int]:
    for frame in open_source(video):
        return frame.image.shape[:2]
    raise SystemExit(f"{video} gave no frames")


if __name__ == "__main__":
    sys.exit(main())
