"""``quantize_export``: a float export → an int8 export folder (feature and flow networks quantized).

The output is a complete export: ``feature.onnx`` and ``flow.onnx`` as int8 Q/DQ graphs, the float
export's ``task.onnx``, ``warp.onnx`` and ``warp_plugin.onnx`` copied unchanged (the warp's
GridSample and the task's softmax, upsampling and ArgMax stay float), and a manifest with every
file's SHA-256 that records how it was quantized and from which float export (``quantization``).
The interfaces are the float export's, so every backend runs it as it is.

Written like ``dff export``: into a staging folder beside the target, renamed into place when
complete, so a failure, Ctrl-C or SIGTERM leaves nothing behind and a half-written export is never seen.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx

from dff.atomic import STAGING_MARKER, make_staging_dir, write_failure
from dff.errors import ExportError
from dff.export.fused_graphs import write_fused_graphs
from dff.frame_halving_layers import frame_halving_layers
from dff.manifest import MANIFEST_NAME, Manifest, ModelFile, Quantization, load_manifest, sha256_file, write_manifest
from dff.quantize.calibration import calibration_set
from dff.quantize.quantizer import ACTIVATIONS, TOOL, WEIGHTS, Method, flow_field_layers, quantize_network

#: The networks that are quantized; the warp and the task network stay float.
QUANTIZED = ("feature", "flow")
STAGING_NAME = "dff-quantize"


@dataclass(frozen=True, kw_only=True)
class QuantizeOptions:
    """Calibration: the first ``frames`` frames of the source, key frames every ``key_interval`` (F's pairs),
    resized to ``size`` (H, W) when given, else to the export's allowed size nearest each frame's own."""

    frames: int = 32
    key_interval: int = 5
    size: tuple[int, int] | None = None
    method: Method = "minmax"


def quantize_export(
    export: str | Path, calibrate: str | Path | Sequence[np.ndarray], out: str | Path, options: QuantizeOptions | None = None
) -> Manifest:
    """Quantize the float export ``export`` with frames from ``calibrate`` (a video, a folder of frames, or
    uint8 BGR images) into the new folder ``out``."""
    export, out, options = Path(export), Path(out), options or QuantizeOptions()
    manifest = load_manifest(export)
    if manifest.quantization is not None:
        raise ExportError(f"{export} is already an int8 export (from {manifest.quantization.float_export}): quantize the float export")
    if manifest.dtype != "float32":
        raise ExportError(f"{export} is a {manifest.dtype} export: quantize a float32 one (dff export --dtype float32)")
    _check_target(out)
    calibration = calibration_set(
        calibrate,
        sizes=manifest.sizes,
        class_names=manifest.class_names,
        count=options.frames,
        key_interval=options.key_interval,
        size=options.size,
    )
    files = manifest.files()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_failure(out, error, "quantized export") from None
    staging = make_staging_dir(out.parent, out.name)
    try:
        os.chmod(staging, 0o755)
        entries: dict[str, ModelFile] = {}
        for role, entry in files.items():
            target = staging / entry.file
            if role in QUANTIZED:
                network = onnx.load(export / entry.file)
                keep = [*flow_field_layers(network), *frame_halving_layers(network)] if role == "flow" else []
                onnx.save(quantize_network(network, calibration.feeds(role), method=options.method, keep_float=keep), target)
            else:
                shutil.copyfile(export / entry.file, target)
            entries[role] = replace(entry, sha256=sha256_file(target))
        if manifest.fused_files():  # composed again from the int8 networks, so both paths run the quantized graphs
            entries |= write_fused_graphs(staging, entries)
        record = Quantization(
            networks=QUANTIZED,
            tool=TOOL,
            weights=WEIGHTS,
            activations=ACTIVATIONS,
            calibration_method=options.method,
            calibration_source=str(calibrate) if isinstance(calibrate, (str, os.PathLike)) else "frames given in memory",
            calibration_frames=len(calibration.frames),
            calibration_pairs=len(calibration.pairs),
            calibration_size=calibration.size,
            key_interval=options.key_interval,
            float_export=str(export.resolve()),
            float_manifest_sha256=sha256_file(export / MANIFEST_NAME),
        )
        quantized_manifest = replace(manifest, models=replace(manifest.models, **entries), quantization=record)
        write_manifest(staging, quantized_manifest)
        (staging / STAGING_MARKER).unlink()
        # rename(2) replaces an empty folder, so an empty --out is filled in one step as well.
        os.rename(staging, out)
    except OSError as error:
        raise write_failure(out, error, "quantized export") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return quantized_manifest


def _check_target(out: Path) -> None:
    """``out`` must be new or an empty folder: nothing of the user's is ever replaced."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ExportError(f"--out {out} exists and is not a folder: give a new folder for the quantized export")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"--out {out} is not empty: give a new or empty folder for the quantized export")
