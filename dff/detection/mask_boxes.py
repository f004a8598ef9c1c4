"""Boxes from masks, and frames held with their boxes: detection data from real video.

A binary mask of one class (a DAVIS object mask, the Car pixels of a CamVid label, the foreground
of background subtraction on a static camera) gives one box per connected region of its pixels,
8-connected, with :func:`~dff.detection.ground_truth.instance_boxes`' visibility limits (so a
region too small for a feature cell is left out, as occluded objects are in the synthetic video).
Touching objects make one region and one box: masks without instances cannot part them.

:class:`BoxedFrames` is the :class:`~dff.detection.ground_truth.BoxedSequence` of frames and boxes
someone already has in memory, for :func:`dff.detection.train.train_detector` and
:func:`dff.detection.evaluate.evaluate_detection`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from dff.detection.ground_truth import MIN_PIXELS, MIN_SIDE, FrameBoxes, instance_boxes


def mask_boxes(mask: np.ndarray, class_id: int, *, min_pixels: int = MIN_PIXELS, min_side: int = MIN_SIDE) -> FrameBoxes:
    """One box of class ``class_id`` per 8-connected region of the H×W ``mask`` (nonzero = object), tight around its pixels."""
    if not (mask.ndim == 2):
        raise ValueError(f"mask must be H×W, got shape {mask.shape}")
    if not (class_id >= 1):
        raise ValueError(f"class_id must be >= 1 (0 is the background), got {class_id}")
    _, regions = cv2.connectedComponents((mask != 0).astype(np.uint8), connectivity=8)
    return instance_boxes(regions, np.full(mask.shape, class_id, np.int64), min_pixels=min_pixels, min_side=min_side)


@dataclass(frozen=True)
class BoxedFrames:
    """Frames (uint8 H×W×3 BGR, one size) with each frame's boxes; every frame is labelled."""

    name: str
    frames: Sequence[np.ndarray]
    frame_boxes: Sequence[FrameBoxes]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not (len(self.frames) == len(self.frame_boxes) and len(self.frames) >= 1):
            raise ValueError(
                f"{self.name}: needs one FrameBoxes per frame and at least one frame, "
                f"got {len(self.frames)} frames and {len(self.frame_boxes)} FrameBoxes"
            )
        if not (len(self.class_names) >= 2):
            raise ValueError(f"{self.name}: class_names must name the background and at least one class, got {self.class_names}")
        most = max((int(b.classes.max()) for b in self.frame_boxes if len(b.classes)), default=0)
        if not (most < len(self.class_names)):
            raise ValueError(f"{self.name}: a box has class {most} but class_names has {len(self.class_names)} names")

    @property
    def labelled_frames(self) -> range:
        return range(len(self.frames))

    def __len__(self) -> int:
        return len(self.frames)

    def __str__(self) -> str:
        return self.name

    def image(self, t: int) -> np.ndarray:
        return self.frames[t]

    def boxes(self, t: int) -> FrameBoxes:
        return self.frame_boxes[t]
