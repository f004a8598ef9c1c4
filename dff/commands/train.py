"""``dff train CONFIG``: train one variant of Table 3 (frame, dff, dff-fix-n, dff-fix-f, dff-separate)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a Table 3 variant: frame, dff, dff-fix-n, dff-fix-f, dff-separate",
        description="Train a variant of Table 3 on labelled video. Multi-process: torchrun --nproc_per_node N -m dff.train CONFIG.",
    )
    parser.add_argument("config", help="YAML or JSON file of dff.train.config.TrainConfig")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.safetensors")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dff.commands._training import report
    from dff.config import load_config
    from dff.train.config import TrainConfig
    from dff.train.segmentation import train

    config = load_config(TrainConfig, args.config)
    return report(lambda: train(config, resume=args.resume), config.output_dir)
