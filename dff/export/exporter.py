"""``export_checkpoint``: a checkpoint → feature, flow, task, warp and warp_plugin ONNX files, the fused key_path and
propagate graphs, and their manifest.

Every file goes into a staging directory first (beside a new target, inside an earlier export),
so a failure, Ctrl-C or SIGTERM removes it and leaves an existing export untouched; a staging
folder left by ``kill -9`` is removed by the next export to the same place. A new target is the
renamed staging folder; an earlier export (proved by its manifest) gets only its own files
replaced, so ``engines/`` and anything else a user keeps there survive.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import onnx
import torch

from dff import __version__
from dff.checkpoint import load_checkpoint
from dff.checkpoint_path import checkpoint_file
from dff.atomic import STAGING_MARKER, make_staging_dir, write_failure
from dff.config import ModelConfig
from dff.errors import ConfigError, ExportError
from dff.export.fused_graphs import write_fused_graphs
from dff.export.detection_graph import DetectionGraph, detection_outputs, pin_detection_rows
from dff.export.options import DEFAULT_MAX_DETECTIONS, ExportOptions
from dff.export.torch_graphs import FeatureGraph, FlowGraph, TaskGraph, export_graph
from dff.export.warp_graph import warp_model, warp_plugin_model
from dff.runtime.adaptive_signals import FLOW_STATS, STATISTICS_COUNT
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
    load_manifest,
    sha256_file,
    write_manifest,
)

ROLES = ("feature", "flow", "task", "warp", "warp_plugin")
#: Labels are uint8: class indices must fit.
MAX_CLASSES = 256
#: Name of the staging folder inside an earlier export that is being updated.
STAGING_NAME = "dff-export"


Interfaces = dict[str, tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]]


def interfaces(
    config: ModelConfig,
    *,
    dtype: str,
    sizes: SizeRange,
    flow_statistics: bool = True,
    max_detections: int = DEFAULT_MAX_DETECTIONS,
) -> Interfaces:
    """Each role's (inputs, outputs): names, dtypes and shapes, strings naming dynamic dimensions."""
    fixed = sizes.min_height == sizes.max_height and sizes.min_width == sizes.max_width
    h, w = (sizes.min_height, sizes.min_width) if fixed else ("H", "W")
    stride = config.output_stride
    fh, fw = (sizes.min_height // stride, sizes.min_width // stride) if fixed else (f"H/{stride}", f"W/{stride}")
    c, k = config.channels, config.num_classes

    def feature_map(name: str, channels: int) -> TensorSpec:
        return TensorSpec(name=name, dtype=dtype, shape=("N", channels, fh, fw))

    def frame(name: str) -> TensorSpec:
        return TensorSpec(name=name, dtype="uint8", shape=("N", h, w, 3))

    warp_io = ((feature_map(KEY_FEAT, c), feature_map(FLOW, 2), feature_map(SCALE, c)), (feature_map(FEAT, c),))
    flow_outputs = (feature_map(FLOW, 2), feature_map(SCALE, c))
    if flow_statistics:  # float32 whatever the export's dtype: 16 bytes a frame, read on the host
        flow_outputs += (TensorSpec(name=FLOW_STATS, dtype="float32", shape=("N", STATISTICS_COUNT)),)
    if config.task == "detection":
        task_io = ((feature_map(FEAT, c),), detection_outputs(max_detections))
    else:
        task_io = (
            (feature_map(FEAT, c),),
            (feature_map(SCORES, k), feature_map(PROBS, k), TensorSpec(name=LABELS, dtype="uint8", shape=("N", h, w))),
        )
    return {
        "feature": ((frame(FRAME),), (feature_map(FEAT, c),)),
        "flow": ((frame(KEY_FRAME), frame(FRAME)), flow_outputs),
        "task": task_io,
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
    flow = FlowGraph(
        flow_net=model.flow_net.to(dtype),
        config=config,
        dtype=dtype,
        statistics=options.flow_statistics,
        fixed_size=sizes.min_height == sizes.max_height and sizes.min_width == sizes.max_width,
    ).eval()
    if config.task == "detection":
        task = DetectionGraph(task_net=model.task_net.to(dtype), max_detections=options.max_detections).eval()
    else:
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
    if config.task == "detection":
        pin_detection_rows(paths["task"], options.max_detections)
    batch, _, feat_h, feat_w = specs["warp"][0][0].shape
    warp_shape = dict(opset=options.opset, dtype=options.dtype, batch=batch, channels=config.channels, feat_hw=(feat_h, feat_w))
    onnx.save(warp_model(**warp_shape), paths["warp"])
    onnx.save(warp_plugin_model(**warp_shape), paths["warp_plugin"])
    return paths


def export_checkpoint(checkpoint: str | Path, out: str | Path, options: ExportOptions | None = None) -> Manifest:
    """Export ``checkpoint`` into the directory ``out`` (replaced atomically); returns the manifest written."""
    checkpoint, out, options = checkpoint_file(checkpoint), Path(out), options or ExportOptions()
    model, config = load_checkpoint(checkpoint)
    if config.task == "segmentation" and not (config.num_classes <= MAX_CLASSES):
        raise ConfigError(f"labels are uint8, so at most {MAX_CLASSES} classes can be exported; got {config.num_classes}")
    out = _resolve_target(out)
    sizes = options.sizes()
    specs = interfaces(
        config,
        dtype=options.dtype,
        sizes=sizes,
        flow_statistics=options.flow_statistics,
        max_detections=options.max_detections,
    )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failure(out, error, "export directory") from None
    # A new export is staged beside the target and renamed into place; an earlier one is updated inside itself.
    staging = make_staging_dir(out if out.is_dir() else out.parent, STAGING_NAME if out.is_dir() else out.name)
    try:
        # mkdtemp creates the directory private (0700); the export is as readable as any directory made here.
        os.chmod(staging, 0o755)
        paths = _write_models(staging, model, config, options, specs)
        files = {
            role: ModelFile(file=path.name, sha256=sha256_file(path), inputs=specs[role][0], outputs=specs[role][1])
            for role, path in paths.items()
        }
        if options.fused_graphs:
            files |= write_fused_graphs(staging, files)
        manifest = Manifest(
            format=FORMAT,
            exporter_version=__version__,
            model=config,
            opset=options.opset,
            dtype=options.dtype,
            feature_stride=config.output_stride,
            class_names=config.names,
            preprocessing=Preprocessing(mean=config.mean, std=config.std),
            sizes=sizes,
            models=Models(**files),
            checkpoint_sha256=sha256_file(checkpoint),
        )
        write_manifest(staging, manifest)
        (staging / STAGING_MARKER).unlink()
        if out.is_dir():
            _update_export(staging, out, manifest)
        else:
            os.rename(staging, out)
    except OSError as error:
        raise write_failure(out, error, "export directory") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest


def _resolve_target(out: Path) -> Path:
    """Where the export goes: ``out``, or the folder a symbolic link ``out`` points to (written through).

    Refused: a file, a dangling link, and a folder that is neither empty nor provably an earlier export.
    """
    if out.is_symlink():
        target = out.resolve()
        if not target.is_dir():
            raise ExportError(
                f"--out {out} is a symbolic link to {target}, which is not a folder: create {target}, or give another --out"
            )
        out = target
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file: give a directory path (it is created, or updated if it is an export)")
    if out.is_dir():
        _check_earlier_export(out)
    return out


def _check_earlier_export(out: Path) -> None:
    """An empty folder, or one whose manifest.json is a dff export manifest; ExportError saying what is in the way."""
    entries = sorted(p.name for p in out.iterdir() if not p.name.startswith(f".{STAGING_NAME}.tmp-"))
    if not entries:
        return
    shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
    if not (out / MANIFEST_NAME).is_file():
        raise ExportError(
            f"--out {out} is a non-empty directory without {MANIFEST_NAME} (it holds {shown}): it is not an earlier "
            "export, so nothing in it is replaced; give a new or empty directory"
        )
    try:
        load_manifest(out, verify=False)
    except ExportError:
        raise ExportError(
            f"--out {out} holds a {MANIFEST_NAME} that is not a dff export manifest (the folder holds {shown}): it "
            "is not an earlier export, so nothing in it is replaced; give a new or empty directory"
        ) from None


def _update_export(staging: Path, out: Path, manifest: Manifest) -> None:
    """Move the new export's files from ``staging`` into the earlier export ``out``, manifest last.

    Only an export's own files are written: the model files and the manifest. A file whose bytes
    did not change is left alone (so engines built from it stay valid); model files the earlier
    manifest listed and this one does not are removed; everything else (engines/, a user's
    notes) is kept. Until the manifest is replaced, the earlier manifest's hashes reject a half-updated export.
    """
    previous = load_manifest(out, verify=False) if (out / MANIFEST_NAME).is_file() else None
    new_files = {entry.file: entry.sha256 for entry in manifest.all_files().values()}
    for name, digest in new_files.items():
        target = out / name
        if target.is_file() and not target.is_symlink() and sha256_file(target) == digest:
            continue
        os.replace(staging / name, target)
    os.replace(staging / MANIFEST_NAME, out / MANIFEST_NAME)
    for entry in previous.all_files().values() if previous else ():
        if entry.file not in new_files and Path(entry.file).name == entry.file:
            (out / entry.file).unlink(missing_ok=True)
