"""Training a detector on pairs with :func:`dff.train.loop.run_training`: the segmentation loop, R-FCN's objective.

Table 3's variants come from which pairs are drawn and which parts are fixed: *Frame* draws
k = i only (``max_offset=0``) and fixes F; *DFF* draws 0 ≤ i − k ≤ 9 and trains everything.
The loop's checkpoints carry ``model_config``; :func:`load_detector` rebuilds the detector of
that configuration and loads them (``dff.checkpoint.load_checkpoint`` would build the
segmentation model).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from dff.checkpoint import load_weights, read_checkpoint
from dff.config import ModelConfig
from dff.detection.data import DetectionPairDataset, collate_detection_pairs
from dff.detection.ground_truth import BoxedSequence
from dff.detection.model import build_detection_model
from dff.detection.objective import DetectionObjective
from dff.models import DeepFeatureFlow
from dff.models.preprocess import FrameNormalizer
from dff.train.config import RunConfig
from dff.train.distributed import start, stop
from dff.train.loop import run_training

#: DeepFeatureFlow's parts, by the names ``frozen_parts`` takes.
PARTS = ("feature_net", "flow_net", "task_net")


def train_detector(
    model: DeepFeatureFlow,
    *,
    sequences: Sequence[BoxedSequence],
    settings: RunConfig,
    model_config: ModelConfig,
    max_offset: int,
    frozen_parts: Sequence[str] = (),
) -> Path:
    """Train ``model`` in place on pairs of ``sequences`` (every part but ``frozen_parts``); returns the final model's path."""
    if model_config.task != "detection":
        # The checkpoint records this configuration: dff eval, export and run read the task from it.
        raise ValueError(f"model_config.task must be 'detection' for a detector's checkpoint, got {model_config.task!r}")
    unknown = sorted(set(frozen_parts) - set(PARTS))
    if unknown:
        raise ValueError(f"frozen_parts must name parts of {list(PARTS)}, got {unknown}")
    dataset = DetectionPairDataset(sequences, max_offset=max_offset)
    if len(dataset.class_names) != model_config.num_classes:
        raise ValueError(f"the model has {model_config.num_classes} classes but the data has {len(dataset.class_names)}: {list(dataset.class_names)}")
    frozen = [getattr(model, part) for part in frozen_parts]
    group = start(settings.device)
    try:
        torch.manual_seed(settings.seed)
        objective = DetectionObjective(model=model, normalizer=FrameNormalizer(mean=model_config.mean, std=model_config.std), frozen=frozen)
        path = run_training(
            objective=objective,
            model=model,
            model_config=model_config,
            dataset=dataset,
            settings=settings,
            group=group,
            resume=False,
            run_description={**settings.run_description(), "task": "detection", "max_offset": max_offset, "frozen": sorted(frozen_parts)},
            collate=collate_detection_pairs,
        )
    finally:
        stop(group)
    # The objective froze the fixed parts for good; a next stage (Frame, then DFF) may train them.
    for module in frozen:
        module.requires_grad_(True)
    model.eval()
    return path


def load_detector(path: str | Path) -> tuple[DeepFeatureFlow, ModelConfig]:
    """A detector written by :func:`train_detector`: (model in eval mode, its configuration)."""
    checkpoint = read_checkpoint(path)
    model = build_detection_model(checkpoint.config)
    load_weights(model, checkpoint.weights, path)
    return model.eval(), checkpoint.config
