"""RPN anchors (Ren et al., NIPS 2015): n_a = |sizes| × |aspect ratios| boxes centred on every feature cell.

Section 4 uses n_a = 9: 3 scales and 3 aspect ratios. An anchor of size s and aspect ratio r
(height / width) has area s² and sides w = s/√r, h = s·√r. On a stride-16 grid the anchors of
cell (y, x) are centred at (16x + 8, 16y + 8), the centre of the 16×16 pixels the cell covers.

Order: anchor a of cell (y, x) is row (y·W + x)·n_a + a of :meth:`AnchorGrid.__call__`, and the
anchors of one cell go ratio-major, size-minor. The RPN's output channels follow it
(:mod:`dff.detection.head`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class AnchorGrid:
    """Anchors of a feature map: (H·W·n_a, 4) boxes in frame pixels for an H × W grid of stride ``stride``."""

    def __init__(self, *, sizes: Sequence[float], aspect_ratios: Sequence[float], stride: int) -> None:
        if not (len(sizes) >= 1 and len(aspect_ratios) >= 1 and all(s > 0 for s in sizes) and all(r > 0 for r in aspect_ratios)):
            raise ValueError(f"anchor sizes and aspect ratios must be non-empty and positive, got {list(sizes)} and {list(aspect_ratios)}")
        if not (stride >= 1):
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.sizes = tuple(float(s) for s in sizes)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.stride = stride

    @property
    def num_anchors(self) -> int:
        """n_a, the anchors per cell."""
        return len(self.sizes) * len(self.aspect_ratios)

    def cell_anchors(self) -> torch.Tensor:
        """(n_a, 4) anchors centred at the origin, ratio-major."""
        half_sides = [
            (size / math.sqrt(ratio) / 2, size * math.sqrt(ratio) / 2) for ratio in self.aspect_ratios for size in self.sizes
        ]
        return torch.tensor([(-hw, -hh, hw, hh) for hw, hh in half_sides], dtype=torch.float64)

    def __call__(self, height: int, width: int, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
        centre = self.stride / 2
        ys = torch.arange(height, dtype=torch.float64) * self.stride + centre
        xs = torch.arange(width, dtype=torch.float64) * self.stride + centre
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)
        return (centres + self.cell_anchors()[None]).reshape(-1, 4).to(device=device, dtype=dtype)
