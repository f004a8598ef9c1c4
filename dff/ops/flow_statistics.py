"""Four numbers per frame that say how hard propagation from the key frame is, from F's own outputs (issue 16).

For a flow M (N, 2, h, w) in feature-map pixels and a scale field S (N, C, h, w), per item:

0. mean |M|: how far, on average, the current frame's locations read in the key frame;
1. spread of |M| (its standard deviation): non-rigid motion, objects moving against the background;
2. the share of locations whose read point p + M(p) lies more than half a cell outside the key frame's
   map, i.e. nearest to no cell of it (content that entered the view since the key frame; W fills it with
   zeros, Eq. 1-3). Half a cell, because on a map of 8 × 8 cells the border is 44% of the locations and any
   tiny outward flow there would count;
3. mean |S - 1|: the scale field departs from 1 where the network finds propagation failing (Section 3).

Computed in float32 on the device as part of ``flow.onnx`` (output ``flow_stats``, (N, 4)) and by the
torch backend, so only 16 bytes a frame reach the host. Positions come from cumulative sums of ones,
not ``arange`` of a shape, so the exported graph keeps dynamic sizes.
"""

from __future__ import annotations

import torch
from torch import Tensor


def flow_statistics(flow: Tensor, scale: Tensor) -> Tensor:
    """(N, 4) float32: mean |M|, std |M|, share reading outside the key frame, mean |S - 1| (see the module)."""
    flow, scale = flow.float(), scale.float()
    u, v = flow[:, 0], flow[:, 1]
    magnitude = torch.sqrt(u * u + v * v)
    mean = magnitude.mean(dim=(1, 2))
    centred = magnitude - mean[:, None, None]  # two passes: E[m²] - E[m]² cancels badly in float32
    spread = torch.sqrt((centred * centred).mean(dim=(1, 2)))
    ones = torch.ones_like(u)
    x = ones.cumsum(dim=2) - 1 + u
    y = ones.cumsum(dim=1) - 1 + v
    width = ones.sum(dim=2, keepdim=True)  # (N, h, 1): w at every row
    height = ones.sum(dim=1, keepdim=True)
    outside = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    deviation = (scale - 1).abs().mean(dim=(1, 2, 3))
    return torch.stack([mean, spread, outside.float().mean(dim=(1, 2)), deviation], dim=1)
