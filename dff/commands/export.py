"""``dff export``: a checkpoint → ONNX files (feature, flow, task, warp, warp_plugin) and their manifest."""

from __future__ import annotations

import argparse
import re


def size_arg(text: str) -> tuple[int, int]:
    """argparse type for a frame size: ``HxW`` (e.g. 720x1280) or one number for both sides."""
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX×]\s*(\d+))?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected a size HxW (e.g. 512x1024) or one number, got {text!r}")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX (feature, flow, task, warp, warp_plugin) with a manifest",
        description="Write feature.onnx, flow.onnx, task.onnx, warp.onnx, warp_plugin.onnx, the fused key_path.onnx "
        "(N_feat then N_task) and propagate.onnx (F, W, N_task) and manifest.json into --out, atomically. Frames go in "
        "as uint8 BGR (N, H, W, 3): preprocessing is inside the graphs.",
    )
    parser.add_argument("checkpoint", help="checkpoint (.safetensors, or the folder holding model.safetensors) from `dff init` or `dff train`")
    parser.add_argument("--out", required=True, help="export directory (created, or replaced if it holds an export)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, 16-19 (default 17)")
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                        help="precision of weights and float inputs/outputs (frames and labels stay uint8)")
    parser.add_argument("--height", type=int, default=None, help="fixed frame height (with --width); default: dynamic")
    parser.add_argument("--width", type=int, default=None, help="fixed frame width (with --height)")
    parser.add_argument("--min-size", type=size_arg, default=None, metavar="HxW",
                        help="smallest frame size of a dynamic export (default 64x64)")
    parser.add_argument("--max-size", type=size_arg, default=None, metavar="HxW",
                        help="largest frame size of a dynamic export (default 2048x2048)")
    parser.add_argument("--max-detections", type=int, default=None,
                        help="detection exports: the most boxes per frame, the rows of the padded outputs (default 100)")
    parser.add_argument("--no-fused-graphs", dest="fused_graphs", action="store_false",
                        help="leave out key_path.onnx and propagate.onnx (ONNX Runtime and OpenVINO then run stage by stage)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    from dff.export import ExportOptions, export_checkpoint

    options = ExportOptions(
        opset=args.opset,
        dtype=args.dtype,
        height=args.height,
        width=args.width,
        min_size=args.min_size,
        max_size=args.max_size,
        fused_graphs=args.fused_graphs,
        **({} if args.max_detections is None else {"max_detections": args.max_detections}),
    )
    start = time.perf_counter()
    manifest = export_checkpoint(args.checkpoint, args.out, options)
    sizes = manifest.sizes
    print(
        f"wrote {args.out} in {time.perf_counter() - start:.1f} s: "
        + ", ".join(entry.file for entry in manifest.all_files().values())
        + f", manifest.json ({manifest.dtype}, opset {manifest.opset}, frames {sizes.min_height}x{sizes.min_width}"
        f"..{sizes.max_height}x{sizes.max_width} in steps of {sizes.multiple})"
    )
    return 0
