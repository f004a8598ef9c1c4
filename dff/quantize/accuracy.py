"""An int8 export against the float export it was made from, at the task level: label agreement and mIoU.

Tensor tolerances do not fit int8 (every activation is rounded to 1 part in 127 of its range), so
the check runs both exports the way they are used, Algorithm 1 with key frames every l frames, on
the same frames: the float export on ONNX Runtime is the reference, the int8 export runs on each
backend asked for. Per backend it reports the share of pixels whose label equals the float
export's and, on the synthetic video (exact labels, a seed the calibration never saw), both mIoUs
and their difference. Real frames (``frames``) have no labels: agreement only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dff.errors import ExportError
from dff.manifest import MANIFEST_NAME, Manifest, load_manifest, sha256_file
from dff.metrics import SegmentationScore
from dff.quantize.tensorrt_rules import RulesReport, check_tensorrt_rules
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend
from dff.sources import open_source

#: Seed of the held-out synthetic video: calibration never reads synthetic frames of this seed.
HELD_OUT_SEED = 11


@dataclass(frozen=True)
class TaskTolerance:
    """An int8 export passes where its labels agree with the float export's on at least ``min_agreement`` of the
    pixels and, with ground truth, its mIoU is at most ``max_miou_drop`` below the float export's (fractions)."""

    min_agreement: float = 0.95
    max_miou_drop: float = 0.01


@dataclass(frozen=True)
class BackendAccuracy:
    backend: str
    agreement: float
    miou: float | None
    float_miou: float | None
    tolerance: TaskTolerance

    @property
    def miou_delta(self) -> float | None:
        return None if self.miou is None or self.float_miou is None else self.miou - self.float_miou

    @property
    def ok(self) -> bool:
        delta = self.miou_delta
        return bool(self.agreement >= self.tolerance.min_agreement and (delta is None or -delta <= self.tolerance.max_miou_drop))


@dataclass(frozen=True)
class QuantizedReport:
    frames: str
    float_export: str
    rows: tuple[BackendAccuracy, ...]
    rules: RulesReport

    @property
    def ok(self) -> bool:
        return self.rules.ok and all(row.ok for row in self.rows)

    def lines(self) -> list[str]:
        rows = [f"int8 export against its float export {self.float_export} (onnxruntime), on {self.frames}"]
        rows += [f"tensorrt rules: {line}" for line in self.rules.checked]
        rows += [f"tensorrt rules: VIOLATION {line}" for line in self.rules.violations]
        for row in self.rows:
            tol = row.tolerance
            text = f"{row.backend}: labels equal to float {100 * row.agreement:.3f}% (>= {100 * tol.min_agreement:g}%)"
            if row.miou_delta is not None:
                text += (
                    f", mIoU {100 * row.miou:.2f} vs float {100 * row.float_miou:.2f}"  # type: ignore[operator]
                    f" ({100 * row.miou_delta:+.2f} points, drop <= {100 * tol.max_miou_drop:g})"
                )
            rows.append(text + ("  ok" if row.ok else "  FAIL"))
        rows.append("quantized export within task-level tolerance" if self.ok else "quantized export FAILS the check")
        return rows


def _float_export(manifest: Manifest, given: str | Path | None) -> Path:
    """The float export to compare with: ``given``, or the one recorded at quantization; its manifest must match."""
    record = manifest.quantization
    assert record is not None
    path = Path(given if given is not None else record.float_export)
    if not (path / MANIFEST_NAME).is_file():
        raise ExportError(f"the float export {path} this int8 export was made from is not there: pass it with --float-export DIR")
    if sha256_file(path / MANIFEST_NAME) != record.float_manifest_sha256:
        raise ExportError(
            f"{path} is not the float export this int8 export was made from (its manifest's SHA-256 differs): "
            "pass the right one with --float-export DIR, or quantize again"
        )
    return path


def _clip(manifest: Manifest, frames: str | Path | None, count: int) -> tuple[str, list[np.ndarray], list[np.ndarray] | None]:
    if frames is not None:
        images = []
        for frame in open_source(frames):
            images.append(frame.image)
            if len(images) >= count:
                break
        if len(images) < 2:
            raise ExportError(f"--frames {frames} has {len(images)} frame(s); give a folder or video with at least 2")
        return f"{frames} ({len(images)} frames, no labels: agreement only)", images, None
    from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig

    height, width = manifest.quantization.calibration_size  # type: ignore[union-attr]
    config = SyntheticVideoConfig(length=count, num_classes=manifest.model.num_classes, seed=HELD_OUT_SEED, height=height, width=width)
    video = SyntheticVideo(config)
    pairs = [video.image_and_label(t) for t in range(count)]
    return f"the held-out synthetic video (seed {HELD_OUT_SEED}, {count} frames {height}x{width}, exact labels)", [p[0] for p in pairs], [p[1] for p in pairs]


def _labels(export: Path, backend: str, images: Sequence[np.ndarray], key_interval: int) -> list[np.ndarray]:
    with open_backend(backend, model=export, threads=1) as engine:
        runtime = DeepFeatureFlowRuntime(backend=engine, scheduler=FixedInterval(key_interval))
        return [runtime(image).labels for image in images]


def _miou(labels: Sequence[np.ndarray], truth: Sequence[np.ndarray], num_classes: int) -> float:
    score = SegmentationScore(num_classes)
    for prediction, label in zip(labels, truth):
        score.update(prediction, label)
    return score.miou


def check_quantized(
    directory: str | Path,
    *,
    float_export: str | Path | None = None,
    frames: str | Path | None = None,
    count: int = 40,
    backends: Sequence[str] = ("onnxruntime", "openvino"),
    tolerance: TaskTolerance = TaskTolerance(),
) -> QuantizedReport:
    """Check the int8 export in ``directory``: TensorRT rules, then labels against the float export (module docstring)."""
    directory = Path(directory)
    manifest = load_manifest(directory)
    if manifest.quantization is None:
        raise ExportError(f"{directory} is a float export, not an int8 one: check it with `dff check {directory}`")
    reference = _float_export(manifest, float_export)
    where, images, truth = _clip(manifest, frames, count)
    key_interval = manifest.quantization.key_interval
    float_labels = _labels(reference, "onnxruntime", images, key_interval)
    classes = manifest.model.num_classes
    float_miou = None if truth is None else _miou(float_labels, truth, classes)
    rows = []
    for backend in backends:
        labels = _labels(directory, backend, images, key_interval)
        agreement = float(np.mean([(a == b).mean() for a, b in zip(labels, float_labels)]))
        miou = None if truth is None else _miou(labels, truth, classes)
        rows.append(BackendAccuracy(backend, agreement, miou, float_miou, tolerance))
    return QuantizedReport(frames=where, float_export=str(reference), rows=tuple(rows), rules=check_tensorrt_rules(directory))
