"""The cheap signals an adaptive key-frame scheduler reads (issue 16). Torch-free.

* :class:`FlowStatistics`: four numbers F's graph computes on the device next to M and S
  (``flow.onnx`` output ``flow_stats``, see :mod:`dff.ops.flow_statistics`); exports made before
  it have no such output, and backends then return None for them.
* :class:`Thumbnail`: each frame shrunk to 32 × 32 on the host (~20 µs), from which a scene cut
  (:func:`cut_score` against the previous frame) and the change since the key frame
  (:func:`thumbnail_distance`) are read without touching the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

#: Name of ``flow.onnx``'s statistics output, (N, STATISTICS_COUNT) float32.
FLOW_STATS = "flow_stats"
STATISTICS_COUNT = 4
#: Thumbnail size (width, height) for the frame tests: small enough to cost nothing, large enough to see a cut.
THUMBNAIL_SIZE = (32, 32)
HISTOGRAM_BINS = 8
#: How far (thumbnail cells) the cut test looks for the current picture in the previous one.
CUT_SEARCH = 6
CORRELATION_WEIGHT = 0.25


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
        magnitude, spread, outside, deviation = np.asarray(values).reshape(STATISTICS_COUNT).tolist()
        return cls(magnitude=magnitude, spread=spread, outside=outside, scale_deviation=deviation)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.magnitude, self.spread, self.outside, self.scale_deviation)


@dataclass(frozen=True)
class Thumbnail:
    """A frame area-averaged to 32 × 32 (texture and noise average out): grey levels, the same less their mean
    (so a fade or an exposure change does not count as change), and a colour histogram."""

    grey: np.ndarray  # float32 32 × 32, 0..255
    centred: np.ndarray  # grey - grey.mean()
    histogram: np.ndarray  # float32 8 × 8 × 8 BGR bins, summing to 1


def thumbnail(image: np.ndarray) -> Thumbnail:
    """The :class:`Thumbnail` of a uint8 BGR frame."""
    # Bilinear to twice the size, then area-averaging: every cell averages 16 pixels (texture and noise average
    # out) for ~10 µs whatever the frame size (area-averaging the whole frame costs ~1 µs per 1000 pixels).
    double = cv2.resize(image, (2 * THUMBNAIL_SIZE[0], 2 * THUMBNAIL_SIZE[1]), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(double, THUMBNAIL_SIZE, interpolation=cv2.INTER_AREA)
    histogram = cv2.calcHist([small], [0, 1, 2], None, [HISTOGRAM_BINS] * 3, [0, 256] * 3)
    histogram *= 1.0 / (THUMBNAIL_SIZE[0] * THUMBNAIL_SIZE[1])
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    # OpenCV's reductions here: numpy's cost ~10 µs each in call overhead on arrays this small.
    return Thumbnail(grey=grey, centred=grey - cv2.mean(grey)[0], histogram=histogram)


def thumbnail_distance(a: Thumbnail, b: Thumbnail) -> float:
    """Mean absolute difference of two thumbnails' centred grey levels, in grey levels."""
    return float(cv2.norm(a.centred, b.centred, cv2.NORM_L1)) / a.centred.size


def cut_score(current: Thumbnail, previous: Thumbnail) -> float:
    """How unlike ``previous`` ``current`` is, in a way motion does not fake: the colour histograms' mismatch
    (1 - intersection: a pan keeps the colours) plus a quarter of (1 - the best normalised correlation of
    ``current``'s centre anywhere within 6 of 32 cells in ``previous``: a pan keeps the picture, shifted).
    On 16 synthetic episodic videos cuts score 0.33-0.83, motion of up to 15 pixels a frame up to 0.37: the
    two overlap a little, which is why :class:`~dff.runtime.adaptive.AdaptiveInterval` also asks for a jump."""
    mismatch = 1.0 - cv2.compareHist(current.histogram, previous.histogram, cv2.HISTCMP_INTERSECT)
    m = CUT_SEARCH
    centre = current.grey[m:-m, m:-m]
    correlation = float(cv2.matchTemplate(previous.grey, centre, cv2.TM_CCOEFF_NORMED).max())
    return mismatch + CORRELATION_WEIGHT * (1.0 - correlation)
