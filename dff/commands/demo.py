"""``dff demo``: the packaged model, exported and run with deep feature flow and per-frame on a labelled video.

On a machine with no GPU and no downloads: the small trained model that ships in ``dff/assets``
is exported to ONNX, both ways of running it (Algorithm 1 with one key frame every l frames, and
every frame a key frame) run in ONNX Runtime on the same synthetic video, and the command prints
their speed and their accuracy against the video's exact labels, then writes an overlay video and
a plot. Then the fast path: the export quantized to int8 (calibrated on other frames) and the
bf16 and int8 configurations of ONNX Runtime and OpenVINO timed against float32 ONNX Runtime on the
same frames, each with its mIoU, and the fastest one named (``--no-fast-path`` skips it).
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dff.runtime import FrameTiming

DEMO_MODEL = Path(__file__).resolve().parents[1] / "assets" / "demo_model.safetensors"
#: The synthetic video's default frame size (H, W). At 128×128 the tiny model's stages are bound by the cost of each
#: call and DFF gains 1.7×; at 320×400 per-call costs matter less (measured r 0.27-0.29, 2.1-2.4× at l = 5 on a quiet
#: 2-core CPU, benchmarks/README.md) and the demo stays short.
DEMO_SIZE = (320, 400)
#: The demo model was trained on 128×128 frames: on larger ones the synthetic objects keep that size in pixels
#: (object_scale), the scene the model knows. Objects grown with the frame made its per-frame labels 10 points worse
#: than DFF's at 320×400 (69.3 against 80.1 mIoU), which says nothing about deep feature flow.
OBJECT_SCALE = 128


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="export the packaged model and compare deep feature flow with per-frame evaluation on a video"
    )
    parser.add_argument("--checkpoint", help=f"model to use instead of the packaged one ({DEMO_MODEL.name})")
    parser.add_argument("--video", help="a video file or folder of frames instead of the synthetic video (no accuracy then)")
    parser.add_argument("--out", default="dff-demo", help="folder for the export, overlay video, plot and timings (default: dff-demo)")
    parser.add_argument("--key-interval", "-l", type=int, default=5, help="one key frame every l frames (default 5)")
    parser.add_argument("--frames", type=int, default=60, help="length of the synthetic video (default 60)")
    parser.add_argument("--height", type=int, default=DEMO_SIZE[0], help=f"synthetic frame height (default {DEMO_SIZE[0]})")
    parser.add_argument("--width", type=int, default=DEMO_SIZE[1], help=f"synthetic frame width (default {DEMO_SIZE[1]})")
    parser.add_argument("--seed", type=int, default=1, help="synthetic video seed (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="ONNX Runtime threads of the DFF and per-frame runs (default 1: one core per stream, as a server "
                        "running many streams gives each, and as the fast-path table runs; 0 is refused)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-fast-path", action="store_true",
                        help="skip the comparison of bf16 and int8 configurations with the float32 baseline")
    parser.set_defaults(handler=run)


@dataclass(frozen=True)
class Outcome:
    """One way of running the model over the video: its timing and its accuracy (mIoU, None without labels)."""

    name: str
    timings: list[FrameTiming]
    miou: float | None


def run(args: argparse.Namespace) -> int:
    import time

    from dff.errors import CheckpointError, ConfigError
    from dff.export import ExportOptions, export_checkpoint
    from dff.metrics import SegmentationScore
    from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, RunOutputs, TimingSummary, open_backend, run_source

    if not (args.key_interval >= 1 and args.frames >= 2):
        raise ConfigError(f"need --key-interval >= 1 and --frames >= 2, got {args.key_interval} and {args.frames}")
    if args.threads < 1:
        raise ConfigError(f"need --threads >= 1, got {args.threads} (1 runs each engine on one core, as the default does)")
    checkpoint = Path(args.checkpoint) if args.checkpoint else DEMO_MODEL
    if not checkpoint.is_file():
        raise CheckpointError(
            f"the demo model {checkpoint} is missing"
            + ("" if args.checkpoint else " from this installation (reinstall dff, or pass --checkpoint PATH)")
        )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    # The synthetic video's frames have one size: exported for it (a fixed-size F needs no crops; at 320x400, whose
    # 20x25 feature grid makes a dynamic F crop at its levels, propagate took 6.9 against 10.3 ms in two dff demo runs
    # on the loaded 2-core machine); a --video, of any size: dynamic sizes.
    fixed = {} if args.video else dict(zip(("height", "width"), _network_size(args.height, args.width)))
    manifest = export_checkpoint(checkpoint, out / "export", ExportOptions(**fixed))
    model = manifest.model
    print(f"model: {model.feature} features + {model.flow} flow, {model.num_classes} classes, from {checkpoint}")
    print(f"exported to {out / 'export'} in {time.perf_counter() - start:.1f} s")

    source, labels = _video(args, model.num_classes)
    with open_backend("onnxruntime", model=out / "export", threads=args.threads) as backend:
        dff = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(args.key_interval))
        per_frame = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1))
        scores = {name: SegmentationScore(model.num_classes) for name in ("dff", "per-frame")}
        agreement = SegmentationScore(model.num_classes)
        timings: dict[str, list[FrameTiming]] = {"dff": [], "per-frame": []}
        with RunOutputs(
            num_classes=model.num_classes, overlay_path=out / "overlay.mp4", log_path=out / "timings.jsonl", fps=source.fps or 10.0
        ) as outputs:
            for step in run_source(dff, source, baseline=per_frame, progress=not args.no_progress):
                outputs.write(step.frame, step.result, step.baseline)
                timings["dff"].append(step.result.timing)
                timings["per-frame"].append(step.baseline.timing)
                agreement.update(step.result.labels, step.baseline.labels)
                if labels is not None:
                    truth = labels[step.frame.index]
                    scores["dff"].update(step.result.labels, truth)
                    scores["per-frame"].update(step.baseline.labels, truth)

    outcomes = [
        Outcome(f"DFF (l = {args.key_interval})", timings["dff"], scores["dff"].miou if labels is not None else None),
        Outcome("per-frame", timings["per-frame"], scores["per-frame"].miou if labels is not None else None),
    ]
    summary = TimingSummary.of(timings["dff"], interval=args.key_interval)
    baseline = TimingSummary.of(timings["per-frame"], interval=1)
    print()
    print(f"ONNX Runtime on the CPU, {args.threads} thread{'s' if args.threads > 1 else ''} (--threads), DFF and per-frame on the same frames:")
    print(f"{'':18s} {'fps':>8s} {'ms/frame':>9s} {'mIoU':>7s}")
    for outcome, stats in zip(outcomes, (summary, baseline)):
        miou = "n/a" if outcome.miou is None else f"{100 * outcome.miou:.1f}%"
        print(f"{outcome.name:18s} {stats.fps:8.1f} {1e3 / stats.fps:9.2f} {miou:>7s}")
    print()
    print("\n".join(summary.lines()[1:]))
    print(f"  measured speed-up over per-frame: {summary.fps / baseline.fps:.2f}x")
    print(f"  DFF labels agree with per-frame labels: mIoU {100 * agreement.miou:.1f}%, pixels {100 * agreement.pixel_accuracy:.1f}%")
    if labels is None:
        print("  (no ground truth for --video: accuracy against labels is not measured)")
    plot = _plot(out / "demo.png", outcomes, (summary, baseline))
    print(f"wrote {out / 'overlay.mp4'} (DFF labels over the frames), {plot} and {out / 'timings.jsonl'}")
    if not args.no_fast_path:
        _fast_path(args, out, model.num_classes)
    return 0


#: The reduced-precision configurations the demo times against float32 ONNX Runtime: (export, backend, options).
FAST_PATHS = {
    "float32 ONNX Runtime": ("float", "onnxruntime", {}),
    "OpenVINO bf16": ("float", "openvino", {"precision": "bf16"}),
    "ONNX Runtime int8": ("int8", "onnxruntime", {}),
    "OpenVINO int8": ("int8", "openvino", {}),
    "OpenVINO int8+bf16": ("int8", "openvino", {"precision": "bf16"}),
}
#: Seed offset of the synthetic frames the int8 export is calibrated on (never the evaluated video).
CALIBRATION_SEED_OFFSET = 1000


def _fast_path(args: argparse.Namespace, out: Path, num_classes: int) -> None:
    """Every configuration of FAST_PATHS with DFF on the same frames, taking turns; the fastest beside float32's."""
    import numpy as np

    from dff.metrics import SegmentationScore
    from dff.quantize import QuantizeOptions, quantize_export
    from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, TimingSummary, open_backend

    source, labels = _video(args, num_classes, announce=False)
    images = [frame.image for _, frame in zip(range(args.frames), source)]
    calibration = _calibration_frames(args, num_classes, images)
    int8 = out / "export-int8"
    if int8.exists():
        _remove_earlier_int8(int8)
    quantize_export(out / "export", calibration, int8, QuantizeOptions(key_interval=max(2, args.key_interval)))
    exports = {"float": out / "export", "int8": int8}
    with warnings.catch_warnings():  # a CPU without native bf16: the row's name says it below, once
        warnings.filterwarnings("ignore", message="precision=bf16 asked for")
        backends = {name: open_backend(kind, model=exports[which], threads=1, **opts) for name, (which, kind, opts) in FAST_PATHS.items()}
    backends = {_actual(name, backend): backend for name, backend in backends.items()}
    try:
        runtimes = {name: DeepFeatureFlowRuntime(backend=b, scheduler=FixedInterval(args.key_interval)) for name, b in backends.items()}
        for runtime in runtimes.values():
            runtime.warmup(*images[0].shape[:2])
        timings: dict[str, list] = {name: [] for name in runtimes}
        results: dict[str, list[np.ndarray]] = {name: [] for name in runtimes}
        names = list(runtimes)
        for index, image in enumerate(images):
            turn = index % len(names)  # rotating turns: machine load hits every configuration alike
            for name in names[turn:] + names[:turn]:
                result = runtimes[name](image)
                timings[name].append(result.timing)
                results[name].append(result.labels)
    finally:
        for backend in backends.values():
            backend.close()
    fps = {name: TimingSummary.of(t, interval=args.key_interval).fps for name, t in timings.items()}
    baseline = "float32 ONNX Runtime"
    print()
    print(f"fast path (DFF, l = {args.key_interval}, one thread each, taking turns on the same {len(images)} frames; int8 "
          f"calibrated on {len(calibration)} other frames):")
    print(f"{'':30s} {'fps':>8s} {'ms/frame':>9s} {'mIoU':>7s} {'labels = float32':>17s}")
    mious = {}
    for name in names:
        if labels is not None:
            score = SegmentationScore(num_classes)
            for prediction, truth in zip(results[name], labels):
                score.update(prediction, truth)
            mious[name] = score.miou
        agreement = float(np.mean([(a == b).mean() for a, b in zip(results[name], results[baseline])]))
        miou = f"{100 * mious[name]:.1f}%" if name in mious else "n/a"
        print(f"{name:30s} {fps[name]:8.1f} {1e3 / fps[name]:9.2f} {miou:>7s} {100 * agreement:16.2f}%")
    fastest = max(fps, key=fps.get)
    if fastest == baseline:
        runner_up = max((name for name in fps if name != baseline), key=fps.get)
        print(f"  fastest here: the {baseline} baseline itself; next {runner_up} at {fps[runner_up] / fps[baseline]:.2f}x its fps "
              "(small models at small frames are bound by the cost of each call, not by arithmetic)")
        return
    accuracy = f", mIoU {100 * mious[fastest]:.1f}% vs {100 * mious[baseline]:.1f}%" if mious else ""
    print(f"  fastest here: {fastest}, {fps[fastest] / fps[baseline]:.2f}x the fps of {baseline}{accuracy}")


def _actual(name: str, backend: object) -> str:
    """``name``, saying so where the backend computes in another precision than the name's (no native bf16 here)."""
    precision = getattr(backend, "precision", None)
    return f"{name} (f32 here)" if "bf16" in name and precision == "f32" else name


def _network_size(height: int, width: int) -> tuple[int, int]:
    """The size (multiples of the feature stride, at least 64) frames of ``height`` × ``width`` run at."""
    from dff.frames import FEATURE_STRIDE

    return tuple(max(64, round(side / FEATURE_STRIDE) * FEATURE_STRIDE) for side in (height, width))  # type: ignore[return-value]


def _remove_earlier_int8(folder: Path) -> None:
    """Remove the int8 export an earlier demo wrote at ``folder``; anything else there is refused, never deleted."""
    import shutil

    from dff.errors import ConfigError, ExportError
    from dff.manifest import load_manifest

    try:
        earlier = load_manifest(folder, verify=False).quantization is not None
    except ExportError:
        earlier = False
    if not earlier:
        raise ConfigError(f"{folder} is in the way of the demo's int8 export and is not one: move it, or pass another --out")
    shutil.rmtree(folder)


def _calibration_frames(args: argparse.Namespace, num_classes: int, images: list):
    """Frames for dff quantize: for the synthetic video, another seed's frames; for --video, its own first frames."""
    if args.video:
        return images[:32]
    from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig

    height, width = images[0].shape[:2]
    seed = args.seed + CALIBRATION_SEED_OFFSET
    config = SyntheticVideoConfig(length=32, num_classes=num_classes, seed=seed, height=height, width=width, object_scale=OBJECT_SCALE)
    video = SyntheticVideo(config)
    return [video.image(t) for t in range(config.length)]


def _video(args: argparse.Namespace, num_classes: int, *, announce: bool = True):
    """The frame source and, for the synthetic video, its labels by frame index (None for --video)."""
    from dff.sources import ArrayFrames, open_source

    if args.video:
        source = open_source(args.video)
        if announce:
            print(f"video: {args.video}" + (f", {source.length} frames" if source.length else ""))
        return source, None
    from dff.data.synthetic import OBJECT_CLASSES, SyntheticVideo, SyntheticVideoConfig
    from dff.errors import ConfigError

    sizes = {name: value for name, value in (("height", args.height), ("width", args.width)) if value is not None}
    if not (num_classes <= len(OBJECT_CLASSES) + 1):
        raise ConfigError(
            f"the synthetic video has at most {len(OBJECT_CLASSES) + 1} classes but the model has {num_classes}: "
            "pass --video PATH for this model"
        )
    config = SyntheticVideoConfig(length=args.frames, num_classes=num_classes, seed=args.seed, object_scale=OBJECT_SCALE, **sizes)
    video = SyntheticVideo(config)
    frames = [video.image_and_label(t) for t in range(config.length)]
    if announce:
        print(f"video: synthetic, {config.length} frames of {config.height}x{config.width} (seed {config.seed}), exact labels")
    return ArrayFrames([image for image, _ in frames], fps=10.0), [label for _, label in frames]


def _plot(path: Path, outcomes: list[Outcome], summaries: tuple) -> Path:
    """Per-frame latency (key and non-key frames apart) beside bars of speed and accuracy; written atomically."""
    import matplotlib

    from dff.atomic import atomic_path

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    dff, per_frame = outcomes
    figure, (latency, bars) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2, 1]})
    latency.plot([t.index for t in per_frame.timings], [t.total_ms for t in per_frame.timings], color="grey", lw=1, label="per-frame")
    for key, colour, label in ((True, "tab:red", "DFF key frame"), (False, "tab:blue", "DFF non-key frame")):
        chosen = [t for t in dff.timings if t.key == key]
        latency.scatter([t.index for t in chosen], [t.total_ms for t in chosen], s=12, color=colour, label=label, zorder=3)
    latency.set(xlabel="frame", ylabel="latency (ms)", title="Latency per frame")
    latency.legend()
    names = [o.name for o in outcomes]
    bars.bar([0, 1], [s.fps for s in summaries], color=["tab:blue", "grey"], width=0.6)
    bars.set_xticks([0, 1], names)
    speedup = summaries[0].fps / summaries[1].fps
    bars.set(ylabel="frames per second", title=f"DFF {speedup:.2f}x faster" + ("" if dff.miou is None else ", mIoU above bars"))
    for x, (outcome, stats) in enumerate(zip(outcomes, summaries)):
        if outcome.miou is not None:
            bars.annotate(f"mIoU {100 * outcome.miou:.1f}%", (x, stats.fps), ha="center", va="bottom")
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, dpi=100)
    plt.close(figure)
    return path
