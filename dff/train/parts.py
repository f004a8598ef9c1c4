"""Starting a model's parts from other checkpoints: N (feature_net, task_net) from one, F (flow_net) from another."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from dff.checkpoint import load_weights, read_checkpoint
from dff.config import ModelConfig
from dff.errors import CheckpointError
from dff.models import DeepFeatureFlow

NETWORK_PARTS = ("feature_net", "task_net")
FLOW_PARTS = ("flow_net",)
#: The ModelConfig fields each part's weights depend on.
_SHAPING_FIELDS = {
    "feature_net": ("feature", "channels", "frozen_bn"),
    "task_net": ("channels", "num_classes"),
    "flow_net": ("flow", "channels"),
}


def load_parts(model: DeepFeatureFlow, config: ModelConfig, path: str | Path, parts: Sequence[str]) -> None:
    """Copy the weights of ``parts`` (attribute names of DeepFeatureFlow) from checkpoint ``path`` into ``model``."""
    checkpoint = read_checkpoint(path)
    for part in parts:
        differing = [f for f in _SHAPING_FIELDS[part] if getattr(checkpoint.config, f) != getattr(config, f)]
        if differing:
            raise CheckpointError(
                f"cannot start {part} from {path}: its model configuration differs in "
                + ", ".join(f"{f} ({getattr(checkpoint.config, f)!r} there, {getattr(config, f)!r} here)" for f in differing)
            )
        prefix = part + "."
        weights = {name[len(prefix):]: tensor for name, tensor in checkpoint.weights.items() if name.startswith(prefix)}
        load_weights(getattr(model, part), weights, f"{path} ({part})")
