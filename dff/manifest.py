"""The export manifest: what ``dff export`` wrote and how to feed it. Torch-free.

The manifest is the single contract between the exporter, the engine builder and the runtime:
tensor names, dtypes and shapes of every model, the preprocessing the graphs expect, the frame
sizes they allow, and a SHA-256 of every file (checked on load, so an engine is never built
from, and a runtime never runs, a file other than the one exported).

Preprocessing lives inside the graphs: ``feature.onnx`` and ``flow.onnx`` take uint8 frames
(N, H, W, 3) in BGR order, as OpenCV decodes them, and normalise on the device. The host only
resizes a frame to an allowed size. ``task.onnx`` ends with the per-pixel labels at frame size,
so postprocessing on the host is nothing either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dff.atomic import write_bytes_atomic
from dff.checkpoint_path import export_dir_for, is_checkpoint
from dff.config import ModelConfig, from_dict, to_dict
from dff.errors import ConfigError, ExportError, InputSizeError
from dff.frames import FEATURE_STRIDE

MANIFEST_NAME = "manifest.json"
FORMAT = "dff-export-1"

#: Tensor names shared by exporter, builder and runtime.
FRAME, KEY_FRAME, FEAT, KEY_FEAT, FLOW, SCALE = "frame", "key_frame", "feat", "key_feat", "flow", "scale"
SCORES, PROBS, LABELS = "scores", "probs", "labels"
#: A detection export's task outputs: (N, M, 4) boxes, (N, M) scores and classes, (N,) count (dff.export.detection_graph).
BOXES, DETECTION_SCORES, CLASSES, COUNT = "boxes", "detection_scores", "classes", "count"

#: The optional fused roles of :class:`Models`.
FUSED = ("key_path", "propagate")

Dim = int | str  # an int is fixed; a string names a dynamic dimension ("N", "H", "W", "H/16", "W/16")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: Literal["uint8", "float16", "float32", "int32", "int64"]
    shape: tuple[Dim, ...]


@dataclass(frozen=True)
class ModelFile:
    """One ONNX file and its interface."""

    file: str
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class Preprocessing:
    """What the graphs do to a uint8 frame, and what the host must do before (resize only)."""

    layout: Literal["nhwc"] = "nhwc"
    channel_order: Literal["bgr"] = "bgr"
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)  # RGB, 0..255 scale
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    resize: Literal["bilinear-to-allowed-size"] = "bilinear-to-allowed-size"
    #: F halves both frames with 2×2 average pooling inside its graph (Section 4: "the input image is half-sized").
    flow_input_scale: float = 0.5


@dataclass(frozen=True)
class SizeRange:
    """Allowed frame sizes: multiples of ``multiple`` between the bounds (inclusive); fixed when min == max."""

    min_height: int
    min_width: int
    max_height: int
    max_width: int
    multiple: int = FEATURE_STRIDE

    def check(self, height: int, width: int) -> None:
        if not (
            self.min_height <= height <= self.max_height
            and self.min_width <= width <= self.max_width
            and height % self.multiple == 0
            and width % self.multiple == 0
        ):
            raise InputSizeError(
                f"frame size {height}x{width} (HxW) is outside this export's allowed sizes: heights "
                f"{self.min_height}..{self.max_height} and widths {self.min_width}..{self.max_width}, multiples of "
                f"{self.multiple}; resize the frames (DeepFeatureFlowRuntime resizes to the nearest allowed size itself) "
                f"or export again with --height/--width or --min-size/--max-size"
            )

    def nearest(self, height: int, width: int) -> tuple[int, int]:
        """The allowed size closest to (height, width)."""

        def fit(side: int, low: int, high: int) -> int:
            return min(high, max(low, int(round(side / self.multiple)) * self.multiple))

        return fit(height, self.min_height, self.max_height), fit(width, self.min_width, self.max_width)


@dataclass(frozen=True)
class Models:
    feature: ModelFile
    flow: ModelFile
    task: ModelFile
    warp: ModelFile
    warp_plugin: ModelFile
    #: The paths of Algorithm 1 as one graph each (:mod:`dff.export.fused_graphs`): N_feat → N_task, and F → W →
    #: N_task. Optional: exports made before them, or with ``--no-fused-graphs``, run stage by stage.
    key_path: ModelFile | None = None
    propagate: ModelFile | None = None


@dataclass(frozen=True)
class Quantization:
    """How an int8 export was made from a float one (``dff quantize``); the float export stays the reference."""

    #: The networks stored as int8 Q/DQ graphs; the others are the float export's files, unchanged.
    networks: tuple[str, ...]
    tool: str
    weights: str
    activations: str
    calibration_method: str
    calibration_source: str
    calibration_frames: int
    calibration_pairs: int
    calibration_size: tuple[int, int]
    key_interval: int
    #: The float export quantized: its folder as given, and the SHA-256 of its manifest.json.
    float_export: str
    float_manifest_sha256: str


@dataclass(frozen=True)
class Manifest:
    format: str
    exporter_version: str
    model: ModelConfig
    opset: int
    dtype: Literal["float32", "float16"]
    feature_stride: int
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    sizes: SizeRange
    models: Models
    #: SHA-256 of the checkpoint the graphs were exported from (``dff check --checkpoint`` compares against it).
    checkpoint_sha256: str | None = None
    #: Set on int8 exports written by ``dff quantize``; None for the float exports of ``dff export``.
    quantization: Quantization | None = None

    @property
    def task(self) -> str:
        """What ``task.onnx`` outputs: ``segmentation`` (labels) or ``detection`` (boxes)."""
        return self.model.task

    @property
    def max_detections(self) -> int | None:
        """Rows of a detection export's padded outputs; None for segmentation."""
        boxes = [spec for spec in self.models.task.outputs if spec.name == BOXES]
        return int(boxes[0].shape[1]) if boxes else None

    def files(self) -> dict[str, ModelFile]:
        """Each separate model by its role: feature, flow, task, warp, warp_plugin (the contract every backend reads)."""
        return {name: getattr(self.models, name) for name in ("feature", "flow", "task", "warp", "warp_plugin")}

    def fused_files(self) -> dict[str, ModelFile]:
        """The fused graphs the export has, by role (``key_path``, ``propagate``); empty for exports without them."""
        return {name: entry for name in FUSED if (entry := getattr(self.models, name)) is not None}

    def all_files(self) -> dict[str, ModelFile]:
        """:meth:`files` and :meth:`fused_files`: every model file the export holds."""
        return self.files() | self.fused_files()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` into ``directory`` atomically."""
    return write_bytes_atomic(Path(directory) / MANIFEST_NAME, (json.dumps(to_dict(manifest), indent=2) + "\n").encode())


def invalid_model(path: str | Path, role: str, error: BaseException) -> ExportError:
    """The error for a model file a runtime cannot load: which file, that it is not valid ONNX, and to export again."""
    # OpenVINO leads with lines naming its own source files; the first other line says what is wrong.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("Check '", "FrontEnd API failed"))] or lines
    detail = (said[0] if said else type(error).__name__).rstrip(":")[:200]
    return ExportError(f"{path} ({role} model) is not a valid ONNX model ({detail}); export again with `dff export`")


def missing_fields(cls: type, data: object, prefix: str = "") -> list[str]:
    """Dotted names of the required fields of dataclass ``cls`` that ``data`` lacks, nested dataclasses included."""
    if not isinstance(data, dict):
        return []  # from_dict names the wrong type
    hints = typing.get_type_hints(cls)
    missing = []
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                missing.append(prefix + f.name)
        elif dataclasses.is_dataclass(hints[f.name]):
            missing += missing_fields(hints[f.name], data[f.name], f"{prefix}{f.name}.")
    return missing


def load_manifest(directory: str | Path, *, verify: bool = True) -> Manifest:
    """Read an export directory's manifest; with ``verify``, check every file's SHA-256."""
    directory = Path(directory)
    path = directory / MANIFEST_NAME
    if is_checkpoint(directory):
        raise ExportError(
            f"{directory} is a checkpoint, not an export directory: export it first with "
            f"`dff export {directory} --out {export_dir_for(directory)}` and give that folder (or use --backend torch, "
            "which runs a checkpoint)"
        )
    if directory.exists() and not directory.is_dir():
        raise ExportError(f"{directory} is a file, not an export directory: give the folder `dff export` wrote")
    if not directory.is_dir():
        raise ExportError(f"export directory {directory} does not exist: create it with `dff export CHECKPOINT --out {directory}`")
    if not path.is_file():
        raise ExportError(f"{directory} has no {MANIFEST_NAME}: it is not a dff export (run `dff export` again)")
    try:
        data = json.loads(path.read_text())
        missing = missing_fields(Manifest, data)
        if missing:
            raise ExportError(
                f"{path} lacks the field(s) {', '.join(missing)}: {directory} is not a complete dff export "
                "(an interrupted or foreign write?); run `dff export` again"
            )
        manifest = from_dict(Manifest, data, where=str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, ConfigError) as error:
        raise ExportError(f"{path} is corrupt: {error}; run `dff export` again") from None
    if manifest.format != FORMAT:
        raise ExportError(f"{path} has format {manifest.format!r}, this dff reads {FORMAT!r}: run `dff export` again")
    if verify:
        for role, entry in manifest.all_files().items():
            file = directory / entry.file
            if not file.is_file():
                raise ExportError(f"{file} ({role} model) is missing from the export: run `dff export` again")
            if sha256_file(file) != entry.sha256:
                raise ExportError(
                    f"{file} ({role} model) does not match the SHA-256 in {MANIFEST_NAME}: the file was changed or "
                    f"corrupted after export; run `dff export` again"
                )
    return manifest
