"""What a model on disk does, read without loading it: ``segmentation`` or ``detection``. Torch-free.

Commands check their outputs against it before any work (``dff run --labels-dir`` on a detector is refused
before the folder is made). Files written before the task was recorded are segmentation models.
"""

from __future__ import annotations

import json
from pathlib import Path

from dff.checkpoint_path import checkpoint_file, is_checkpoint
from dff.errors import CheckpointError

#: The checkpoint metadata key holding the model configuration (dff.checkpoint.CONFIG_KEY; that module needs torch).
_CONFIG_KEY = "dff.model_config"


def task_of(model: str | Path) -> str:
    """The task of an export directory or a checkpoint; DFFError subclasses (naming the problem) if it is neither."""
    if is_checkpoint(model):
        from safetensors import SafetensorError, safe_open

        path = checkpoint_file(model)
        try:
            with safe_open(str(path), framework="numpy") as handle:
                config = json.loads((handle.metadata() or {}).get(_CONFIG_KEY, "{}"))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"checkpoint {path} is not a readable safetensors file: {error}") from None
        return str(config.get("task", "segmentation"))
    from dff.manifest import load_manifest

    return load_manifest(model, verify=False).task
