"""What detection training minimises: Figure 2's forward pass on pairs (I_k, I_i), R-FCN's loss on frame i's boxes.

The detection counterpart of :class:`dff.train.objectives.SegmentationObjective`, with the same
conventions: uint8 frames in, normalised here; pairs with i == k use f_k as it is (per-frame
training is the special case, Section 3); ``frozen`` parts get no gradients and stay in
evaluation mode; while F is trained it runs on every pair so every step reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dff.detection.data import unpad_targets
from dff.detection.head import RFCNTaskNet
from dff.detection.losses import DetectionLosses, detection_losses
from dff.detection.targets import AnchorTargetConfig, RegionTargetConfig
from dff.models import DeepFeatureFlow
from dff.models.preprocess import FrameNormalizer


class DetectionObjective(nn.Module):
    """N_feat on I_k, propagation to I_i by F and W (skipped where i == k), R-FCN on f_i, loss on the boxes of i."""

    def __init__(
        self,
        *,
        model: DeepFeatureFlow,
        normalizer: FrameNormalizer,
        frozen: Sequence[nn.Module] = (),
        anchor_targets: AnchorTargetConfig = AnchorTargetConfig(),
        region_targets: RegionTargetConfig = RegionTargetConfig(),
    ) -> None:
        super().__init__()
        if not isinstance(model.task_net, RFCNTaskNet):
            raise ValueError(f"DetectionObjective needs a model whose task_net is an RFCNTaskNet, got {type(model.task_net).__name__}")
        self.model = model
        self.normalizer = normalizer
        self.frozen = list(frozen)
        for module in self.frozen:
            module.requires_grad_(False)
        self.anchor_targets = anchor_targets
        self.region_targets = region_targets
        self.flow_trained = any(p.requires_grad for p in model.flow_net.parameters())
        self.train()

    def train(self, mode: bool = True) -> DetectionObjective:
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def losses(self, key_frame: torch.Tensor, frame: torch.Tensor, targets: torch.Tensor, same: torch.Tensor) -> DetectionLosses:
        """uint8 (N, 3, H, W) RGB frames k and i, padded targets (N, G, 5) of i, bool (N,) i == k → the loss terms."""
        key_frame, frame = self.normalizer(key_frame), self.normalizer(frame)
        if self.flow_trained:
            key_feat = self.model.key(key_frame)
            maps = self.model.task(torch.where(same.view(-1, 1, 1, 1), key_feat, self.model.propagate(key_feat, key_frame, frame)))
        else:
            maps = self.model.forward_pair(key_frame, frame, same=same)
        return detection_losses(
            self.model.task_net,
            maps,
            unpad_targets(targets),
            anchor_targets=self.anchor_targets,
            region_targets_config=self.region_targets,
        )

    def forward(self, key_frame: torch.Tensor, frame: torch.Tensor, targets: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        return self.losses(key_frame, frame, targets, same).total
