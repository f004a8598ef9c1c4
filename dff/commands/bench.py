"""``dff bench``: stage timings, measured r (Eq. 5) and FLOP r (Eq. 6), and speed-up predicted by Eq. 7 against measured."""

from __future__ import annotations

import argparse

from dff.commands import _keyframes as keyframes
from dff.commands.run import parse_option

#: Frame size of a benchmark of a dynamic-size export: Cityscapes' 1:2 aspect at a quarter of its side.
DEFAULT_SIZE = (256, 512)


def parse_intervals(text: str) -> tuple[int, ...]:
    """``1-20``, ``1,2,5,10`` or a mix (``1-5,10,20``) → sorted distinct intervals."""
    values: set[int] = set()
    try:
        for part in text.split(","):
            low, sep, high = part.partition("-")
            values.update(range(int(low), int(high) + 1) if sep else (int(low),))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected intervals like 1-20 or 1,2,5,10, got {text!r}") from None
    if not (values and min(values) >= 1):
        raise argparse.ArgumentTypeError(f"intervals must be integers >= 1, got {text!r}")
    return tuple(sorted(values))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time every stage and compare measured speed-up with Eq. 7 for key-frame intervals l",
        description="Time the runtime on one backend in one process: per-stage times, measured r (Eq. 5: non-key / key "
        "frame time), FLOP r (Eq. 6: MACs of F / MACs of N_feat, counted from the ONNX graphs of an export or the "
        "modules of a checkpoint), and for every l the speed-up over per-frame evaluation predicted by Eq. 7 next to "
        "the one measured on the same frames.",
    )
    parser.add_argument("model", help="export directory (`dff export`); a checkpoint for --backend torch")
    parser.add_argument("--backend", default="onnxruntime", help="inference backend: onnxruntime (default), torch, tensorrt")
    parser.add_argument(
        "--option", "-O", action="append", type=parse_option, default=[], metavar="KEY=VALUE",
        help="backend option, repeatable (as for `dff run`), e.g. threads=1, provider=cuda, device=cuda, half=true",
    )
    parser.add_argument("--source", help="video file, frame folder or camera to take the frames from (default: the synthetic video)")
    parser.add_argument("--height", type=int, help=f"frame height (default: a fixed-size export's, else {DEFAULT_SIZE[0]})")
    parser.add_argument("--width", type=int, help=f"frame width (default: a fixed-size export's, else {DEFAULT_SIZE[1]})")
    parser.add_argument("--frames", type=int, default=60, help="frames per pass, N (default 60; at least the largest l)")
    parser.add_argument("--repeats", type=int, default=3, help="passes over the frames, every l taking turns with the others (default 3)")
    parser.add_argument("--warmup-frames", type=int, default=4, help="untimed frames before the first pass (default 4)")
    parser.add_argument("--intervals", type=parse_intervals, default="1-20", help="key-frame intervals l, e.g. 1-20 (default) or 1,5,10")
    parser.add_argument("--no-flops", action="store_true", help="skip counting MACs (no FLOP r)")
    parser.add_argument(
        "--streams", type=parse_intervals, metavar="S,...",
        help="also measure S streams batched on the backend against S one after another at batch 1, e.g. 1,2,4,8",
    )
    parser.add_argument("--stream-interval", type=int, default=5, help="key-frame interval l of the --streams runs (default 5)")
    parser.add_argument("--phase", choices=("staggered", "aligned"), default="staggered", help="key-frame phases of the --streams runs")
    parser.add_argument("--stream-frames", type=int, default=20, help="frames per stream of the --streams runs (default 20)")
    parser.add_argument("--key-interval", "-l", type=int, default=10, help="with --scheduler: l of fixed, and 1/l the default "
                        "--key-rate of adaptive (default 10)")
    keyframes.add_arguments(parser, default=None, extra_help="; given, the frames also run in order through it, in turns "
                            "with per-frame evaluation: measured key-frame share, fps, speed-up and r")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of speed-up against l (measured and Eq. 7)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import json

    from dff.benchmark.complexity import model_macs
    from dff.benchmark.frames import benchmark_frames
    from dff.benchmark.plot import plot_speedup
    from dff.benchmark.scheduled import measure_scheduled
    from dff.benchmark.speedup import SweepSettings, measure_speedup
    from dff.benchmark.streams import HEADER, measure_streams
    from dff.errors import ConfigError
    from dff.runtime import open_backend

    if args.scheduler is None:
        keyframes.refuse_adaptive_settings(args)
        scheduler = None
    else:
        scheduler = keyframes.scheduler_from_args(args, args.key_interval, args.model)
    settings = SweepSettings(intervals=args.intervals, frames=args.frames, repeats=args.repeats, warmup_frames=args.warmup_frames)
    if (args.height is None) != (args.width is None):
        raise ConfigError(f"give both --height and --width or neither, got height={args.height}, width={args.width}")
    options = dict(args.option)
    with open_backend(args.backend, model=args.model, **options) as backend:
        sizes = backend.sizes
        fixed = (sizes.min_height, sizes.min_width) if (sizes.min_height, sizes.min_width) == (sizes.max_height, sizes.max_width) else None
        height, width = (args.height, args.width) if args.height is not None else fixed or DEFAULT_SIZE
        sizes.check(height, width)
        images = benchmark_frames(settings.frames, height=height, width=width, source=args.source)
        macs = None if args.no_flops else model_macs(args.model, height=height, width=width)
        description = {
            "backend": args.backend,
            "options": ", ".join(f"{k}={v}" for k, v in options.items()) or "defaults",
            "model": str(args.model),
            "frames_from": args.source or "synthetic video",
        }
        result = measure_speedup(backend, images, settings, macs=macs, description=description)
        scheduled = None
        if args.scheduler is not None:
            scheduled = measure_scheduled(backend, images, scheduler, passes=settings.repeats)
        rows = None
        if args.streams:
            pool = benchmark_frames(args.stream_frames + max(args.streams) - 1, height=height, width=width, source=args.source)
            rows = measure_streams(
                backend, pool, args.streams, frames=args.stream_frames, interval=args.stream_interval, phase=args.phase,
                repeats=settings.repeats,
            )
    if args.plot:
        plot_speedup(result, args.plot, title=f"{args.model} on {args.backend}, {height}x{width}")
    if args.json:
        figures = result.to_json()
        if rows is not None:
            figures["streams"] = [row.to_json() for row in rows]
        if scheduled is not None:
            figures["scheduled"] = scheduled.to_json()
        print(json.dumps(figures, indent=2))
    else:
        print("\n".join(result.lines()))
        if scheduled is not None:
            print("\n".join(scheduled.lines()))
        if rows is not None:
            print(f"{args.phase} streams, l = {args.stream_interval}, {args.stream_frames} frames per stream, batched against "
                  "one after another at batch 1 (gain); latency is the tick's; max/mean: slowest over mean steady tick")
            print(HEADER)
            print("\n".join(row.line() for row in rows))
        if args.plot:
            print(f"wrote {args.plot}")
    return 0
