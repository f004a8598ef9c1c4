"""``dff train-flow``: F's pre-training on flying-shapes pairs (our Flying Chairs, Section 4).

The whole DeepFeatureFlow of ``config.model`` is saved, N untouched, so the result is an ordinary
checkpoint; the *DFF* variants take its ``flow_net`` with ``init_flow``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dff.data.flying_shapes import FlyingShapes
from dff.data.pairs import FlowPairDataset
from dff.errors import ConfigError
from dff.frames import FEATURE_STRIDE
from dff.models import build_model
from dff.models.preprocess import FrameNormalizer
from dff.train.config import FlowTrainConfig
from dff.train.data import collate_flow
from dff.train.distributed import start, stop
from dff.train.loop import run_training
from dff.train.objectives import FlowObjective
from dff.train.parts import FLOW_PARTS, NETWORK_PARTS, load_parts


def train_flow(config: FlowTrainConfig, *, resume: bool = False) -> Path:
    """Pre-train F; returns the path of the final model (``OUTPUT_DIR/model.safetensors``)."""
    shapes = config.data
    if not (shapes.height % FEATURE_STRIDE == 0 and shapes.width % FEATURE_STRIDE == 0):
        raise ConfigError(f"data.height and data.width must be multiples of {FEATURE_STRIDE}, got {shapes.height}x{shapes.width}")
    group = start(config.device)
    try:
        torch.manual_seed(config.seed)
        model = build_model(config.model)
        if config.init is not None:
            load_parts(model, config.model, config.init, FLOW_PARTS)
        for part in NETWORK_PARTS:
            getattr(model, part).requires_grad_(False)
        objective = FlowObjective(flow_net=model.flow_net, normalizer=FrameNormalizer(mean=config.model.mean, std=config.model.std))
        return run_training(
            objective=objective,
            model=model,
            model_config=config.model,
            dataset=FlowPairDataset(FlyingShapes(shapes)),
            settings=config,
            group=group,
            resume=resume,
            run_description=config.run_description(),
            collate=collate_flow,
        )
    finally:
        stop(group)
