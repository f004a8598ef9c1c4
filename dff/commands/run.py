"""``dff run``: Algorithm 1 over a video, a folder of frames or a camera, with an overlay video and timings."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from contextlib import closing
from typing import Any

from dff.commands import _keyframes as keyframes
from dff.commands._run_streams import add_arguments as add_stream_arguments
from dff.commands._run_streams import run_streams, wants_streams
from dff.errors import ConfigError, VideoError


def parse_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` → (key, value); the value is read as JSON where it parses (numbers, true/false), else a string."""
    key, sep, value = text.partition("=")
    if not (sep and key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run deep feature flow over a video and time it")
    parser.add_argument("model", help="export directory (`dff export`); for --backend torch a checkpoint (.safetensors, or the folder holding model.safetensors)")
    parser.add_argument("source", help="video file, folder of frames (numeric order) or camera index")
    parser.add_argument("--backend", default="onnxruntime", help="inference backend: onnxruntime (default), openvino, torch, tensorrt")
    parser.add_argument(
        "--option",
        "-O",
        action="append",
        type=parse_option,
        default=[],
        metavar="KEY=VALUE",
        help="backend option, repeatable: onnxruntime takes provider=cpu|cuda|tensorrt, device_id, engine_cache_dir, "
        "threads, spin_threads; torch takes device=cpu|cuda, half=true, cuda_graphs=true; openvino takes "
        "device=CPU|GPU|NPU|AUTO, precision=f32|bf16|f16, threads; tensorrt takes engines, "
        "plugin_lib, cuda_graph, device (a wrong key lists the backend's options)",
    )
    parser.add_argument("--key-interval", "-l", type=int, default=10, help="one key frame every l frames (l in Eq. 7)")
    keyframes.add_arguments(parser)
    parser.add_argument("--out", help="overlay video to write (.mp4)")
    parser.add_argument("--labels-dir", help="folder for one PNG of class ids per frame")
    parser.add_argument("--log", help="JSON-lines file of per-frame timings")
    parser.add_argument("--detections", help="detection exports: JSON-lines file, one line per frame (frame, key, boxes, scores, classes)")
    parser.add_argument("--compare", action="store_true", help="also run per-frame (every frame a key frame) and report the speed-up")
    parser.add_argument("--sync-timing", action="store_true", help="synchronise the device after each stage (exact stage times, slower)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_stream_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dff.atomic import check_output_dir, check_output_file
    from dff.errors import interrupt_cause, interrupt_status
    from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, RunOutputs, open_backend, run_source
    from dff.runtime.video import RunReport
    from dff.sources import EndedEarlyWarning, open_source

    if wants_streams(args):
        return run_streams(args)
    check_task_outputs(args)
    scheduler = keyframes.scheduler_from_args(args, args.key_interval, args.model)
    # Output paths are checked before the first frame, so that a bad one costs no computing and leaves nothing behind.
    if args.out:
        check_output_file(args.out, "--out")
    if args.log:
        check_output_file(args.log, "--log")
    if args.labels_dir:
        check_output_dir(args.labels_dir, "--labels-dir")
    if args.detections:
        check_output_file(args.detections, "--detections")
    source = open_source(args.source)
    with open_backend(args.backend, model=args.model, **dict(args.option)) as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler, sync_timing=args.sync_timing)
        baseline = (
            DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1), sync_timing=args.sync_timing)
            if args.compare
            else None
        )
        outputs = RunOutputs(
            num_classes=len(backend.class_names),
            overlay_path=args.out,
            labels_dir=args.labels_dir,
            log_path=args.log,
            fps=source.fps or 25.0,
            detections_path=args.detections,
            class_names=backend.class_names,
        )
        timings, baseline_timings = [], []

        fixed = isinstance(scheduler, FixedInterval)

        def report() -> RunReport:  # of the frames done: all of them, or those before an interrupt
            return RunReport.of(
                timings,
                interval=args.key_interval if fixed else None,
                source=source,
                baseline=baseline_timings if args.compare else None,
            )

        steps = run_source(runtime, source, baseline=baseline, progress=not args.no_progress)
        try:
            # The summary reports a video that ended before its announced length; the source's warning would say it twice.
            with outputs, closing(steps), warnings.catch_warnings():
                warnings.simplefilter("ignore", EndedEarlyWarning)
                for step in steps:
                    outputs.write(step.frame, step.result, step.baseline)
                    timings.append(step.result.timing)
                    if step.baseline is not None:
                        baseline_timings.append(step.baseline.timing)
                if not timings:
                    raise VideoError(f"{args.source} gave no readable frames; nothing was written")
        except KeyboardInterrupt as interrupt:
            # Ctrl-C or SIGTERM: the frames done are timed like a finished run; their outputs were removed by `with`.
            if timings:
                print("\n".join(report().lines()))
            print(
                f"dff run: interrupted after {len(timings)} frames ({interrupt_cause(interrupt)}); earlier outputs kept, "
                "this run's unfinished ones removed",
                file=sys.stderr,
            )
            return interrupt_status(interrupt)
    print("\n".join(report().lines() + outputs.lines()))
    if not fixed:
        keys = sum(t.key for t in timings)
        share = 100 * keys / len(timings)
        print(f"{scheduler!r}: {keys} key frames in {len(timings)} ({share:.1f}%), {scheduler.cuts} scene cuts")
    written = (("overlay video", args.out), ("labels", args.labels_dir), ("timing log", args.log), ("detections", args.detections))
    for label, path in written:
        if path:
            print(f"wrote {label}: {path}")
    return 0


def check_task_outputs(args: argparse.Namespace) -> None:
    """ConfigError when an output asks for what the model does not produce (labels of a detector, boxes of a segmenter).

    A model that cannot be read is left to the backend, which names what is wrong with it.
    """
    from dff.errors import DFFError
    from dff.model_task import task_of

    try:
        task = task_of(args.model)
    except DFFError:
        return
    if task == "detection" and args.labels_dir:
        raise ConfigError(
            f"{args.model} is a detection export: it gives boxes, not per-pixel labels for --labels-dir; "
            "use --detections FILE (and --out for the overlay)"
        )
    if task != "detection" and args.detections:
        raise ConfigError(
            f"{args.model} is a {task} export: it gives per-pixel labels, not boxes for --detections; "
            "use --labels-dir, or export a detection checkpoint (`dff init --task detection`)"
        )
