"""``dff train``: one variant of Table 3, from its starting checkpoints to ``model.safetensors``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from dff.errors import ConfigError
from dff.models import DeepFeatureFlow, build_model
from dff.models.preprocess import FrameNormalizer
from dff.train.config import TrainConfig
from dff.train.data import collate_pairs
from dff.train.distributed import start, stop
from dff.train.loop import run_training
from dff.train.objectives import SegmentationObjective
from dff.train.parts import FLOW_PARTS, NETWORK_PARTS, load_parts
from dff.train.variants import VARIANTS


def build_variant(config: TrainConfig) -> tuple[DeepFeatureFlow, list[nn.Module]]:
    """The model ``config.variant`` starts from (its init checkpoints loaded) and the parts it keeps fixed."""
    variant = VARIANTS[config.variant]
    model = build_model(config.model)
    if config.init_network is not None:
        load_parts(model, config.model, config.init_network, NETWORK_PARTS)
    if config.init_flow is not None:
        load_parts(model, config.model, config.init_flow, FLOW_PARTS)
    frozen: list[nn.Module] = []
    if not variant.train_network:
        frozen += [getattr(model, part) for part in NETWORK_PARTS]
    if not variant.train_flow:
        frozen += [getattr(model, part) for part in FLOW_PARTS]
    return model, frozen


def train(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train ``config.variant``; returns the path of the final model (``OUTPUT_DIR/model.safetensors``)."""
    variant = VARIANTS[config.variant]
    dataset = config.data.pairs(single_frames=not variant.pairs)
    model_config = config.model
    if len(dataset.class_names) != model_config.num_classes:
        raise ConfigError(
            f"model.num_classes is {model_config.num_classes} but the {config.data.dataset} data has "
            f"{len(dataset.class_names)} classes {list(dataset.class_names)}"
        )
    if model_config.class_names and tuple(model_config.class_names) != tuple(dataset.class_names):
        raise ConfigError(f"model.class_names {list(model_config.class_names)} differ from the data's {list(dataset.class_names)}")
    # The checkpoint carries the data's class names, so the runtime can name what it segments.
    model_config = dataclasses.replace(model_config, class_names=tuple(dataset.class_names))
    group = start(config.device)
    try:
        torch.manual_seed(config.seed)
        model, frozen = build_variant(config)
        objective = SegmentationObjective(
            model=model, normalizer=FrameNormalizer(mean=model_config.mean, std=model_config.std), frozen=frozen
        )
        return run_training(
            objective=objective,
            model=model,
            model_config=model_config,
            dataset=dataset,
            settings=config,
            group=group,
            resume=resume,
            run_description=config.run_description(),
            collate=collate_pairs,
        )
    finally:
        stop(group)
