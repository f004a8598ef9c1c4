"""What training minimises: modules that take a batch of uint8 frames and return the loss.

Wrapping the loss in a module lets DistributedDataParallel see the whole training forward pass
(DeepFeatureFlow's ``forward_pair`` is a method, not ``forward``), and keeps frozen parts in
evaluation mode whatever ``train()`` is called with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dff.data import IGNORE_INDEX
from dff.models import DeepFeatureFlow, FlowNet
from dff.models.preprocess import FrameNormalizer
from dff.train.feature_flow import feature_flow


def segmentation_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy of score maps (N, C, h, w) against labels (N, H, W), ignoring IGNORE_INDEX.

    The score maps are bilinearly upsampled to the labels' size, as the evaluation protocol does before
    its argmax, so the loss judges what evaluation scores. A batch whose pixels are all
    ignored gives 0 instead of NaN.
    """
    scores = F.interpolate(scores, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    total = F.cross_entropy(scores, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    counted = (labels != IGNORE_INDEX).sum().clamp(min=1)
    return total / counted


def end_point_error(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Euclidean distance between two (N, 2, h, w) flow fields (FlowNet's training loss)."""
    return (predicted - target).square().sum(dim=1).add(1e-12).sqrt().mean()


def _freeze(modules: Sequence[nn.Module]) -> None:
    for module in modules:
        module.requires_grad_(False)


class SegmentationObjective(nn.Module):
    """Fig. 2: N_feat on I_k, propagation to I_i by F and W (skipped where i == k), N_task, loss on labels of i.

    ``frozen`` parts of ``model`` get no gradients and stay in evaluation mode, so a fixed
    N_feat also keeps its BatchNorm statistics (Table 3's "then fixed").

    While F is trained it runs on every pair, i == k included (whose propagated features are then
    discarded), so every step reaches F's parameters: DistributedDataParallel must reduce the same
    gradients on every rank, and with N fixed a batch of i == k pairs alone would reach nothing.
    """

    def __init__(self, *, model: DeepFeatureFlow, normalizer: FrameNormalizer, frozen: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.model = model
        self.normalizer = normalizer
        self.frozen = list(frozen)
        _freeze(self.frozen)
        self.flow_trained = any(p.requires_grad for p in model.flow_net.parameters())
        self.train()

    def train(self, mode: bool = True) -> SegmentationObjective:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, key_frame: torch.Tensor, frame: torch.Tensor, labels: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) RGB frames k and i, int64 labels (N, H, W) of i, bool (N,) i == k → loss."""
        key_frame, frame = self.normalizer(key_frame), self.normalizer(frame)
        if not self.flow_trained:
            return segmentation_loss(self.model.forward_pair(key_frame, frame, same=same), labels)
        key_feat = self.model.key(key_frame)
        feat = torch.where(same.view(-1, 1, 1, 1), key_feat, self.model.propagate(key_feat, key_frame, frame))
        return segmentation_loss(self.model.task(feat), labels)


class FlowObjective(nn.Module):
    """F's pre-training (Section 4, "pre-trained on the Flying Chairs dataset"): end-point error of M.

    The exact flow, in image pixels at frame size, is brought to F's output grid and units by
    :func:`~dff.train.feature_flow.feature_flow`. The scale field S is not part of this loss and
    stays at its initial ones (Section 3 adds and initialises it after pre-training).
    """

    def __init__(self, *, flow_net: FlowNet, normalizer: FrameNormalizer) -> None:
        super().__init__()
        self.flow_net = flow_net
        self.normalizer = normalizer
        _freeze([flow_net.scale])

    def forward(self, key_frame: torch.Tensor, frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) RGB frames k and i and float (N, 2, H, W) M_{i→k} in image pixels → EPE."""
        predicted, _ = self.flow_net(self.normalizer(key_frame), self.normalizer(frame))
        return end_point_error(predicted, feature_flow(flow, stride=self.flow_net.feature_stride))
