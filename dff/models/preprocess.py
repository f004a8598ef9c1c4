"""Frame normalisation shared by training, export and the PyTorch runtime."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class FrameNormalizer(nn.Module):
    """uint8 frames → normalised float (N, 3, H, W) RGB: (x - mean) / std per channel.

    ``layout="nchw"`` takes RGB (N, 3, H, W), as the data loaders give; ``layout="nhwc_bgr"`` takes
    (N, H, W, 3) BGR, as OpenCV decodes, so exported graphs need no host-side conversion.
    """

    def __init__(self, *, mean: Sequence[float], std: Sequence[float], layout: str = "nchw") -> None:
        super().__init__()
        if layout not in ("nchw", "nhwc_bgr"):
            raise ValueError(f"layout must be 'nchw' or 'nhwc_bgr', got {layout!r}")
        self.layout = layout
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if self.layout == "nhwc_bgr":
            frames = frames.flip(-1).permute(0, 3, 1, 2)
        return (frames.to(self.mean.dtype) - self.mean) * self.inv_std
