"""Position-sensitive RoI average pooling (Dai et al., R-FCN, NIPS 2016, Section 2).

A region is divided into k × k bins; bin (i, j) averages only its own bank of maps, channels
(d·k + i)·k + j for output d, over the feature cells the bin overlaps. R-FCN's layout of the
(C+1)k² score maps and 4k² box maps is exactly this: output d, bin row i, bin column j.

Bin (i, j) of a region spanning [x1, x2) × [y1, y2) in frame pixels covers, in feature cells,
the half-open interval [x1·s + j·w/k, x1·s + (j+1)·w/k) with s = ``spatial_scale`` and w the
region's width in cells (at least 0.1), and likewise for rows. It averages the cells from
floor(start) to ceil(end) − 1, clipped to the map; a bin with no cell gives 0 (R-FCN's rule).

Every bin sum is four reads of an integral image, so the cost is one cumulative sum of the maps
plus O(regions · channels), and autograd differentiates it with respect to the maps (not the
regions: bin edges are rounded to cells).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Smallest region side in feature cells, so degenerate regions still have bins (R-FCN's 0.1).
MIN_REGION_CELLS = 0.1


def psroi_pool(maps: torch.Tensor, rois: torch.Tensor, *, group_size: int, spatial_scale: float) -> torch.Tensor:
    """(N, D·k², H, W) maps and (R, 5) regions (batch index, x1, y1, x2, y2 in frame pixels) → (R, D, k, k)."""
    k = group_size
    if not (maps.dim() == 4 and k >= 1 and maps.shape[1] % (k * k) == 0):
        raise ValueError(f"psroi_pool expects maps (N, D*{k}*{k}, H, W), got {tuple(maps.shape)}")
    if not (rois.dim() == 2 and rois.shape[1] == 5):
        raise ValueError(f"psroi_pool expects rois (R, 5) as (batch index, x1, y1, x2, y2), got {tuple(rois.shape)}")
    _, channels, height, width = maps.shape
    depth = channels // (k * k)
    rois = rois.to(maps.dtype)
    batch = rois[:, 0].long()
    x0, x1 = _bin_edges(rois[:, 1], rois[:, 3], spatial_scale, k, width)
    y0, y1 = _bin_edges(rois[:, 2], rois[:, 4], spatial_scale, k, height)

    # Running sums of maps centred on their per-channel mean stay small, so float32 keeps bin sums
    # accurate on large maps (a biased score map's plain totals grow with H·W); the mean is added back.
    offset = maps.mean(dim=(2, 3), keepdim=True)
    # integral[b, c, y, x] = sum of (maps - offset)[b, c, :y, :x]
    integral = F.pad((maps - offset).cumsum(dim=2).cumsum(dim=3), (1, 0, 1, 0)).reshape(-1)
    bank = torch.arange(channels, device=maps.device).view(depth, k, k)  # channel of (d, i, j)
    channel = batch.view(-1, 1, 1, 1) * channels + bank[None]
    base = channel * ((height + 1) * (width + 1))

    def corner(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return integral[base + y.view(-1, 1, k, 1) * (width + 1) + x.view(-1, 1, 1, k)]

    total = corner(y1, x1) - corner(y0, x1) - corner(y1, x0) + corner(y0, x0)
    count = ((y1 - y0).view(-1, 1, k, 1) * (x1 - x0).view(-1, 1, 1, k)).to(maps.dtype)
    mean = total / count.clamp(min=1) + offset.reshape(-1)[channel]
    return torch.where(count > 0, mean, torch.zeros_like(mean))


def _bin_edges(start: torch.Tensor, end: torch.Tensor, scale: float, k: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """First and one-past-last cell of each of the k bins along one axis: two (R, k) integer tensors."""
    start = start * scale
    length = (end * scale - start).clamp(min=MIN_REGION_CELLS)
    steps = torch.arange(k + 1, device=start.device, dtype=start.dtype)
    edges = start[:, None] + steps * (length[:, None] / k)
    first = edges[:, :-1].floor().clamp(0, size).long()
    last = edges[:, 1:].ceil().clamp(0, size).long()
    return first, torch.maximum(first, last)
