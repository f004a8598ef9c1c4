"""OpenVINO (f32 and bf16) against ONNX Runtime, per stage, on the shipped demo model and its synthetic video.

    nice .venv/bin/python benchmarks/bench_openvino.py [--frames 60] [-l 5] [--threads 1] [--height 256 --width 320]

One process, one thread per engine; the three runtimes take turns frame by frame so that machine
load hits them alike. Prints the mean time per stage and the ratios OpenVINO f32 / ONNX Runtime and
bf16 / f32, then label agreement and mIoU against the synthetic video's exact labels.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from dff.metrics import SegmentationScore
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from demo_clip import add_clip_arguments, export_demo, synthetic_clip

STAGES = ("preprocess", "feature", "flow", "warp", "task", "postprocess")
ENGINES = {"onnxruntime": ("onnxruntime", {}), "openvino f32": ("openvino", {}), "openvino bf16": ("openvino", {"precision": "bf16"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_clip_arguments(parser)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        export = export_demo(Path(tmp))
        clip = synthetic_clip(args)
        backends = {name: open_backend(kind, model=export, threads=args.threads, **opts) for name, (kind, opts) in ENGINES.items()}
        runtimes = {name: DeepFeatureFlowRuntime(backend=b, scheduler=FixedInterval(args.key_interval)) for name, b in backends.items()}
        for runtime in runtimes.values():
            runtime.warmup(*clip[0][0].shape[:2])
        stages = {name: {stage: [] for stage in STAGES} for name in runtimes}
        labels: dict[str, list[np.ndarray]] = {name: [] for name in runtimes}
        for image, _ in clip:
            for name, runtime in runtimes.items():
                result = runtime(image)
                labels[name].append(result.labels)
                for stage, ms in result.timing.stages_ms.items():
                    stages[name][stage].append(ms)

    height, width = clip[0][0].shape[:2]
    print(f"demo model, synthetic video {args.frames} frames {height}x{width}, l = {args.key_interval}, {args.threads} thread(s)")
    means = {name: {s: float(np.mean(v)) if v else float("nan") for s, v in per.items()} for name, per in stages.items()}
    print(f"{'stage (mean ms)':16s}" + "".join(f"{n:>15s}" for n in runtimes) + f"{'OV f32/ORT':>12s}{'bf16/f32':>10s}")
    for stage in STAGES:
        ort, f32, bf16 = (means[n][stage] for n in runtimes)
        print(f"{stage:16s}{ort:15.2f}{f32:15.2f}{bf16:15.2f}{f32 / ort:12.2f}{bf16 / f32:10.2f}")
    frame_totals = {n: sum(np.sum(v) for v in stages[n].values()) / args.frames for n in runtimes}
    ort, f32, bf16 = (frame_totals[n] for n in runtimes)
    print(f"{'per frame':16s}{ort:15.2f}{f32:15.2f}{bf16:15.2f}{f32 / ort:12.2f}{bf16 / f32:10.2f}")

    def agreement(a: str, b: str) -> float:
        return float(np.mean([(x == y).mean() for x, y in zip(labels[a], labels[b])]))

    print(f"label agreement: OV f32 vs ORT {100 * agreement('openvino f32', 'onnxruntime'):.3f}%, "
          f"bf16 vs f32 {100 * agreement('openvino bf16', 'openvino f32'):.3f}%")
    for name in runtimes:
        score = SegmentationScore(num_classes=4)
        for prediction, (_, truth) in zip(labels[name], clip):
            score.update(prediction, truth)
        print(f"mIoU {name}: {100 * score.miou:.2f}")


if __name__ == "__main__":
    main()
