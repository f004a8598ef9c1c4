"""``dff train CONFIG``: train one variant of Table 3 (frame, dff, dff-fix-n, dff-fix-f, dff-separate)."""

from __future__ import annotations

import argparse

from dff.commands._training import add_training_parser, train_from_config


def register(subparsers: argparse._SubParsersAction) -> None:
    add_training_parser(
        subparsers,
        "train",
        help="train a Table 3 variant: frame, dff, dff-fix-n, dff-fix-f, dff-separate",
        description="Train a variant of Table 3 on labelled video. Multi-process: torchrun --nproc_per_node N -m dff.train CONFIG.",
        config_class="dff.train.config.TrainConfig",
        handler=run,
    )


def run(args: argparse.Namespace) -> int:
    from dff.train.config import TrainConfig

    return train_from_config(args, TrainConfig, _train_segmentation)


def _train_segmentation(config, *, resume):  # type: ignore[no-untyped-def]
    """dff.train.segmentation.train, for segmentation models only: its losses are per pixel."""
    from dff.errors import ConfigError
    from dff.train.segmentation import train

    if config.model.task != "segmentation":
        raise ConfigError(
            f"model.task is {config.model.task!r}: dff train trains segmentation (per-pixel labels); detectors "
            "train with dff.detection.train (see benchmarks/detection.py)"
        )
    return train(config, resume=resume)
