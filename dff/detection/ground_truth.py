"""Ground-truth boxes: the synthetic video (:mod:`dff.data.synthetic`) seen as a detection dataset.

The synthetic video knows which object each pixel shows (``instances``, occlusion and the frame's
border already applied) and each pixel's class (``label``). An object's box is the tight box
around its **visible** pixels, as ImageNet VID annotates; objects showing fewer than
``min_pixels`` pixels, or whose visible box is narrower or lower than ``min_side`` pixels, are
left out (nearly fully occluded or out of frame: neither a detector nor an annotator sees them).

Numpy only: boxes are float32 (n, 4) as (x1, y1, x2, y2) in the box convention of
:mod:`dff.detection.boxes` (pixel column c covers [c, c + 1)), classes int64 (n,) in 1 … C.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dff.data.sequence import FrameSubset
from dff.data.synthetic import SyntheticVideo

#: Default visibility limits: half a feature cell (8×8 pixels) of visible area, 4 pixels of side.
MIN_PIXELS = 64
MIN_SIDE = 4


@dataclass(frozen=True)
class FrameBoxes:
    """One frame's objects: boxes float32 (n, 4) and classes int64 (n,)."""

    boxes: np.ndarray
    classes: np.ndarray


class BoxedSequence(Protocol):
    """What detection training and evaluation read: frames (uint8 H×W×3 BGR) and their objects."""

    class_names: tuple[str, ...]
    labelled_frames: Sequence[int]

    def __len__(self) -> int: ...

    def image(self, t: int) -> np.ndarray: ...

    def boxes(self, t: int) -> FrameBoxes: ...


def instance_boxes(instances: np.ndarray, labels: np.ndarray, *, min_pixels: int = MIN_PIXELS, min_side: int = MIN_SIDE) -> FrameBoxes:
    """Boxes of the visible objects in an instance map (0 background, j > 0 object j) with per-pixel class ``labels``."""
    if not (instances.shape == labels.shape and instances.ndim == 2):
        raise ValueError(f"instances and labels must be one H×W shape, got {instances.shape} and {labels.shape}")
    boxes, classes = [], []
    for instance in np.unique(instances):
        if instance == 0:
            continue
        ys, xs = np.nonzero(instances == instance)
        box = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        if len(xs) < min_pixels or min(box[2] - box[0], box[3] - box[1]) < min_side:
            continue
        boxes.append(box)
        # An object has one class; the labels of its pixels agree (the synthetic video draws both from one owner map).
        classes.append(labels[ys[0], xs[0]])
    return FrameBoxes(boxes=np.asarray(boxes, np.float32).reshape(-1, 4), classes=np.asarray(classes, np.int64))


class SyntheticBoxes:
    """A :class:`~dff.data.synthetic.SyntheticVideo` as a :class:`BoxedSequence`: every frame has its boxes."""

    def __init__(self, video: SyntheticVideo, *, min_pixels: int = MIN_PIXELS, min_side: int = MIN_SIDE) -> None:
        if not (min_pixels >= 1 and min_side >= 1):
            raise ValueError(f"min_pixels and min_side must be >= 1, got {min_pixels} and {min_side}")
        self.video = video
        self.min_pixels = min_pixels
        self.min_side = min_side
        self.class_names = video.class_names
        self.labelled_frames = video.labelled_frames

    def __len__(self) -> int:
        return len(self.video)

    def __str__(self) -> str:
        return str(self.video)

    def image(self, t: int) -> np.ndarray:
        return self.video.image(t)

    def boxes(self, t: int) -> FrameBoxes:
        return instance_boxes(self.video.instances(t), self.video.label(t), min_pixels=self.min_pixels, min_side=self.min_side)


class AnnotatedFrames(FrameSubset):
    """A boxed sequence whose annotated frames are only those of ``sequence`` in ``frames`` (ImageNet VID's sparse protocol)."""

    sequence: BoxedSequence

    def boxes(self, t: int) -> FrameBoxes:
        return self.sequence.boxes(t)
