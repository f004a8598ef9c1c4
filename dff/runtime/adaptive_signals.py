"""The cheap signals an adaptive key-frame scheduler reads (issue 16). Torch-free.

* :class:`FlowStatistics`: four numbers F's graph computes on the device next to M and S
  (``flow.onnx`` output ``flow_stats``, see :mod:`dff.ops.flow_statistics`); exports made before
  it have no such output, and backends then return None for them.
* :class:`Thumbnail`: each frame sampled on a 48 × 48 grid on the host and its colour histogram, from which a
  scene cut (:func:`cut_score`: colour histograms against the previous frame's) and the change since the key frame
  (:func:`thumbnail_distance`) are read without touching the device.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

#: Name of ``flow.onnx``'s statistics output, (N, STATISTICS_COUNT) float32.
FLOW_STATS = "flow_stats"
STATISTICS_COUNT = 4
#: The sampling grid (width, height) of the frame tests: small enough to cost little, large enough to see a cut.
SAMPLE_SIZE = (48, 48)
SAMPLES = SAMPLE_SIZE[0] * SAMPLE_SIZE[1]
HISTOGRAM_BINS = 8
#: The grey thumbnail of the key-frame distance (3 × 3 samples a cell).
GREY_SIZE = (16, 16)
#: The coarse layout the cut test compares besides the colours, and its weight (mean |Δ colour| / 255 of the cells).
GRID_SIZE = (3, 3)
GRID_WEIGHT = 2.0


@dataclass(frozen=True)
class FlowStatistics:
    """One frame's F statistics, relative to its key frame (feature-map pixels, shares in 0..1)."""

    magnitude: float  # mean |M|
    spread: float  # standard deviation of |M|
    outside: float  # share of locations whose read point p + M(p) lies outside the key frame
    scale_deviation: float  # mean |S - 1|

    @classmethod
    def from_array(cls, values: np.ndarray) -> FlowStatistics:
        """From one row of ``flow_stats`` (an array of 4 numbers, in the order above)."""
        magnitude, spread, outside, deviation = values.reshape(STATISTICS_COUNT).tolist()
        return cls(magnitude=magnitude, spread=spread, outside=outside, scale_deviation=deviation)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.magnitude, self.spread, self.outside, self.scale_deviation)


@dataclass(frozen=True)
class Thumbnail:
    """A frame sampled on a 48 × 48 grid and the colour histogram of the samples (2,304 of them: an estimate of the
    frame's colours that needs no averaging). The grey levels area-averaged to 16 × 16 and less their mean (so a
    fade or an exposure change does not count as change) are computed on first use: only the "frame" signals
    compare them (:func:`thumbnail_distance`)."""

    sample: np.ndarray  # uint8 48 × 48 × 3 BGR
    histogram: np.ndarray  # float32 8 × 8 × 8 BGR bins: counts of the samples
    grid: np.ndarray  # uint8 3 × 3 × 3: the samples' mean colour in each cell of a 3 × 3 grid

    @functools.cached_property
    def centred(self) -> np.ndarray:
        grey = cv2.resize(cv2.cvtColor(self.sample, cv2.COLOR_BGR2GRAY), GREY_SIZE, interpolation=cv2.INTER_AREA).astype(np.float32)
        # OpenCV's reductions here: numpy's cost ~10 µs each in call overhead on arrays this small.
        return grey - cv2.mean(grey)[0]


def thumbnail(image: np.ndarray) -> Thumbnail:
    """The :class:`Thumbnail` of a uint8 BGR frame: three OpenCV calls."""
    # Nearest-neighbour sampling, not averaging: a histogram of samples estimates the colours as well, and this was
    # the cheapest of the variants measured (bilinear or area-averaged 32 × 32 and 64 × 64 thumbnails: 1.2-2× the
    # time at 128 × 128, to 3× at 240 × 320) and separated cuts from motion best (see cut_score).
    sample = cv2.resize(image, SAMPLE_SIZE, interpolation=cv2.INTER_NEAREST)
    histogram = cv2.calcHist([sample], [0, 1, 2], None, [HISTOGRAM_BINS] * 3, [0, 256] * 3)
    return Thumbnail(sample=sample, histogram=histogram, grid=cv2.resize(sample, GRID_SIZE, interpolation=cv2.INTER_AREA))


def thumbnail_distance(a: Thumbnail, b: Thumbnail) -> float:
    """Mean absolute difference of two thumbnails' centred grey levels, in grey levels."""
    return float(cv2.norm(a.centred, b.centred, cv2.NORM_L1)) / a.centred.size


def cut_score(current: Thumbnail, previous: Thumbnail) -> float:
    """How unlike ``previous`` ``current`` is, in a way motion does not fake: the colour histograms' mismatch
    (1 - their intersection: a pan keeps the colours) plus twice the mean colour change of a 3 × 3 grid's cells
    (/ 255: a pan moves the cells' contents by a fraction of a cell, a cut to the same colours rearranged changes
    them at once). On 12 synthetic episodic videos at 128 × 128 (seeds 1000-1003, 2100-2107) the 41 cuts score
    0.29-1.3 and the other 2,347 frames at most 0.22 (99.5% of them below 0.18), which is why
    :class:`~dff.runtime.adaptive.AdaptiveInterval` asks for a jump only near the threshold. A shifted
    correlation of grey thumbnails (cv2.matchTemplate) instead of the grid separated the two no better and cost
    twice the rest of the scheduler's work."""
    mismatch = 1.0 - cv2.compareHist(current.histogram, previous.histogram, cv2.HISTCMP_INTERSECT) / SAMPLES
    return mismatch + GRID_WEIGHT * cv2.norm(current.grid, previous.grid, cv2.NORM_L1) / (current.grid.size * 255)
