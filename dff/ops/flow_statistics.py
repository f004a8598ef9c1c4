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
    # Written for few graph nodes (~28 in ONNX where a first version had ~44: on a CPU each costs a few µs whatever
    # its size): every intermediate keeps its dimensions (no Unsqueeze), both axes are tested at once, and the
    # four numbers are reduced along (H, W) and concatenated once.
    flow, scale = flow.float(), scale.float()
    magnitude = flow.square().sum(dim=1, keepdim=True).sqrt()  # (N, 1, h, w)
    mean = magnitude.mean(dim=(2, 3), keepdim=True)
    spread = (magnitude - mean).square().mean(dim=(2, 3), keepdim=True).sqrt()  # two passes: E[m²] - E[m]² cancels badly
    ones = torch.ones_like(magnitude)
    position = torch.cat([ones.cumsum(dim=3), ones.cumsum(dim=2)], dim=1)  # p + 1 per axis (x, y), (N, 2, h, w)
    size = position.amax(dim=(2, 3), keepdim=True)  # (w, h)
    # p + M outside [-0.5, size - 0.5] ⇔ |2(p + M) + 1 - size| > size, per axis: exact in float at the half-cell bounds.
    read = 2 * (position + flow) - (size + 1)
    outside = (read.abs() > size).float().amax(dim=1, keepdim=True).mean(dim=(2, 3), keepdim=True)
    deviation = (scale - 1).abs().mean(dim=(1, 2, 3), keepdim=True)
    return torch.cat([mean, spread, outside, deviation], dim=1).flatten(1)
