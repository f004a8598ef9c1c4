"""``dff train``'s loop for models that a ModelConfig cannot describe: Figure 3's feature-net variants, Table 5's split models.

:func:`dff.train.segmentation.train` builds its model from ``config.model``. Here the caller
builds and starts the model and passes it in; everything else is as there: the variant's frame
pairs and fixed parts (Table 3), the data, the SGD schedule, the loop of :mod:`dff.train.loop`.
``config.model`` only gives the normalisation. The loop writes checkpoints into
``config.output_dir`` under ``config.model``'s configuration, which does not describe this model:
they are scratch files, so give a temporary ``output_dir``.
"""

from __future__ import annotations

import torch

from dff.errors import ConfigError
from dff.models import DeepFeatureFlow
from dff.models.preprocess import FrameNormalizer
from dff.train.config import TrainConfig
from dff.train.data import collate_pairs
from dff.train.distributed import start, stop
from dff.train.loop import run_training
from dff.train.objectives import SegmentationObjective
from dff.train.parts import FLOW_PARTS, NETWORK_PARTS
from dff.train.variants import VARIANTS


def train_built_model(model: DeepFeatureFlow, config: TrainConfig) -> DeepFeatureFlow:
    """Train ``model`` in place as ``config.variant`` prescribes; returns it, every part trainable again."""
    if not (config.init_network is None and config.init_flow is None):
        raise ConfigError(
            "a built model is started by its caller: leave init_network and init_flow unset, got "
            f"init_network={config.init_network!r}, init_flow={config.init_flow!r}"
        )
    variant = VARIANTS[config.variant]
    dataset = config.data.pairs(single_frames=not variant.pairs)
    fixed = [] if variant.train_network else list(NETWORK_PARTS)
    fixed += [] if variant.train_flow else list(FLOW_PARTS)
    frozen = [getattr(model, part) for part in fixed]
    group = start(config.device)
    try:
        torch.manual_seed(config.seed)
        objective = SegmentationObjective(
            model=model, normalizer=FrameNormalizer(mean=config.model.mean, std=config.model.std), frozen=frozen
        )
        run_training(
            objective=objective,
            model=model,
            model_config=config.model,
            dataset=dataset,
            settings=config,
            group=group,
            resume=False,
            run_description=config.run_description(),
            collate=collate_pairs,
        )
    finally:
        stop(group)
    # SegmentationObjective froze the fixed parts for good; the next stage (Frame, then DFF) may train them.
    for module in frozen:
        module.requires_grad_(True)
    return model.eval()
