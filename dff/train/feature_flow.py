"""Flow in image pixels → flow on the feature grid in feature pixels, the units F predicts and W reads.

The feature grid has stride 16 (Section 4), so a displacement of d image pixels is d / 16
feature pixels. Each feature cell takes the mean flow of the 16×16 image block it covers (area
resizing): exact for smooth flow, and an average rather than one sample (as plain bilinear
subsampling would take) at motion boundaries. Used for F's pre-training target and for SFF,
where an off-the-shelf optical flow takes F's place.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dff.frames import FEATURE_STRIDE


def feature_flow(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) flow in image pixels, H and W multiples of 16 → (N, 2, H/16, W/16) in feature pixels."""
    if not (flow.dim() == 4 and flow.shape[1] == 2 and flow.shape[2] % FEATURE_STRIDE == 0 and flow.shape[3] % FEATURE_STRIDE == 0):
        raise ValueError(
            f"feature_flow expects (N, 2, H, W) with H and W multiples of {FEATURE_STRIDE}, got {tuple(flow.shape)}"
        )
    return F.avg_pool2d(flow, FEATURE_STRIDE) / FEATURE_STRIDE
