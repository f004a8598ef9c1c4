"""Axis-aligned boxes in frame pixels: area, IoU, clipping and R-CNN's (dx, dy, dw, dh) box code.

A box is (x1, y1, x2, y2) in continuous frame coordinates: pixel column c covers [c, c + 1), so a
box around pixels 3 … 6 is x1 = 3, x2 = 7, and its width is x2 − x1 (no "+ 1"). Feature cell p of
a stride-s map covers [s·p, s·p + s), the same convention scaled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: Largest log-scale change a decoded delta may apply: exp(dw) stays below 1000 / 16 (Faster R-CNN's guard).
MAX_LOG_SCALE = math.log(1000.0 / 16)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(n, 4) boxes → (n,) areas; inverted boxes count as empty."""
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, 4) and (m, 4) boxes → (n, m) intersection over union; 0 where both are empty."""
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(a.dtype).tiny), torch.zeros_like(inter))


def clip_boxes(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Clip (n, 4) boxes to a frame of ``size`` (H, W)."""
    height, width = size
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack((x[:, 0], y[:, 0], x[:, 1], y[:, 1]), dim=1)


@dataclass(frozen=True)
class BoxCoder:
    """R-CNN's box code (Girshick et al., CVPR 2014, appendix C) relative to reference boxes, times ``weights``.

    dx = wx·(x − x_r)/w_r, dy = wy·(y − y_r)/h_r, dw = ww·log(w/w_r), dh = wh·log(h/h_r) for centres
    (x, y) and sizes (w, h). The RPN codes anchors with weights 1; the R-FCN stage codes proposals
    with (10, 10, 5, 5), i.e. targets divided by Fast R-CNN's normalisation stds (0.1, 0.1, 0.2, 0.2).
    """

    weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)

    def encode(self, boxes: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(n, 4) boxes relative to (n, 4) reference boxes → (n, 4) deltas."""
        wx, wy, ww, wh = self.weights
        x, y, w, h = _centre_size(boxes)
        xr, yr, wr, hr = _centre_size(reference)
        return torch.stack((wx * (x - xr) / wr, wy * (y - yr) / hr, ww * torch.log(w / wr), wh * torch.log(h / hr)), dim=1)

    def decode(self, deltas: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """(n, 4) deltas applied to (n, 4) reference boxes → (n, 4) boxes (the inverse of :meth:`encode`)."""
        wx, wy, ww, wh = self.weights
        xr, yr, wr, hr = _centre_size(reference)
        x = xr + deltas[:, 0] / wx * wr
        y = yr + deltas[:, 1] / wy * hr
        w = wr * torch.exp((deltas[:, 2] / ww).clamp(max=MAX_LOG_SCALE))
        h = hr * torch.exp((deltas[:, 3] / wh).clamp(max=MAX_LOG_SCALE))
        return torch.stack((x - w / 2, y - h / 2, x + w / 2, y + h / 2), dim=1)


def _centre_size(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    return boxes[:, 0] + w / 2, boxes[:, 1] + h / 2, w, h
