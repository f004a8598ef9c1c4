"""``dff init``: a randomly initialised checkpoint of any configuration."""

from __future__ import annotations

import argparse
import os
import typing
from pathlib import Path

from dff.config import FeatureArch, FlowArch, OutputStride, Task
from dff.errors import OutputError

#: The file a checkpoint folder holds (what `dff train` writes too).
CHECKPOINT_NAME = "model.safetensors"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("init", help="write a randomly initialised checkpoint")
    parser.add_argument(
        "--task", choices=typing.get_args(Task), default="segmentation",
        help="what N_task outputs: per-pixel labels, or boxes (R-FCN; with --feature resnet50, resnet101 or tiny)",
    )
    parser.add_argument("--feature", choices=typing.get_args(FeatureArch), default="resnet101")
    parser.add_argument("--flow", choices=typing.get_args(FlowArch), default="simple")
    parser.add_argument("--num-classes", type=int, default=19, help="score maps of N_task: C categories + background")
    parser.add_argument("--feature-channels", type=int, default=None, help="width of f (default: 1024, tiny: 32)")
    parser.add_argument("--frozen-bn", action="store_true", help="freeze BatchNorm statistics and affine parameters")
    parser.add_argument(
        "--output-stride", type=int, choices=typing.get_args(OutputStride), default=16,
        help="feature grid stride: 16 (the paper's) or 8 (conv4 dilated too; detection only, for small frames)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", required=True, help=f"checkpoint file (.safetensors), or folder (existing, or ending in /) for {CHECKPOINT_NAME}"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    parser.set_defaults(handler=run)


def checkpoint_target(out: str, *, force: bool = False) -> Path:
    """The file ``dff init --out OUT`` writes, checked before any work; OutputError if it is not clear or exists.

    OUT ending in .safetensors is the file; an existing folder, or OUT ending in a slash, is the folder
    holding model.safetensors (created if missing); anything else is refused with both readings spelled
    out. An existing checkpoint is overwritten only with ``force``.
    """
    from dff.atomic import check_output_dir, check_output_file

    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        target = check_output_dir(path, "--out") / CHECKPOINT_NAME
    elif path.suffix == ".safetensors":
        check_output_dir(path.parent, "--out's folder")
        target = check_output_file(path, "--out")
    else:
        raise OutputError(
            f"--out {out} is neither a .safetensors file nor a folder: give {path.with_suffix('.safetensors')} "
            f"for a file, or {out}{os.sep} for the folder {path / CHECKPOINT_NAME}"
        )
    if target.is_dir():
        raise OutputError(f"{target} is a folder, not a checkpoint file: choose another --out")
    if target.exists() and not force:
        size = target.stat().st_size
        raise OutputError(
            f"{target} already exists (a file of {size / 1e6:.1f} MB): "
            "pass --force to overwrite it with random weights, or choose another --out"
        )
    return target


def run(args: argparse.Namespace) -> int:
    import torch

    from dff.checkpoint import save_checkpoint
    from dff.config import ModelConfig
    from dff.models import build_model

    config = ModelConfig(
        task=args.task,
        feature=args.feature,
        flow=args.flow,
        num_classes=args.num_classes,
        feature_channels=args.feature_channels,
        frozen_bn=args.frozen_bn,
        output_stride=args.output_stride,
    )
    out = checkpoint_target(args.out, force=args.force)
    torch.manual_seed(args.seed)
    save_checkpoint(out, build_model(config), config)
    print(f"wrote {out} ({config.task}, {config.feature} + {config.flow}, {config.num_classes} classes, {config.channels}-d features)")
    return 0
