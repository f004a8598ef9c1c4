"""What ``dff train`` and ``dff train-flow`` share: a ``NAME CONFIG [--resume]`` parser, running a training and telling how it ended."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_training_parser(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    description: str,
    config_class: str,
    handler: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """``dff NAME CONFIG [--resume]``, CONFIG a YAML or JSON file of ``config_class`` (its dotted name)."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.add_argument("config", help=f"YAML or JSON file of {config_class}")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/checkpoint.safetensors")
    parser.set_defaults(handler=handler)
    return parser


def train_from_config(args: argparse.Namespace, config_type: type, train: Callable[..., Path]) -> int:
    """Load ``args.config`` as ``config_type`` and :func:`report` ``train(config, resume=args.resume)``."""
    from dff.config import load_config

    config: Any = load_config(config_type, args.config)
    return report(lambda: train(config, resume=args.resume), config.output_dir)


def report(training: Callable[[], Path], output_dir: str) -> int:
    """Run ``training``; rank 0 prints the model it wrote, or where an interrupted run can resume from."""
    from dff.train.loop import CHECKPOINT_NAME

    main_process = os.environ.get("RANK", "0") == "0"
    try:
        path = training()
    except KeyboardInterrupt:
        if main_process:
            checkpoint = Path(output_dir) / CHECKPOINT_NAME
            where = f"the last checkpoint {checkpoint} is intact; continue with --resume" if checkpoint.is_file() else "no checkpoint was written yet"
            print(f"interrupted: {where}", file=sys.stderr)
        return 130
    if main_process:
        print(f"wrote {path}")
    return 0
