"""``export_checkpoint``: a checkpoint → feature, flow, task, warp and warp_plugin ONNX files and their manifest.

The directory is written whole or not at all: every file goes into a temporary directory next to
the target, which replaces the target only once the manifest is written. A failure removes the
temporary directory and leaves an existing export untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import onnx
import torch

from dff import __version__
from dff.checkpoint import load_checkpoint
from dff.config import ModelConfig
from dff.errors import ConfigError, ExportError
from dff.export.options import ExportOptions
from dff.export.torch_graphs import FeatureGraph, FlowGraph, TaskGraph, export_graph
from dff.export.warp_graph import warp_model, warp_plugin_model
from dff.frames import FEATURE_STRIDE
from dff.manifest import (
    FEAT,
    FLOW,
    FORMAT,
    FRAME,
    KEY_FEAT,
    KEY_FRAME,
    LABELS,
    MANIFEST_NAME,
    PROBS,
    SCALE,
    SCORES,
    Manifest,
    ModelFile,
    Models,
    Preprocessing,
    SizeRange,
    TensorSpec,
    sha256_file,
    write_manifest,
)

ROLES = ("feature", "flow", "task", "warp", "warp_plugin")
#: Labels are uint8: class indices must fit.
MAX_CLASSES = 256


Interfaces = dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]


def interfaces(config: ModelConfig, *, dtype: str, sizes: SizeRange) -> Interfaces:
    """Each role's (inputs, outputs): names, dtypes and shapes, strings naming dynamic dimensions."""
    fixed = sizes.min_height == sizes.max_height and sizes.min_width == sizes.max_width
    h, w = (sizes.min_height, sizes.min_width) if fixed else ("H", "W")
    fh, fw = (sizes.min_height // FEATURE_STRIDE, sizes.min_width // FEATURE_STRIDE) if fixed else ("H/16", "W/16")
    c, k = config.channels, config.num_classes

    def feature_map(name: str, channels: int) -> TensorSpec:
        return TensorSpec(name=name, dtype=dtype, shape=("N", channels, fh, fw))

    def frame(name: str) -> TensorSpec:
        return TensorSpec(name=name, dtype="uint8", shape=("N", h, w, 3))

    warp_io = ((feature_map(KEY_FEAT, c), feature_map(FLOW, 2), feature_map(SCALE, c)), (feature_map(FEAT, c),))
    return {
        "feature": ((frame(FRAME),), (feature_map(FEAT, c),)),
        "flow": ((frame(KEY_FRAME), frame(FRAME)), (feature_map(FLOW, 2), feature_map(SCALE, c))),
        "task": (
            (feature_map(FEAT, c),),
            (feature_map(SCORES, k), feature_map(PROBS, k), TensorSpec(name=LABELS, dtype="uint8", shape=("N", h, w))),
        ),
        "warp": warp_io,
        "warp_plugin": warp_io,
    }


def _dynamic_axes(specs: tuple[TensorSpec, ...]) -> dict[str, dict[int, str]]:
    return {s.name: {axis: dim for axis, dim in enumerate(s.shape) if isinstance(dim, str)} for s in specs}


def _write_models(
    directory: Path, model: torch.nn.Module, config: ModelConfig, options: ExportOptions, specs: Interfaces
) -> dict[str, Path]:
    """Write the five ONNX files into ``directory``; returns their paths by role."""
    dtype = torch.float16 if options.dtype == "float16" else torch.float32
    sizes = options.sizes()
    # Trace at a mid-range size and batch 2, so that no dimension is 1 and nothing degenerate is baked in.
    height, width = sizes.nearest(256, 320)
    frames = torch.randint(0, 256, (2, height, width, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    paths = {role: directory / f"{role}.onnx" for role in ROLES}
    feature = FeatureGraph(feature_net=model.feature_net.to(dtype), config=config, dtype=dtype).eval()
    flow = FlowGraph(flow_net=model.flow_net.to(dtype), config=config, dtype=dtype).eval()
    task = TaskGraph(task_net=model.task_net.to(dtype)).eval()
    with torch.no_grad():
        feat = feature(frames)
    for role, module, example in (
        ("feature", feature, (frames,)),
        ("flow", flow, (frames, frames.flip(1))),
        ("task", task, (feat,)),
    ):
        inputs, outputs = specs[role]
        export_graph(
            module,
            example,
            paths[role],
            input_names=[s.name for s in inputs],
            output_names=[s.name for s in outputs],
            dynamic_axes=_dynamic_axes(inputs + outputs),
            opset=options.opset,
        )
    batch, _, feat_h, feat_w = specs["warp"][0][0].shape
    warp_shape = dict(opset=options.opset, dtype=options.dtype, batch=batch, channels=config.channels, feat_hw=(feat_h, feat_w))
    onnx.save(warp_model(**warp_shape), paths["warp"])
    onnx.save(warp_plugin_model(**warp_shape), paths["warp_plugin"])
    return paths


def export_checkpoint(checkpoint: str | Path, out: str | Path, options: ExportOptions | None = None) -> Manifest:
    """Export ``checkpoint`` into the directory ``out`` (replaced atomically); returns the manifest written."""
    checkpoint, out, options = Path(checkpoint), Path(out), options or ExportOptions()
    model, config = load_checkpoint(checkpoint)
    if not (config.num_classes <= MAX_CLASSES):
        raise ConfigError(f"labels are uint8, so at most {MAX_CLASSES} classes can be exported; got {config.num_classes}")
    _check_target(out)
    sizes = options.sizes()
    specs = interfaces(config, dtype=options.dtype, sizes=sizes)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        # mkdtemp creates the directory private (0700); the export is as readable as any directory made here.
        os.chmod(staging, 0o755)
    except OSError as error:
        raise ExportError(f"cannot create the export directory {out}: {error}") from None
    try:
        paths = _write_models(staging, model, config, options, specs)
        files = {
            role: ModelFile(file=path.name, sha256=sha256_file(path), inputs=specs[role][0], outputs=specs[role][1])
            for role, path in paths.items()
        }
        manifest = Manifest(
            format=FORMAT,
            exporter_version=__version__,
            model=config,
            opset=options.opset,
            dtype=options.dtype,
            feature_stride=FEATURE_STRIDE,
            class_names=config.names,
            preprocessing=Preprocessing(mean=config.mean, std=config.std),
            sizes=sizes,
            models=Models(**files),
            checkpoint_sha256=sha256_file(checkpoint),
        )
        write_manifest(staging, manifest)
        _replace_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _check_target(out: Path) -> None:
    """Refuse to replace anything but a new path, an empty directory or an earlier export."""
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file: give a directory path (it is created, or replaced if it is an export)")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
        raise ExportError(
            f"--out {out} is a non-empty directory without {MANIFEST_NAME}: it is not an earlier export, so it is "
            "not replaced; give a new or empty directory"
        )


def _replace_directory(staging: Path, out: Path) -> None:
    """Move ``staging`` to ``out``; an existing ``out`` is moved aside first and deleted only after the move."""
    if not out.exists():
        os.rename(staging, out)
        return
    previous = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, previous)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(previous, out)
        raise
    shutil.rmtree(previous, ignore_errors=True)
