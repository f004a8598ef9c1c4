"""``dff train-flow CONFIG``: pre-train the flow network F on flying-shapes pairs (our Flying Chairs)."""

from __future__ import annotations

import argparse

from dff.commands._training import add_training_parser, train_from_config


def register(subparsers: argparse._SubParsersAction) -> None:
    add_training_parser(
        subparsers,
        "train-flow",
        help="pre-train the flow network F on flying-shapes pairs",
        description="Pre-train F by end-point error against exact flow. Multi-process: torchrun --nproc_per_node N -m dff.cli train-flow CONFIG.",
        config_class="dff.train.config.FlowTrainConfig",
        handler=run,
    )


def run(args: argparse.Namespace) -> int:
    from dff.train.config import FlowTrainConfig
    from dff.train.flow import train_flow

    return train_from_config(args, FlowTrainConfig, train_flow)
