"""The three networks wrapped with their pre- and postprocessing, as the ONNX files hold them, and their export.

* :class:`FeatureGraph`: uint8 BGR frames (N, H, W, 3) → f (N, C, H/16, W/16).
* :class:`FlowGraph`: uint8 BGR key frame and current frame → M (N, 2, H/16, W/16), S (N, C, H/16, W/16)
  and, with ``statistics``, their four statistics (N, 4) float32 for adaptive key frames.
* :class:`TaskGraph`: f → score maps, softmax probabilities (both on the feature grid) and per-pixel
  labels (N, H, W) uint8 at frame size: the probabilities upsampled ×16 bilinearly, then argmax (over NHWC).

Frames are cast to float before anything else touches them, as TensorRT wants of a uint8 input
(a Cast is the layer it always accepts there). Normalisation (:class:`~dff.models.preprocess.FrameNormalizer`)
runs in float32 even in float16 exports: its constants (mean 123.675, 1/std) are not float16
numbers, it costs nothing next to the first convolution, and the normalised frame is cast once.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dff.config import ModelConfig
from dff.frames import FEATURE_STRIDE
from dff.models.preprocess import FrameNormalizer
from dff.ops.flow_statistics import flow_statistics


def _bgr_normalizer(config: ModelConfig) -> FrameNormalizer:
    """The normalisation of :class:`FrameNormalizer` with its constants in BGR order, for frames left in BGR."""
    return FrameNormalizer(mean=config.mean[::-1], std=config.std[::-1])


def _reading_bgr(net: nn.Module, order: Sequence[int]) -> nn.Module:
    """A copy of ``net`` whose first convolution takes its input channels in ``order`` instead of RGB.

    The BGR → RGB reorder of the frames is folded into that convolution's weights (input channel
    ``i`` of the copy is channel ``order[i]`` of the original), exact up to float rounding: the graph
    then has no flip of the frames, which was the feature graph's only Slice and cost 10% of it at
    128×256 in ONNX Runtime.
    """
    net = copy.deepcopy(net)
    conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    if conv.in_channels != len(order):
        raise ValueError(f"the first convolution takes {conv.in_channels} channels, the reorder names {len(order)}")
    with torch.no_grad():
        conv.weight.copy_(conv.weight[:, list(order)])
    return net


#: BGR ↔ RGB for one frame and, below, for :meth:`FlowNet.halve`'s pair (its own inverse either way).
_BGR_TO_RGB = [2, 1, 0]
_BGR_TO_RGB_PAIR = [2, 1, 0, 5, 4, 3]


class FeatureGraph(nn.Module):
    """frame (uint8 N×H×W×3 BGR) → N_feat(normalised frame), with the BGR → RGB reorder in N_feat's first weights."""

    def __init__(self, *, feature_net: nn.Module, config: ModelConfig, dtype: torch.dtype) -> None:
        super().__init__()
        self.normalize = _bgr_normalizer(config)
        self.feature_net = _reading_bgr(feature_net, _BGR_TO_RGB)
        self.dtype = dtype

    def forward(self, frame: Tensor) -> Tensor:
        return self.feature_net(self.normalize(frame.float().permute(0, 3, 1, 2)).to(self.dtype))


class FrameHalving(nn.Module):
    """uint8 frames (N, H, W, 3) → F's normalised half-sized input (N, 3, H/2, W/2), as one strided convolution.

    F halves each frame by 2×2 average pooling (:meth:`FlowNet.halve`) and normalises it; normalising is affine and the
    pooling linear with weights summing to 1, so both become one convolution on the frame read as one channel of H rows
    of 3W values (a reshape, no copy): a 2 × 6 window with stride (2, 6) covers a 2×2 block of pixels, and output
    channel c weights its values of channel c by 1 / (4 std_c) and adds −mean_c / std_c. No transposed copy of the
    frame is made: 0.61–0.73× the time of the Cast, Transpose, AveragePool, Sub and Mul it replaces in ONNX Runtime and
    0.50–0.75× in OpenVINO (one thread, 320×400 to 720×1280, ``benchmarks/bench_frame_halving.py``); the same sums in
    another order (2e-7 relative).
    """

    def __init__(self, *, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        weight = torch.zeros(3, 1, 2, 6)
        for channel, deviation in enumerate(std):
            weight[channel, 0, :, [channel, channel + 3]] = 0.25 / deviation
        # Persistent: exported as initializers, as weights are (the int8 quantizer tells layers by their weights).
        self.register_buffer("weight", weight)
        self.register_buffer("bias", -torch.tensor(mean) / torch.tensor(std))

    def forward(self, frames: Tensor) -> Tensor:
        return F.conv2d(_AsRows.apply(frames.float()), self.weight, self.bias, stride=(2, 6))


class _AsRows(torch.autograd.Function):
    """(N, H, W, C) → (N, 1, H, W·C), exported as a Reshape to the constant (0, 0, -1) (ONNX's 0 keeps N and H) and an
    Unsqueeze: traced, a flatten reads the sizes through Shape, Slice and Concat nodes at every run."""

    @staticmethod
    def forward(ctx: Any, frames: Tensor) -> Tensor:
        return frames.flatten(2).unsqueeze(1)

    @staticmethod
    def symbolic(g: Any, frames: Any) -> Any:
        rows = g.op("Reshape", frames, g.op("Constant", value_t=torch.tensor([0, 0, -1])))
        return g.op("Unsqueeze", rows, g.op("Constant", value_t=torch.tensor([1])))


class FlowGraph(nn.Module):
    """(key frame, frame), uint8 N×H×W×3 BGR each → F(normalised key frame, normalised frame) = (M, S)
    [, flow_statistics(M, S) with ``statistics``].

    ``fixed_size``: the graph is traced for one frame size only, so the decoder's crops are left out
    where that size needs none (see :meth:`FlowNet.from_halved`).
    """

    def __init__(
        self,
        *,
        flow_net: nn.Module,
        config: ModelConfig,
        dtype: torch.dtype,
        statistics: bool = False,
        fixed_size: bool = False,
    ) -> None:
        super().__init__()
        self.halve = FrameHalving(mean=config.mean[::-1], std=config.std[::-1])
        self.flow_net = _reading_bgr(flow_net, _BGR_TO_RGB_PAIR)
        self.dtype = dtype
        self.statistics = statistics
        self.fixed_size = fixed_size

    def forward(self, key_frame: Tensor, frame: Tensor) -> tuple[Tensor, ...]:
        # FlowNet.halve's pair, current frame first; the frames stay BGR: F's first convolution reads them in that order.
        halved = torch.cat((self.halve(frame), self.halve(key_frame)), dim=1).to(self.dtype)
        flow, scale = self.flow_net.from_halved(halved, fixed_size=self.fixed_size)
        return (flow, scale, flow_statistics(flow, scale)) if self.statistics else (flow, scale)


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
        # ArgMax over the innermost axis (NHWC): the same labels, ties included (first maximum either way), but
        # OpenVINO runs ArgMax over NCHW channels as a strided TopK that cost more than the upsampling (1.7x
        # faster task graph on OpenVINO, unchanged on ONNX Runtime; benchmarks/bench_cpu_fastpath.py).
        return scores, probs, frame_probs.permute(0, 2, 3, 1).argmax(dim=3).to(torch.uint8)


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
