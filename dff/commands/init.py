"""``dff init``: a randomly initialised checkpoint of any configuration."""

from __future__ import annotations

import argparse
import typing

from dff.config import FeatureArch, FlowArch


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="write a randomly initialised checkpoint")
    parser.add_argument("--feature", choices=typing.get_args(FeatureArch), default="resnet101")
    parser.add_argument("--flow", choices=typing.get_args(FlowArch), default="simple")
    parser.add_argument("--num-classes", type=int, default=19, help="score maps of N_task: C categories + background")
    parser.add_argument("--feature-channels", type=int, default=None, help="width of f (default: 1024, tiny: 32)")
    parser.add_argument("--frozen-bn", action="store_true", help="freeze BatchNorm statistics and affine parameters")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="checkpoint file (.safetensors) or directory")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from dff.checkpoint import save_checkpoint
    from dff.config import ModelConfig
    from dff.models import build_model

    config = ModelConfig(
        feature=args.feature,
        flow=args.flow,
        num_classes=args.num_classes,
        feature_channels=args.feature_channels,
        frozen_bn=args.frozen_bn,
    )
    torch.manual_seed(args.seed)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        out = out / "model.safetensors"
    save_checkpoint(out, build_model(config), config)
    print(f"wrote {out} ({config.feature} + {config.flow}, {config.num_classes} classes, {config.channels}-d features)")
    return 0
