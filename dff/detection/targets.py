"""Training targets: which anchors and regions are positive, negative or ignored, and which are sampled.

RPN (Ren et al., NIPS 2015, Section 3.1.2): an anchor is positive if its IoU with some ground-truth
box is ≥ 0.7, or if it has the highest IoU of all anchors with some ground-truth box (ties
included, so every object has at least one positive anchor); negative if its best IoU is < 0.3;
ignored otherwise. 256 anchors are sampled per frame, up to half of them positive. Anchors that
cross the frame's border are kept (the sampling, not a border rule, bounds their share).

Region stage (Fast R-CNN's sampling, which R-FCN trains with when it does not use OHEM): the
regions are the proposals plus the ground-truth boxes; a region is foreground with the class of
its best-matching box if that IoU is ≥ 0.5, background otherwise. 128 regions are sampled per
frame, up to a quarter foreground.

Sampling draws from ``generator`` (torch's global one when None), so training is reproducible
under ``torch.manual_seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dff.detection.boxes import box_iou

IGNORED, NEGATIVE, POSITIVE = -1, 0, 1


@dataclass(frozen=True, kw_only=True)
class AnchorTargetConfig:
    positive_iou: float = 0.7
    negative_iou: float = 0.3
    batch_size: int = 256
    positive_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not (0 <= self.negative_iou <= self.positive_iou <= 1 and self.batch_size >= 1 and 0 <= self.positive_fraction <= 1):
            raise ValueError(
                "anchor targets need 0 <= negative_iou <= positive_iou <= 1, batch_size >= 1, 0 <= positive_fraction <= 1; "
                f"got {self.negative_iou}, {self.positive_iou}, {self.batch_size}, {self.positive_fraction}"
            )


@dataclass(frozen=True, kw_only=True)
class RegionTargetConfig:
    foreground_iou: float = 0.5
    batch_size: int = 128
    foreground_fraction: float = 0.25

    def __post_init__(self) -> None:
        if not (0 < self.foreground_iou <= 1 and self.batch_size >= 1 and 0 <= self.foreground_fraction <= 1):
            raise ValueError(
                "region targets need 0 < foreground_iou <= 1, batch_size >= 1, 0 <= foreground_fraction <= 1; "
                f"got {self.foreground_iou}, {self.batch_size}, {self.foreground_fraction}"
            )


def label_anchors(anchors: torch.Tensor, gt_boxes: torch.Tensor, config: AnchorTargetConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, 4) anchors, (G, 4) boxes → labels (A,) in {IGNORED, NEGATIVE, POSITIVE} and the index (A,) of each
    anchor's best-matching box (meaningful for positives only)."""
    if len(gt_boxes) == 0:
        zeros = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
        return zeros + NEGATIVE, zeros
    iou = box_iou(anchors, gt_boxes)
    best_iou, matched = iou.max(dim=1)
    labels = torch.full_like(matched, IGNORED)
    labels[best_iou < config.negative_iou] = NEGATIVE
    labels[best_iou >= config.positive_iou] = POSITIVE
    best_for_box = iou.max(dim=0).values
    labels[((iou == best_for_box[None]) & (best_for_box[None] > 0)).any(dim=1)] = POSITIVE
    return labels, matched


def sample_labels(
    labels: torch.Tensor, *, batch_size: int, positive_fraction: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Keep at most ``batch_size`` labels, up to ``positive_fraction`` of them POSITIVE, the rest NEGATIVE, drawn
    uniformly; the others become IGNORED."""
    positive = torch.nonzero(labels == POSITIVE).flatten()
    negative = torch.nonzero(labels == NEGATIVE).flatten()
    num_positive = min(len(positive), int(batch_size * positive_fraction))
    num_negative = min(len(negative), batch_size - num_positive)
    sampled = torch.full_like(labels, IGNORED)
    sampled[_choose(positive, num_positive, generator)] = POSITIVE
    sampled[_choose(negative, num_negative, generator)] = NEGATIVE
    return sampled


def _choose(indices: torch.Tensor, count: int, generator: torch.Generator | None) -> torch.Tensor:
    order = torch.randperm(len(indices), generator=generator).to(indices.device)
    return indices[order[:count]]


@dataclass(frozen=True)
class RegionTargets:
    """The sampled regions of one frame: boxes (S, 4), classes (S,) with 0 for background, and the box (S, 4)
    each foreground region should regress to (its best-matching ground truth; arbitrary for background)."""

    rois: torch.Tensor
    classes: torch.Tensor
    matched_boxes: torch.Tensor


def region_targets(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    config: RegionTargetConfig,
    generator: torch.Generator | None = None,
) -> RegionTargets:
    """Sample the training regions of one frame from its (R, 4) proposals and (G, 4) boxes of classes (G,)."""
    regions = torch.cat((proposals, gt_boxes.to(proposals.dtype)))
    if len(gt_boxes) == 0:
        labels = torch.full((len(regions),), NEGATIVE, dtype=torch.long, device=regions.device)
        matched = torch.zeros_like(labels)
        gt_boxes = regions.new_zeros(1, 4)
        gt_classes = labels.new_zeros(1)
    else:
        best_iou, matched = box_iou(regions, gt_boxes.to(regions.dtype)).max(dim=1)
        labels = torch.where(best_iou >= config.foreground_iou, POSITIVE, NEGATIVE)
    sampled = sample_labels(labels, batch_size=config.batch_size, positive_fraction=config.foreground_fraction, generator=generator)
    keep = sampled != IGNORED
    matched = matched[keep]
    classes = torch.where(sampled[keep] == POSITIVE, gt_classes[matched].long(), 0)
    return RegionTargets(rois=regions[keep], classes=classes, matched_boxes=gt_boxes[matched].to(regions.dtype))
