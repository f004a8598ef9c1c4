"""Task network N_task for semantic segmentation (Section 4, "Semantic Segmentation")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SegmentationTaskNet(nn.Module):
    """N_task: one 1×1 convolution from f to C + 1 score maps; softmax gives per-pixel probabilities.

    The only learnable layer after the split point (Table 5's default); ``forward`` returns the
    score maps on the feature grid, ``probabilities`` the softmax upsampled to the frame size.
    """

    def __init__(self, *, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.score = nn.Conv2d(in_channels, num_classes, 1)
        nn.init.normal_(self.score.weight, std=0.01)
        nn.init.zeros_(self.score.bias)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.score(feat)

    def probabilities(self, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Softmax over classes, bilinearly upsampled to the frame ``size`` (H, W)."""
        return probabilities(self(feat), size)


def probabilities(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel class probabilities at the frame ``size`` (H, W): softmax of the score maps, bilinearly upsampled."""
    return F.interpolate(scores.softmax(dim=1), size=size, mode="bilinear", align_corners=False)


def class_ids(probs: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Class ids: the index of the largest value along ``dim`` (the first one on ties, as ``argmax``).

    ``max(dim).indices`` rather than ``argmax(dim)``: on the CPU, torch's argmax over the strided
    class axis of an NCHW tensor is 10-15× slower (57 ms against 4 ms for 12 classes at 352×480);
    ``benchmarks/bench_task_labels.py`` measures both.
    """
    return probs.max(dim=dim).indices
