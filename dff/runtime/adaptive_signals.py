"""The cheap signals an adaptive key-frame scheduler reads (issue 16). Torch-free.

* :class:`FlowStatistics`: four numbers F's graph computes on the device next to M and S
  (``flow.onnx`` output ``flow_stats``, see :mod:`dff.ops.flow_statistics`); exports made before
  it have no such output, and backends then return None for them.
* :class:`FrameThumbnails`: each frame shrunk to a 32 × 24 grey thumbnail on the host (~20 µs),
  from which a scene cut (the thumbnail far from the previous frame's) and the change since the key
  frame (far from the key frame's) are read without touching the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Name of ``flow.onnx``'s statistics output, (N, STATISTICS_COUNT) float32.
FLOW_STATS = "flow_stats"
STATISTICS_COUNT = 4
#: Thumbnail size (width, height) for the frame tests: small enough to cost nothing, large enough to see a cut.
THUMBNAIL_SIZE = (32, 24)


@dataclass(frozen=True)
class FlowStatistics:
    """One frame's F statistics, relative to its key frame (feature-map pixels, shares in 0..1)."""

    magnitude: float  # mean |M|
    spread: float  # standard deviation of |M|
    outside: float  # share of locations whose read point p + M(p) lies outside the key frame
    scale_deviation: float  # mean |S - 1|

    @classmethod
    def from_array(cls, values: np.ndarray) -> FlowStatistics:
        """From one row of ``flow_stats`` (4 numbers, in the order above)."""
        magnitude, spread, outside, deviation = (float(v) for v in np.asarray(values, np.float64).reshape(4))
        return cls(magnitude=magnitude, spread=spread, outside=outside, scale_deviation=deviation)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.magnitude, self.spread, self.outside, self.scale_deviation)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """float32 32 × 24 grey thumbnail of a BGR frame, values 0..255 (area-averaged: noise and texture average out)."""
    small = cv2.resize(image, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)


def thumbnail_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails after removing each one's mean brightness (so a fade or an
    exposure change is not a cut), in grey levels."""
    return float(np.abs((a - a.mean()) - (b - b.mean())).mean())
