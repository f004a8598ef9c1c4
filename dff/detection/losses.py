"""R-FCN's training loss on the maps of N_task: RPN and region stage, each softmax cross-entropy plus smooth L1.

Faster R-CNN's approximate joint training: proposals are computed from the current maps without
gradient, the region stage is trained on the sampled proposals (:mod:`dff.detection.targets`).
Box losses are summed over the positives and divided by the number of sampled anchors or
regions, as in Fast/Faster R-CNN; the smooth L1 transition is 1/9 for the RPN (σ = 3) and 1 for
the region stage. The original R-FCN trains its region stage with online hard example mining;
here regions are sampled, which is simpler and enough at this scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from dff.detection.head import RFCN_CODER, RPN_CODER, RFCNMaps, RFCNTaskNet, stack_rois
from dff.detection.targets import (
    IGNORED,
    POSITIVE,
    AnchorTargetConfig,
    RegionTargetConfig,
    label_anchors,
    region_targets,
    sample_labels,
)

RPN_SMOOTH_L1_BETA = 1.0 / 9.0
RFCN_SMOOTH_L1_BETA = 1.0


class GroundTruth(NamedTuple):
    """One frame's objects: boxes (G, 4) in frame pixels and classes (G,) in 1 … C."""

    boxes: torch.Tensor
    classes: torch.Tensor


class DetectionLosses(NamedTuple):
    rpn_class: torch.Tensor
    rpn_box: torch.Tensor
    rfcn_class: torch.Tensor
    rfcn_box: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        """The sum of the four terms, each weighted 1 (Faster R-CNN's and R-FCN's end-to-end training)."""
        return self.rpn_class + self.rpn_box + self.rfcn_class + self.rfcn_box


def detection_losses(
    head: RFCNTaskNet,
    maps: RFCNMaps,
    truth: Sequence[GroundTruth],
    *,
    anchor_targets: AnchorTargetConfig = AnchorTargetConfig(),
    region_targets_config: RegionTargetConfig = RegionTargetConfig(),
    generator: torch.Generator | None = None,
) -> DetectionLosses:
    """The four loss terms for maps of N frames and each frame's ground truth."""
    if not (len(truth) == maps.objectness.shape[0]):
        raise ValueError(f"need ground truth for each of the {maps.objectness.shape[0]} frames, got {len(truth)}")
    rpn_class, rpn_box = _rpn_losses(head, maps, truth, anchor_targets, generator)
    rfcn_class, rfcn_box = _region_losses(head, maps, truth, region_targets_config, generator)
    return DetectionLosses(rpn_class=rpn_class, rpn_box=rpn_box, rfcn_class=rfcn_class, rfcn_box=rfcn_box)


def _rpn_losses(
    head: RFCNTaskNet, maps: RFCNMaps, truth: Sequence[GroundTruth], config: AnchorTargetConfig, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    anchors = head.anchors(maps)
    logits, deltas = head.rpn_outputs(maps)
    class_terms, box_terms = [], []
    for frame_logits, frame_deltas, gt in zip(logits, deltas, truth):
        labels, matched = label_anchors(anchors, gt.boxes.to(anchors.dtype), config)
        labels = sample_labels(labels, batch_size=config.batch_size, positive_fraction=config.positive_fraction, generator=generator)
        sampled = labels != IGNORED
        positive = labels == POSITIVE
        # A sum over the sampled anchors, not a mean: a frame with none sampled adds 0, not NaN.
        class_terms.append(F.cross_entropy(frame_logits[sampled], labels[sampled], reduction="sum") / sampled.sum().clamp(min=1))
        targets = RPN_CODER.encode(gt.boxes.to(anchors.dtype)[matched[positive]], anchors[positive])
        box = F.smooth_l1_loss(frame_deltas[positive], targets, beta=RPN_SMOOTH_L1_BETA, reduction="sum")
        box_terms.append(box / sampled.sum().clamp(min=1))
    return torch.stack(class_terms).mean(), torch.stack(box_terms).mean()


def _region_losses(
    head: RFCNTaskNet, maps: RFCNMaps, truth: Sequence[GroundTruth], config: RegionTargetConfig, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    proposals = head.proposals(maps)
    sampled = [region_targets(p, gt.boxes, gt.classes, config, generator) for p, gt in zip(proposals, truth)]
    rois = stack_rois([s.rois for s in sampled])
    classes = torch.cat([s.classes for s in sampled])
    matched_boxes = torch.cat([s.matched_boxes for s in sampled])
    logits, deltas = head.classify(maps, rois)
    foreground = classes > 0
    targets = RFCN_CODER.encode(matched_boxes[foreground], rois[foreground, 1:])
    box = F.smooth_l1_loss(deltas[foreground], targets, beta=RFCN_SMOOTH_L1_BETA, reduction="sum")
    return F.cross_entropy(logits, classes), box / max(len(rois), 1)
