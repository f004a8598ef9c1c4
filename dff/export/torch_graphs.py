"""The three networks wrapped with their pre- and postprocessing, as the ONNX files hold them, and their export.

* :class:`FeatureGraph`: uint8 BGR frames (N, H, W, 3) → f (N, C, H/16, W/16).
* :class:`FlowGraph`: uint8 BGR key frame and current frame → M (N, 2, H/16, W/16), S (N, C, H/16, W/16).
* :class:`TaskGraph`: f → score maps, softmax probabilities (both on the feature grid) and per-pixel
  labels (N, H, W) uint8 at frame size: the probabilities upsampled ×16 bilinearly, then argmax.

Frames are cast to float before anything else touches them, as TensorRT wants of a uint8 input
(a Cast is the layer it always accepts there). Normalisation (:class:`~dff.models.preprocess.FrameNormalizer`)
runs in float32 even in float16 exports: its constants (mean 123.675, 1/std) are not float16
numbers, it costs nothing next to the first convolution, and the normalised frame is cast once.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dff.config import ModelConfig
from dff.frames import FEATURE_STRIDE
from dff.models.preprocess import FrameNormalizer


def _normalizer(config: ModelConfig) -> FrameNormalizer:
    return FrameNormalizer(mean=config.mean, std=config.std, layout="nhwc_bgr")


class FeatureGraph(nn.Module):
    """frame (uint8 N×H×W×3 BGR) → N_feat(normalised frame)."""

    def __init__(self, *, feature_net: nn.Module, config: ModelConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.normalize = _normalizer(config)
        self.feature_net = feature_net
        self.dtype = dtype

    def forward(self, frame: Tensor) -> Tensor:
        return self.feature_net(self.normalize(frame.float()).to(self.dtype))


class FlowGraph(nn.Module):
    """(key frame, frame), uint8 N×H×W×3 BGR each → F(normalised key frame, normalised frame) = (M, S)."""

    def __init__(self, *, flow_net: nn.Module, config: ModelConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.normalize = _normalizer(config)
        self.flow_net = flow_net
        self.dtype = dtype

    def forward(self, key_frame: Tensor, frame: Tensor) -> tuple[Tensor, Tensor]:
        key = self.normalize(key_frame.float()).to(self.dtype)
        current = self.normalize(frame.float()).to(self.dtype)
        return self.flow_net(key, current)


class TaskGraph(nn.Module):
    """f → (score maps, softmax probabilities, uint8 labels at frame size)."""

    def __init__(self, *, task_net: nn.Module) -> None:
        super().__init__()
        self.task_net = task_net

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        scores = self.task_net(feat)
        probs = scores.softmax(dim=1)
        # SegmentationTaskNet.probabilities' upsampling, as a fixed ×16 so that the graph keeps dynamic sizes.
        frame_probs = F.interpolate(probs, scale_factor=FEATURE_STRIDE, mode="bilinear", align_corners=False)
        return scores, probs, frame_probs.argmax(dim=1).to(torch.uint8)


def export_graph(
    module: nn.Module,
    example: Sequence[Tensor],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int,
) -> None:
    """Trace ``module`` on ``example`` into ``path`` with the TorchScript exporter.

    torch 2.13 defaults to the torch.export-based exporter (``dynamo=True``); for these graphs it
    takes 7-10 s each instead of 0.3 s, has no opset-17 implementations (it converts down from 18),
    and names dynamic dimensions by its own expressions ("TruncToInt(0.5*ToFloat(2*s9))") rather than
    the manifest's. The TorchScript exporter writes opsets 16-19 natively with our dimension names.
    """
    with warnings.catch_warnings():
        # The TorchScript exporter announces its deprecation on every call.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        # The detection graph's Python-side checks and reference NMS are traced over (NMS is one ONNX node).
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        torch.onnx.export(
            module,
            tuple(example),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={name: dict(axes) for name, axes in dynamic_axes.items()},
            do_constant_folding=True,
        )
