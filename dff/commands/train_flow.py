"""``dff train-flow CONFIG``: pre-train the flow network F on flying-shapes pairs (our Flying Chairs)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train-flow",
        help="pre-train the flow network F on flying-shapes pairs",
        description="Pre-train F by end-point error against exact flow. Multi-process: torchrun --nproc_per_node N -m dff.cli train-flow CONFIG.",
    )
    parser.add_argument("config", help="YAML or JSON file of dff.train.config.FlowTrainConfig")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.safetensors")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dff.commands._training import report
    from dff.config import load_config
    from dff.train.config import FlowTrainConfig
    from dff.train.flow import train_flow

    config = load_config(FlowTrainConfig, args.config)
    return report(lambda: train_flow(config, resume=args.resume), config.output_dir)
