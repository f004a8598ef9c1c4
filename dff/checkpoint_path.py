"""Where a checkpoint is on disk: a ``.safetensors`` file, or a folder holding ``model.safetensors``. Torch-free.

``dff init --out DIR/`` and ``dff train`` write ``DIR/model.safetensors``, so every command that
reads a checkpoint also takes that folder. An export directory given where a checkpoint belongs
(or a checkpoint where an export belongs) is named for what it is, with the command that fits.
"""

from __future__ import annotations

from pathlib import Path

from dff.errors import CheckpointError

#: The file ``dff init --out DIR/`` and ``dff train`` write into their folder.
CHECKPOINT_FILE = "model.safetensors"
#: What marks an export directory (``dff.manifest.MANIFEST_NAME``; repeated here so that this module imports nothing).
EXPORT_MARKER = "manifest.json"


def checkpoint_file(path: str | Path) -> Path:
    """The checkpoint file ``path`` names: itself, or ``path/model.safetensors`` for a folder; CheckpointError otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist (create one with `dff init` or `dff train`)")
    if (path / EXPORT_MARKER).is_file():
        raise CheckpointError(
            f"{path} is a dff export (ONNX files and {EXPORT_MARKER}), not a checkpoint: this command and "
            f"--backend torch take the .safetensors checkpoint the export was made from (or the folder holding its "
            f"{CHECKPOINT_FILE}); run the export itself with --backend onnxruntime, openvino or tensorrt"
        )
    if (path / CHECKPOINT_FILE).is_file():
        return path / CHECKPOINT_FILE
    others = sorted(p.name for p in path.glob("*.safetensors"))
    hint = f" (it holds {', '.join(others[:3])}: give one of them)" if others else ""
    raise CheckpointError(
        f"checkpoint folder {path} has no {CHECKPOINT_FILE}{hint}; give a .safetensors file from `dff init` or `dff train`"
    )


def is_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` looks like a checkpoint: a .safetensors file, or a folder with model.safetensors and no manifest."""
    path = Path(path)
    if path.is_file():
        return path.suffix == ".safetensors"
    return path.is_dir() and (path / CHECKPOINT_FILE).is_file() and not (path / EXPORT_MARKER).exists()


def export_dir_for(checkpoint: str | Path) -> Path:
    """A new folder to export ``checkpoint`` into: beside it, named after it (``ckpt/`` → ``ckpt-export``), never existing."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_dir() or checkpoint.name == CHECKPOINT_FILE:
        folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
        folder = folder.absolute() if folder.name in ("", ".") else folder
        base = folder.parent / f"{folder.name}-export"
    else:
        base = checkpoint.with_name(f"{checkpoint.stem}-export")
    candidate, number = base, 2
    while candidate.exists():
        candidate, number = base.with_name(f"{base.name}-{number}"), number + 1
    return candidate
