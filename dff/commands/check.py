"""``dff check``: validate an export in ONNX Runtime, OpenCV DNN and onnx's ReferenceEvaluator against PyTorch."""

from __future__ import annotations

import argparse

from dff.commands.export import size_arg


def _runtimes_arg(text: str) -> tuple[str, ...]:
    # Names are checked by check_export: the list of runtimes lives with the runners.
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="validate an export: ONNX checker, shape inference, and outputs in three runtimes against PyTorch",
        description="Exit status 0 when every model passes the ONNX checker and every output agrees with the "
        "reference within tolerance, 1 otherwise. A comparison with a constant reference is vacuous and is not a pass; "
        "F of a fresh checkpoint (M = 0, S = 1) is compared again with seeded random weights in its last layers.",
    )
    parser.add_argument("directory", help="export directory written by `dff export`")
    parser.add_argument("--checkpoint", default=None,
                        help="the exported checkpoint (a .safetensors file or the folder holding model.safetensors): compare "
                        "with PyTorch (default: compare with ONNX Runtime)")
    parser.add_argument("--frames", default=None, help="folder of images or a video: also check on two real frames")
    parser.add_argument("--frame-size", type=size_arg, default=None, metavar="HxW",
                        help="size the real frames are resized to (default: allowed size nearest to a 256 long side)")
    parser.add_argument("--runtimes", type=_runtimes_arg, default=None, metavar="LIST",
                        help="comma-separated runtimes to run (default onnxruntime,opencv,reference; reference is slow "
                        "for full-size models)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs and of F's perturbed weights")
    parser.add_argument("--verbose", action="store_true", help="print every comparison, not only the worst ones")
    add_quantized_arguments(parser)
    parser.set_defaults(handler=run)


def add_quantized_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of the int8 export check (exports written by `dff quantize`); see :func:`run_quantized`."""
    group = parser.add_argument_group("int8 exports (dff quantize): task-level check against the float export")
    group.add_argument("--float-export", default=None, metavar="DIR",
                       help="the float export it was quantized from (default: the one its manifest records)")
    group.add_argument("--min-agreement", type=float, default=95.0, metavar="PERCENT",
                       help="least share of pixels labelled as by the float export (default 95)")
    group.add_argument("--max-miou-drop", type=float, default=1.0, metavar="POINTS",
                       help="largest mIoU loss against the float export on the synthetic video (default 1.0)")
    group.add_argument("--backends", type=_runtimes_arg, default=("onnxruntime", "openvino"), metavar="LIST",
                       help="backends that run the int8 export (default onnxruntime,openvino)")


def run_quantized(args: argparse.Namespace) -> int:
    """An int8 export: TensorRT's Q/DQ rules, then labels and mIoU against its float export, per backend."""
    from dff.quantize.accuracy import TaskTolerance, check_quantized

    tolerance = TaskTolerance(min_agreement=args.min_agreement / 100, max_miou_drop=args.max_miou_drop / 100)
    report = check_quantized(
        args.directory, float_export=args.float_export, frames=args.frames, backends=args.backends, tolerance=tolerance
    )
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def run(args: argparse.Namespace) -> int:
    from dff.export.check import check_export
    from dff.export.runners import RUNTIMES
    from dff.manifest import load_manifest

    if load_manifest(args.directory).quantization is not None:
        return run_quantized(args)

    report = check_export(
        args.directory,
        checkpoint=args.checkpoint,
        frames=args.frames,
        frame_size=args.frame_size,
        runtimes=args.runtimes or RUNTIMES,
        seed=args.seed,
    )
    print("\n".join(report.lines(verbose=args.verbose)))
    return 0 if report.ok else 1
