"""Checkpoints: safetensors weights with the model configuration as JSON metadata; no pickle.

One ``.safetensors`` file holds everything needed to rebuild the model, so a checkpoint can
be moved, hashed and loaded on its own. Training state (optimizer buffers, iteration) may ride
along as extra tensors under ``state.`` keys and string metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dff.atomic import atomic_path
from dff.checkpoint_path import checkpoint_file
from dff.config import ModelConfig, from_dict, to_dict
from dff.errors import CheckpointError, ConfigError

CONFIG_KEY = "dff.model_config"
FORMAT_KEY = "dff.format"
FORMAT = "dff-checkpoint-1"
STATE_PREFIX = "state."


@dataclass
class Checkpoint:
    """What a checkpoint file holds."""

    config: ModelConfig
    weights: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: ModelConfig,
    *,
    state: dict[str, torch.Tensor] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``model``'s weights and ``config`` to ``path`` atomically (temporary file, then rename)."""
    from safetensors.torch import save

    path = Path(path)
    tensors = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    tensors.update({STATE_PREFIX + name: t.detach().contiguous().cpu() for name, t in (state or {}).items()})
    meta = dict(metadata or {})
    meta.update({FORMAT_KEY: FORMAT, CONFIG_KEY: json.dumps(to_dict(config))})
    # Serialised here and written by us: a full disk is then an OSError with its cause (safetensors' own writer
    # raises an error that names none we can act on).
    with atomic_path(path) as temp:
        temp.write_bytes(save(tensors, metadata=meta))
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint file (or the folder holding its ``model.safetensors``); every failure names the file and what is wrong."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = checkpoint_file(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"checkpoint {path} is not a readable safetensors file (truncated or corrupt?): {error}"
        ) from None
    if meta.get(FORMAT_KEY) != FORMAT or CONFIG_KEY not in meta:
        raise CheckpointError(
            f"checkpoint {path} has no dff model configuration in its metadata: it was not written by dff's save_checkpoint"
        )
    try:
        config = from_dict(ModelConfig, json.loads(meta[CONFIG_KEY]), where=f"{path}:{CONFIG_KEY}")
    except (json.JSONDecodeError, ConfigError) as error:
        raise CheckpointError(f"checkpoint {path} has an invalid model configuration: {error}") from None
    weights = {k: v for k, v in tensors.items() if not k.startswith(STATE_PREFIX)}
    state = {k[len(STATE_PREFIX):]: v for k, v in tensors.items() if k.startswith(STATE_PREFIX)}
    extra = {k: v for k, v in meta.items() if k not in (FORMAT_KEY, CONFIG_KEY)}
    return Checkpoint(config=config, weights=weights, state=state, metadata=extra)


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load ``weights`` into ``model``, naming missing, unexpected and mis-shaped tensors."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    mis_shaped = sorted(
        f"{k}: file {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(weights)
        if weights[k].shape != expected[k].shape
    )
    if missing or unexpected or mis_shaped:
        parts = [
            f"{label} {items[:5]}{' …' if len(items) > 5 else ''}"
            for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mis_shaped))
            if items
        ]
        raise CheckpointError(f"checkpoint {source} does not match its model configuration: " + "; ".join(parts))
    model.load_state_dict(weights)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ModelConfig]:
    """Rebuild the model from a checkpoint file (or its folder): (model in eval mode, its configuration)."""
    from dff.models import build_model

    path = checkpoint_file(path)
    checkpoint = read_checkpoint(path)
    model = build_model(checkpoint.config)
    load_weights(model, checkpoint.weights, path)
    return model.eval(), checkpoint.config
