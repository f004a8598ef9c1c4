"""``dff run EXPORT SRC [SRC ...] --out-dir D``: many sources on one backend, batched and pipelined.

The path ``dff run`` takes for several sources or ``--out-dir`` (one source with ``--out`` keeps the
one-stream path): one :class:`~dff.runtime.streams.MultiStreamRuntime` over all sources, driven by
:func:`~dff.runtime.pipeline.run_pipeline`. Each stream writes ``D/NAME/overlay.mp4``,
``D/NAME/labels/`` (a detection export: ``D/NAME/detections.jsonl``, and boxes on the overlay) and
``D/NAME/timings.jsonl``, NAME derived from its source (a file's stem, a folder's name, ``camera0``; see
:func:`~dff.runtime.pipeline_inputs.stream_names` for repeats).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from dff.commands import _keyframes as keyframes
from dff.errors import ConfigError, VideoError

#: A detection export's per-stream detections file, in the stream's folder (the one-stream path's --detections FILE).
DETECTIONS_NAME = "detections.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the many-source path, on ``dff run``'s parser."""
    parser.add_argument("more_sources", nargs="*", metavar="SOURCE", help="more sources: several run as batched streams (needs --out-dir to write)")
    parser.add_argument(
        "--out-dir",
        help="one folder per stream here: overlay.mp4, labels/ (a detection export: detections.jsonl), timings.jsonl "
        "(pipelined; any number of sources)",
    )
    parser.add_argument("--phase", choices=("staggered", "aligned"), default="staggered", help="key-frame phases of the streams with --scheduler fixed (default staggered: stream j's key frames on frames "
                        "j*l/S mod l); adaptive streams take key frames where each needs them")
    parser.add_argument("--no-labels", action="store_true", help="with --out-dir: no label PNGs (no detections.jsonl for a detection export)")


def wants_streams(args: argparse.Namespace) -> bool:
    """Whether ``dff run`` takes the many-source path: more than one source, or ``--out-dir``."""
    return bool(args.more_sources or args.out_dir)


def run_streams(args: argparse.Namespace) -> int:
    from dff.atomic import check_output_dir, check_output_file
    from dff.runtime import RunOutputs, open_backend
    from dff.runtime.pipeline import PipelineStream, run_pipeline
    from dff.runtime.pipeline_inputs import open_stream_source, stream_names
    from dff.runtime.streams import MultiStreamRuntime, phased_schedulers
    from dff.sources import EndedEarlyWarning

    specs = [args.source, *args.more_sources]
    single = (("--out", args.out), ("--labels-dir", args.labels_dir), ("--log", args.log), ("--detections", args.detections), ("--compare", args.compare))
    for flag, value in single:
        if value:
            raise ConfigError(f"{flag} is for one source without --out-dir; with several sources or --out-dir each stream writes into --out-dir")
    # Each stream its own scheduler: an adaptive one adapts to its own stream (checked here, before any output).
    schedulers = [keyframes.scheduler_from_args(args, args.key_interval, args.model) for _ in specs]
    detector = _is_detector(args.model)
    names = stream_names(specs)
    folders: list[Path | None] = [None] * len(specs)
    if args.out_dir:  # every output path is checked before the first frame
        out_dir = check_output_dir(args.out_dir, "--out-dir")
        folders = [check_output_dir(out_dir / name, "--out-dir") for name in names]
        for folder in folders:
            check_output_file(folder / "overlay.mp4", "--out-dir")
            check_output_file(folder / "timings.jsonl", "--out-dir")
            if args.no_labels:
                continue
            if detector:
                check_output_file(folder / DETECTIONS_NAME, "--out-dir")
            else:
                check_output_dir(folder / "labels", "--out-dir")
    opened = [open_stream_source(spec) for spec in specs]
    with open_backend(args.backend, model=args.model, **dict(args.option)) as backend:
        if args.scheduler == "fixed":
            schedulers = phased_schedulers(len(specs), args.key_interval, args.phase)
        runtime = MultiStreamRuntime(backend=backend, schedulers=schedulers, sync_timing=args.sync_timing)
        streams = [PipelineStream(name=name, source=source, live=live) for name, (source, live) in zip(names, opened)]
        try:  # from here on run_pipeline owns the outputs; until it starts, an error must remove what was begun
            for stream, folder in zip(streams, folders):
                if folder is not None:
                    stream.outputs = RunOutputs(
                        num_classes=len(backend.class_names),
                        overlay_path=folder / "overlay.mp4",
                        labels_dir=None if args.no_labels or detector else folder / "labels",
                        log_path=folder / "timings.jsonl",
                        fps=stream.source.fps or 25.0,
                        detections_path=None if args.no_labels or not detector else folder / DETECTIONS_NAME,
                        class_names=backend.class_names,
                    )
        except BaseException:
            for stream in streams:
                if stream.outputs is not None:
                    stream.outputs.abort()
            raise
        with warnings.catch_warnings():  # the summary gives the reason; the source's warning would say it twice
            warnings.simplefilter("ignore", EndedEarlyWarning)
            report = run_pipeline(runtime, streams, progress=not args.no_progress)
    print("\n".join(report.lines()))
    if args.scheduler != "fixed":
        for name, scheduler in zip(names, schedulers):
            share = 100 * scheduler.keys / max(1, scheduler.frames)
            print(f"stream {name}: {scheduler!r}: {scheduler.keys} key frames in {scheduler.frames} ({share:.1f}%), {scheduler.cuts} scene cuts")
    for stream in streams:
        for line in stream.outputs.lines() if stream.outputs is not None else ():
            print(f"stream {stream.name}: {line}")
    if not report.frames:
        raise VideoError("no source gave a readable frame; nothing was written")
    for stream, folder in zip(report.streams, folders):
        if folder is not None and stream.frames:
            print(f"wrote stream {stream.name}: {folder}")
    # As for one source, a stream that ended early is reported, not an error: the others ran and every file is complete.
    return 0


def _is_detector(model: str) -> bool:
    """Whether ``model`` is a detection export (a model that cannot be read is left to the backend to name)."""
    from dff.errors import DFFError
    from dff.model_task import task_of

    try:
        return task_of(model) == "detection"
    except DFFError:
        return False
