"""Flow in image pixels → flow on the feature grid in feature pixels, the units F predicts and W reads.

The feature grid has stride s (16 in Section 4, or 8: ``ModelConfig.output_stride``), so a
displacement of d image pixels is d / s feature pixels. Each feature cell takes the mean flow of
the s×s image block it covers (area
resizing): exact for smooth flow, and an average rather than one sample (as plain bilinear
subsampling would take) at motion boundaries. Used for F's pre-training target and for SFF,
where an off-the-shelf optical flow takes F's place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_flow(flow: torch.Tensor, *, stride: int) -> torch.Tensor:
    """(N, 2, H, W) flow in image pixels, H and W multiples of ``stride`` → (N, 2, H/s, W/s) in feature pixels."""
    if not (flow.dim() == 4 and flow.shape[1] == 2 and flow.shape[2] % stride == 0 and flow.shape[3] % stride == 0):
        raise ValueError(f"feature_flow expects (N, 2, H, W) with H and W multiples of {stride}, got {tuple(flow.shape)}")
    return F.avg_pool2d(flow, stride) / stride
