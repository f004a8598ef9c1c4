"""``dff build EXPORT_DIR``: TensorRT engines of an export for this GPU (see :mod:`dff.engines.build`)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "build",
        help="build the TensorRT engines of an export for this GPU (cached per GPU and TensorRT version)",
        description="Build the feature, flow, warp and task TensorRT engines of an export for this GPU. Engines whose "
        "ONNX file, GPU, TensorRT version and options are unchanged are reused. Needs TensorRT: "
        "pip install 'deep-feature-flow[tensorrt-cu13]' (driver >= 580) or '[tensorrt-cu12]' (driver >= 525).",
    )
    parser.add_argument("export_dir", metavar="EXPORT_DIR", help="directory written by `dff export`")
    parser.add_argument("--out", metavar="ENGINES_DIR", help="engines directory (default: EXPORT_DIR/engines)")
    parser.add_argument(
        "--plugin-lib", metavar="PATH", help="DFFWarp TensorRT plugin library (built by `make plugins`)"
    )
    parser.add_argument(
        "--warp",
        choices=("plugin", "gridsample"),
        help="warp engine from the plugin graph or the ONNX GridSample graph (default: plugin when --plugin-lib is given)",
    )
    for bound, default in (
        ("min", "the export's smallest size"),
        ("opt", "--max-size"),
        ("max", "the export's largest size"),
    ):
        parser.add_argument(
            f"--{bound}-size",
            metavar="HxW",
            help=f"{bound} frame size of the optimisation profile (default: {default})",
        )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=1,
        metavar="N",
        help="largest batch the engines take: the streams one multi-stream call batches (default: %(default)s)",
    )
    parser.add_argument(
        "--workspace", metavar="SIZE", help="TensorRT workspace pool limit, e.g. 2GiB (default: TensorRT's)"
    )
    parser.add_argument(
        "--timing-cache",
        metavar="PATH",
        help="timing cache file, read and updated (default: one per GPU in ENGINES_DIR)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild engines that are up to date")
    parser.add_argument("--verbose", action="store_true", help="show TensorRT's verbose log")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dff.engines.build import BuildOptions, build_engines, parse_bytes
    from dff.engines.profiles import parse_frame_size

    def size(option: str) -> object:
        text = getattr(args, option.replace("-", "_"))
        return None if text is None else parse_frame_size(text, f"--{option}")

    options = BuildOptions(
        out=Path(args.out) if args.out else None,
        plugin_lib=Path(args.plugin_lib) if args.plugin_lib else None,
        warp=args.warp,
        min_size=size("min-size"),
        opt_size=size("opt-size"),
        max_size=size("max-size"),
        max_batch=args.max_batch,
        workspace=parse_bytes(args.workspace) if args.workspace else None,
        timing_cache=Path(args.timing_cache) if args.timing_cache else None,
        force=args.force,
        verbose=args.verbose,
    )
    outcomes = build_engines(args.export_dir, options)
    built = sum(outcome.built for outcome in outcomes)
    print(f"{built} engine(s) built, {len(outcomes) - built} up to date")
    return 0
