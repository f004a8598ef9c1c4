"""``dff quantize``: a float export → an int8 export (Q/DQ feature and flow networks) calibrated on real frames."""

from __future__ import annotations

import argparse

from dff.commands.export import size_arg


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quantize",
        help="int8 post-training quantization of an export, calibrated on real frames (explicit Q/DQ ONNX)",
        description="Write a complete int8 export into --out: feature.onnx and flow.onnx with int8 Q/DQ (weights per "
        "channel, activations per tensor, symmetric, as TensorRT takes them), the warp and task graphs copied from "
        "the float export, and a manifest recording both. Check it with `dff check OUT`.",
    )
    parser.add_argument("export", help="float32 export directory written by `dff export`")
    parser.add_argument("--calibrate", required=True, metavar="SOURCE",
                        help="video file or folder of frames like the ones the model will see")
    parser.add_argument("--out", required=True, help="new (or empty) folder for the int8 export")
    parser.add_argument("--frames", type=int, default=32, help="calibration frames read from SOURCE (default 32)")
    parser.add_argument("--key-interval", "-l", type=int, default=5,
                        help="key frame every l frames: F is calibrated on the (key, current) pairs this gives (default 5)")
    parser.add_argument("--size", type=size_arg, default=None, metavar="HxW",
                        help="resize the calibration frames to this allowed size (default: nearest allowed to their own)")
    parser.add_argument("--method", choices=("minmax", "entropy", "percentile"), default="minmax",
                        help="how activation ranges are calibrated (default minmax)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import time

    from dff.quantize import QuantizeOptions, quantize_export

    start = time.perf_counter()
    options = QuantizeOptions(frames=args.frames, key_interval=args.key_interval, size=args.size, method=args.method)
    manifest = quantize_export(args.export, args.calibrate, args.out, options)
    record = manifest.quantization
    assert record is not None
    height, width = record.calibration_size
    print(
        f"wrote {args.out} in {time.perf_counter() - start:.1f} s: {' and '.join(record.networks)} networks in int8 "
        f"(weights {record.weights}; activations {record.activations}), calibrated on {record.calibration_frames} "
        f"frames and {record.calibration_pairs} key/current pairs of {height}x{width} from {record.calibration_source}"
    )
    print(f"check it against {record.float_export}: dff check {args.out}")
    return 0
