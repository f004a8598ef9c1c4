"""Greedy non-maximum suppression: the proposals' (IoU 0.7) and the detections' per class (IoU 0.3), Section 4.

Boxes are visited in score order; each box still standing is kept and suppresses every later
box whose IoU with it exceeds the threshold, computed for all of them at once. The scan is
sequential by nature, so it runs on the host in numpy, where one step costs microseconds rather
than a round of device kernels; it stops once ``max_kept`` boxes are kept (the 300 proposals
need 300 steps, not one per candidate), and needs O(n) memory, not an n × n IoU matrix.
"""

from __future__ import annotations

import numpy as np
import torch


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, *, max_kept: int | None = None) -> torch.Tensor:
    """Indices of the boxes kept, highest score first: a box is dropped if it overlaps a kept, higher-scored
    box with IoU > ``iou_threshold``; at most ``max_kept`` (the first ones). Ties in score keep the input order."""
    if not (boxes.dim() == 2 and boxes.shape[1] == 4 and scores.shape == boxes.shape[:1]):
        raise ValueError(f"nms expects boxes (n, 4) and scores (n,), got {tuple(boxes.shape)} and {tuple(scores.shape)}")
    order = torch.argsort(scores, descending=True, stable=True)
    limit = len(order) if max_kept is None else max_kept
    ranked = boxes[order].detach().cpu().double().numpy()
    x1, y1, x2, y2 = ranked.T
    areas = np.maximum(x2 - x1, 0.0) * np.maximum(y2 - y1, 0.0)
    suppressed = np.zeros(len(ranked), dtype=bool)
    keep: list[int] = []
    for i in range(len(ranked)):
        if len(keep) >= limit:
            break
        if suppressed[i]:
            continue
        keep.append(i)
        later = slice(i + 1, None)
        width = np.maximum(np.minimum(x2[i], x2[later]) - np.maximum(x1[i], x1[later]), 0.0)
        height = np.maximum(np.minimum(y2[i], y2[later]) - np.maximum(y1[i], y1[later]), 0.0)
        inter = width * height
        union = areas[i] + areas[later] - inter
        # An empty box against an empty box has union 0: IoU 0, never suppressed.
        suppressed[later] |= inter > iou_threshold * union
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, iou_threshold: float, *, max_kept: int | None = None
) -> torch.Tensor:
    """:func:`nms` within each group (e.g. class) independently; indices kept, highest score first."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    # Shifting each group by more than the boxes' whole extent makes boxes of different groups disjoint.
    # (In float64, so the shift costs no precision.)
    boxes = boxes.double()
    extent = boxes.max() - boxes.min() + 1
    return nms(boxes + (groups.double() * extent)[:, None], scores, iou_threshold, max_kept=max_kept)
