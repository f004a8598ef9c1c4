"""``dff eval CHECKPOINT DATA``: Table 4 for one model: mIoU and speed of frame, dff, copy and sff."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="mIoU and frames per second of frame, dff, copy and sff on labelled video (Table 4)",
        description="Evaluate a checkpoint by the paper's protocol: for each labelled frame i, the l pairs (k, i), k = i-l+1..i.",
    )
    parser.add_argument("checkpoint", help="model checkpoint (.safetensors), e.g. OUTPUT_DIR/model.safetensors of dff train, or that folder")
    parser.add_argument("data", help="YAML or JSON file of dff.train.data.VideoConfig: the labelled frames to evaluate")
    parser.add_argument("--modes", nargs="+", choices=("frame", "dff", "copy", "sff"), default=["frame", "dff", "copy", "sff"])
    parser.add_argument("--key-interval", "-l", type=int, default=5, help="key frame duration l (default 5, the paper's for Cityscapes)")
    parser.add_argument("--sff-preset", choices=("ultrafast", "fast", "medium"), default="medium", help="DIS optical flow preset for sff")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's, one per core)")
    parser.add_argument("--json", action="store_true", help="print JSON (with per-class IoU) instead of the table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dff.checkpoint import load_checkpoint
    from dff.config import load_config
    from dff.eval.protocol import evaluate_modes
    from dff.eval.report import table, to_json
    from dff.train.data import VideoConfig
    from dff.train.distributed import resolve_device

    if not (args.key_interval >= 1):
        from dff.errors import ConfigError

        raise ConfigError(f"--key-interval must be >= 1, got {args.key_interval}")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    from dff.model_task import task_of

    if task_of(args.checkpoint) != "segmentation":
        from dff.errors import ConfigError

        raise ConfigError(
            f"{args.checkpoint} is a {task_of(args.checkpoint)} checkpoint: dff eval scores segmentation (mIoU on labelled "
            "frames); detection mAP@0.5 per mode is dff.detection.evaluate (benchmarks/detection.py)"
        )
    video = load_config(VideoConfig, args.data)
    model, config = load_checkpoint(args.checkpoint)
    results = evaluate_modes(
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
