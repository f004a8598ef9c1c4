"""``dff eval CHECKPOINT DATA``: Table 4 for one model: mIoU (segmentation) or mAP@0.5 (detection) and speed of frame, dff, copy and sff."""

from __future__ import annotations

import argparse

from dff.commands import _keyframes as keyframes


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="mIoU or mAP@0.5 and frames per second of frame, dff, copy and sff on labelled video (Table 4)",
        description="Evaluate a checkpoint by the paper's protocol: for each labelled frame i, the l pairs (k, i), k = i-l+1..i.",
    )
    parser.add_argument("checkpoint", help="model checkpoint (.safetensors), e.g. OUTPUT_DIR/model.safetensors of dff train, or that folder")
    parser.add_argument(
        "data",
        help="YAML or JSON file of dff.train.data.VideoConfig: the labelled frames to evaluate (a detector: the synthetic "
        "video's boxes; frame_step annotates every n-th frame)",
    )
    parser.add_argument("--modes", nargs="+", choices=("frame", "dff", "copy", "sff"), default=["frame", "dff", "copy", "sff"])
    parser.add_argument(
        "--key-interval",
        "-l",
        type=int,
        default=None,
        help="key frame duration l (default: the paper's, 5 for segmentation as on Cityscapes, 10 for detection as on ImageNet VID)",
    )
    parser.add_argument("--sff-preset", choices=("ultrafast", "fast", "medium"), default="medium", help="DIS optical flow preset for sff")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per core)")
    parser.add_argument("--json", action="store_true", help="print JSON (with per-class IoU or AP) instead of the table")
    keyframes.add_arguments(
        parser,
        default=None,
        extra_help=". Given, each video runs in order through the runtime's torch backend with that scheduler (-l for "
        "fixed) instead of the l-pairs protocol, and the result gives miou, key_share and p5_frame_miou",
    )
    parser.set_defaults(handler=run)


def run_scheduled(args: argparse.Namespace, video) -> int:
    import dataclasses
    import json

    from dff.eval.scheduled import evaluate_scheduled
    from dff.runtime import open_backend

    keyframes.scheduler_from_args(args, args.key_interval, args.checkpoint)  # the options' errors before any work
    from dff.train.distributed import resolve_device

    device = str(resolve_device(args.device))
    with open_backend("torch", model=args.checkpoint, device=device) as backend:
        result = evaluate_scheduled(
            backend, video.sequences(), lambda: keyframes.scheduler_from_args(args, args.key_interval, args.checkpoint), resize=video.resize
        )
    if args.json:
        print(json.dumps(dataclasses.asdict(result), indent=2))
    else:
        print(
            f"{result.scheduler}: mIoU {100 * result.miou:.1f}%, key frames {100 * result.key_share:.1f}%, 5th percentile of "
            f"per-frame mIoU {100 * result.p5_frame_miou:.1f}% over {result.scored_frames} labelled of {result.frames} frames, "
            f"{result.fps:.1f} fps"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    from dff.checkpoint import load_checkpoint
    from dff.config import load_config
    from dff.detection.evaluate import evaluate_detection_modes
    from dff.errors import ConfigError
    from dff.eval.protocol import evaluate_modes
    from dff.eval.report import table, to_json
    from dff.model_task import task_of
    from dff.train.data import VideoConfig
    from dff.train.distributed import resolve_device

    detector = task_of(args.checkpoint) == "detection"
    if args.key_interval is None:
        args.key_interval = 10 if detector else 5
    if not (args.key_interval >= 1):
        raise ConfigError(f"--key-interval must be >= 1, got {args.key_interval}")
    if detector and args.scheduler is not None:
        raise ConfigError(
            f"{args.checkpoint} is a detection checkpoint: --scheduler scores per-pixel labels; drop it to get mAP@0.5 "
            "per mode by the l-pairs protocol"
        )
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    video = load_config(VideoConfig, args.data)
    if args.scheduler is not None:
        return run_scheduled(args, video)
    model, config = load_checkpoint(args.checkpoint)
    evaluate = evaluate_detection_modes if detector else evaluate_modes
    results = evaluate(  # type: ignore[operator]
        model,
        config,
        video,
        modes=args.modes,
        key_interval=args.key_interval,
        sff_preset=args.sff_preset,
        device=resolve_device(args.device),
    )
    print(to_json(results, class_names=config.names) if args.json else table(results))
    return 0
