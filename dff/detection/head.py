"""N_task for object detection: R-FCN on the intermediate features (Section 4, "Object Detection").

The features f (C channels; 1024 for the ResNets) are split in halves. On the first half the
region proposal branch (RPN, Ren et al. 2015) has two sibling 1×1 convolutions: 2n_a objectness
scores and 4n_a box deltas for n_a anchors per cell. On the second half the detection branch has
two sibling 1×1 convolutions: (C+1)k² position-sensitive score maps and 4k² (class-agnostic) box
regression maps. These four 1×1 convolutions are N_task's only learnable layers, as Section 4
keeps N_task to one weight layer per output. Standard Faster R-CNN puts a 3×3 convolution before
the RPN's 1×1 layers; the paper does not, and neither does the DFF code's R-FCN (its
``rpn_cls_score`` reads the sliced features directly), so neither do we: the 3×3 context comes
from N_feat's dilated 3×3 head.

Everything after the convolutions has no parameters (Section 4: "No free parameters are involved
in the per-region computation") and is split out of ``forward``:

* :meth:`RFCNTaskNet.proposals`: decode the anchors' deltas, clip to the frame, drop boxes
  smaller than ``min_size``, keep the ``pre_nms_top_n`` best, NMS at IoU 0.7, keep
  ``post_nms_top_n`` (300 in the paper).
* :meth:`RFCNTaskNet.classify`: position-sensitive RoI average pooling of both map sets over the
  proposals, then averaging the k² bins ("voting"): class logits and box deltas per region.
* :meth:`RFCNTaskNet.detect`: softmax, decode, per-class NMS at IoU 0.3, score threshold.

So ``forward`` (and DeepFeatureFlow's ``task``) gives the maps on the feature grid, which warp,
export and batch like the segmentation score maps; ``detect`` turns them into boxes in frame
pixels. The RPN's channels go anchor-major: channels 2a and 2a + 1 are the background and object
scores of anchor a (:mod:`dff.detection.anchors` orders the anchors), channels 4a … 4a + 3 its deltas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from dff.detection.anchors import AnchorGrid
from dff.detection.boxes import BoxCoder, box_area, clip_boxes
from dff.detection.nms import batched_nms, nms
from dff.detection.psroi_pool import psroi_pool

#: The RPN codes anchors with unit weights; R-FCN codes proposals with Fast R-CNN's normalisation.
RPN_CODER = BoxCoder((1.0, 1.0, 1.0, 1.0))
RFCN_CODER = BoxCoder((10.0, 10.0, 5.0, 5.0))


class RFCNMaps(NamedTuple):
    """What N_task computes on the feature grid (h × w) for N frames; n_a anchors, k × k bins, C+1 classes."""

    objectness: torch.Tensor  # (N, 2n_a, h, w)
    anchor_deltas: torch.Tensor  # (N, 4n_a, h, w)
    class_maps: torch.Tensor  # (N, (C+1)k², h, w), position-sensitive score maps
    box_maps: torch.Tensor  # (N, 4k², h, w), position-sensitive box regression maps


@dataclass(frozen=True, kw_only=True)
class ProposalConfig:
    """Region proposals (Section 4: NMS at IoU 0.7 down to 300 per frame)."""

    pre_nms_top_n: int = 6000
    post_nms_top_n: int = 300
    nms_iou: float = 0.7
    #: Boxes narrower or lower than this many frame pixels (after clipping) are dropped.
    min_size: float = 1.0

    def __post_init__(self) -> None:
        if not (self.pre_nms_top_n >= 1 and self.post_nms_top_n >= 1 and 0 < self.nms_iou <= 1 and self.min_size >= 0):
            raise ValueError(
                "proposals need pre_nms_top_n >= 1, post_nms_top_n >= 1, 0 < nms_iou <= 1, min_size >= 0; got "
                f"{self.pre_nms_top_n}, {self.post_nms_top_n}, {self.nms_iou}, {self.min_size}"
            )


@dataclass(frozen=True, kw_only=True)
class DetectionConfig:
    """The final detections: per-class NMS at IoU 0.3 (Section 4), a score threshold and a cap per frame."""

    nms_iou: float = 0.3
    score_threshold: float = 1e-3
    max_detections: int = 300

    def __post_init__(self) -> None:
        if not (0 < self.nms_iou <= 1 and 0 <= self.score_threshold < 1 and self.max_detections >= 1):
            raise ValueError(
                "detection needs 0 < nms_iou <= 1, 0 <= score_threshold < 1, max_detections >= 1; got "
                f"{self.nms_iou}, {self.score_threshold}, {self.max_detections}"
            )


@dataclass(frozen=True)
class Detections:
    """One frame's detections, best first: boxes (n, 4) in frame pixels, scores (n,), classes (n,) in 1 … C."""

    boxes: torch.Tensor
    scores: torch.Tensor
    classes: torch.Tensor


class RFCNTaskNet(nn.Module):
    """N_task for detection: features (N, in_channels, h, w) → :class:`RFCNMaps`; ``detect`` gives boxes.

    ``num_classes`` counts the background, as the segmentation task net's (C + 1).
    """

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        group_size: int = 7,
        anchor_sizes: Sequence[float] = (128.0, 256.0, 512.0),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        feature_stride: int = 16,
        proposal: ProposalConfig = ProposalConfig(),
        detection: DetectionConfig = DetectionConfig(),
    ) -> None:
        super().__init__()
        if not (in_channels >= 2 and in_channels % 2 == 0):
            raise ValueError(f"in_channels must be even (split into the RPN's and R-FCN's halves), got {in_channels}")
        if not (num_classes >= 2 and group_size >= 1):
            raise ValueError(f"need num_classes >= 2 (C + background) and group_size >= 1, got {num_classes} and {group_size}")
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.group_size = group_size
        self.feature_stride = feature_stride
        self.anchor_grid = AnchorGrid(sizes=anchor_sizes, aspect_ratios=aspect_ratios, stride=feature_stride)
        self.proposal = proposal
        self.detection = detection
        half = in_channels // 2
        anchors = self.anchor_grid.num_anchors
        bins = group_size * group_size
        self.rpn_objectness = nn.Conv2d(half, 2 * anchors, 1)
        self.rpn_deltas = nn.Conv2d(half, 4 * anchors, 1)
        self.rfcn_classes = nn.Conv2d(half, num_classes * bins, 1)
        self.rfcn_boxes = nn.Conv2d(half, 4 * bins, 1)
        # Faster R-CNN's initialisation: Gaussian 0.01 for scores, 0.001 for box regression.
        for conv, std in ((self.rpn_objectness, 0.01), (self.rpn_deltas, 0.001), (self.rfcn_classes, 0.01), (self.rfcn_boxes, 0.001)):
            nn.init.normal_(conv.weight, std=std)
            nn.init.zeros_(conv.bias)

    def forward(self, feat: torch.Tensor) -> RFCNMaps:
        rpn_feat, rfcn_feat = feat.chunk(2, dim=1)
        return RFCNMaps(
            objectness=self.rpn_objectness(rpn_feat),
            anchor_deltas=self.rpn_deltas(rpn_feat),
            class_maps=self.rfcn_classes(rfcn_feat),
            box_maps=self.rfcn_boxes(rfcn_feat),
        )

    def frame_size(self, maps: RFCNMaps) -> tuple[int, int]:
        """(H, W) of the frames the maps come from: the grid times the stride."""
        height, width = maps.class_maps.shape[-2:]
        return height * self.feature_stride, width * self.feature_stride

    def anchors(self, maps: RFCNMaps) -> torch.Tensor:
        """(h·w·n_a, 4) anchors of the maps' grid, in frame pixels."""
        height, width = maps.objectness.shape[-2:]
        return self.anchor_grid(height, width, device=maps.objectness.device, dtype=maps.objectness.dtype)

    def rpn_outputs(self, maps: RFCNMaps) -> tuple[torch.Tensor, torch.Tensor]:
        """Per anchor, in :meth:`anchors`' order: logits (N, h·w·n_a, 2) (background, object) and deltas (N, h·w·n_a, 4)."""
        n, _, height, width = maps.objectness.shape
        a = self.anchor_grid.num_anchors
        logits = maps.objectness.view(n, a, 2, height, width).permute(0, 3, 4, 1, 2).reshape(n, -1, 2)
        deltas = maps.anchor_deltas.view(n, a, 4, height, width).permute(0, 3, 4, 1, 2).reshape(n, -1, 4)
        return logits, deltas

    @torch.no_grad()
    def proposals(self, maps: RFCNMaps) -> list[torch.Tensor]:
        """Region proposals of each frame: (R_b, 4) boxes in frame pixels, best first. No gradient flows through them."""
        size = self.frame_size(maps)
        anchors = self.anchors(maps)
        logits, deltas = self.rpn_outputs(maps)
        objectness = logits.softmax(dim=2)[..., 1]
        config = self.proposal
        out = []
        for scores, frame_deltas in zip(objectness, deltas):
            boxes = clip_boxes(RPN_CODER.decode(frame_deltas, anchors), size)
            big = ((boxes[:, 2] - boxes[:, 0]) >= config.min_size) & ((boxes[:, 3] - boxes[:, 1]) >= config.min_size)
            big &= box_area(boxes) > 0
            boxes, scores = boxes[big], scores[big]
            best = scores.topk(min(config.pre_nms_top_n, len(scores))).indices
            boxes, scores = boxes[best], scores[best]
            keep = nms(boxes, scores, config.nms_iou, max_kept=config.post_nms_top_n)
            out.append(boxes[keep])
        return out

    def classify(self, maps: RFCNMaps, rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """R-FCN's per-region stage: rois (R, 5) as (frame index, x1, y1, x2, y2) → class logits (R, C+1) and
        box deltas (R, 4), each the average of the k² position-sensitive bins (R-FCN's voting)."""
        pool = dict(group_size=self.group_size, spatial_scale=1.0 / self.feature_stride)
        logits = psroi_pool(maps.class_maps, rois, **pool).mean(dim=(2, 3))
        deltas = psroi_pool(maps.box_maps, rois, **pool).mean(dim=(2, 3))
        return logits, deltas

    @torch.no_grad()
    def detect(self, maps: RFCNMaps) -> list[Detections]:
        """Detections of each frame: boxes in frame pixels, scores and classes (1 … C), best first."""
        size = self.frame_size(maps)
        proposals = self.proposals(maps)
        rois = stack_rois(proposals)
        logits, deltas = self.classify(maps, rois)
        probabilities = logits.softmax(dim=1)
        boxes = clip_boxes(RFCN_CODER.decode(deltas, rois[:, 1:]), size)
        config = self.detection
        out = []
        for b in range(len(proposals)):
            mine = rois[:, 0] == b
            # Every (region, class ≥ 1) pair above the threshold is a candidate; the box is class-agnostic.
            scores = probabilities[mine, 1:]
            region, column = torch.nonzero(scores > config.score_threshold, as_tuple=True)
            candidates, candidate_scores, classes = boxes[mine][region], scores[region, column], column + 1
            keep = batched_nms(candidates, candidate_scores, classes, config.nms_iou, max_kept=config.max_detections)
            out.append(Detections(boxes=candidates[keep], scores=candidate_scores[keep], classes=classes[keep]))
        return out


def stack_rois(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-frame (R_b, 4) boxes → (ΣR_b, 5) rois with the frame index first."""
    return torch.cat([torch.cat((torch.full_like(b[:, :1], i), b), dim=1) for i, b in enumerate(boxes)])


def rfcn_head(*, in_channels: int = 1024, num_classes: int = 31, feature_stride: int = 16) -> RFCNTaskNet:
    """The paper's R-FCN head: k = 7, anchors of 128, 256, 512 pixels at ratios 0.5, 1, 2, 300 proposals
    (ImageNet VID: 30 classes and background)."""
    return RFCNTaskNet(in_channels=in_channels, num_classes=num_classes, feature_stride=feature_stride)


def rfcn_head_tiny(*, in_channels: int = 32, num_classes: int, feature_stride: int = 16) -> RFCNTaskNet:
    """R-FCN for small frames (about 128 pixels) and the tiny networks: k = 3, anchors of 24, 40, 64 pixels, 100 proposals."""
    return RFCNTaskNet(
        in_channels=in_channels,
        num_classes=num_classes,
        feature_stride=feature_stride,
        group_size=3,
        anchor_sizes=(24.0, 40.0, 64.0),
        proposal=ProposalConfig(pre_nms_top_n=1000, post_nms_top_n=100),
        detection=DetectionConfig(max_detections=100),
    )
