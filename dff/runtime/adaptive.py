"""Adaptive key frames under a budget (issue 16; the paper's open problem, Sections 3 and 6). Torch-free.

The paper spends a key frame every l frames whatever the video does. :class:`AdaptiveInterval`
spends the same budget (a key-frame rate, e.g. 1/l) where propagation is failing, read from
signals the non-key path already has (:mod:`dff.runtime.adaptive_signals`):

* **Staleness.** Each non-key frame i gets a predicted loss d_i (pixel-accuracy points lost against a key
  frame at i) from a linear model of its signals (F's statistics relative to the key frame; for exports
  without them, the thumbnail change since the key frame), fitted on training videos
  (:mod:`dff.runtime.adaptive_calibration`).
* **Rule.** A key frame comes when the staleness accumulated since the last key frame, sum d_j, reaches
  a threshold T. With staleness growing linearly at speed a, an interval of L frames accumulates
  a·L²/2, so equal accumulated staleness per interval gives L ∝ 1/sqrt(a): fast motion gets short
  intervals, a still scene long ones, and for a fixed number of key frames this split minimises the
  total staleness (Lagrange: each interval's marginal cost equal).
* **Budget.** T for the target rate comes from the calibration table (measured on training videos),
  times exp(offset), where offset integrates (key - rate) frame by frame (gain ``gain``, clamped to
  ±``swing``): while unclamped, key frames over n frames differ from rate·n by offset/gain, at most
  2·swing/gain, so the budget holds over a long run, and what a still stretch saves is spent on the next
  fast one. How many frames a given T turns into key frames depends on the video (that is the point), so
  the controller does real work: the defaults let T range over a factor of e^±3 and move it by 17% a key
  frame, enough to correct a calibration from other videos within a few key frames.
* **Always key**: the first frame, a new size (the base class), a scene cut (the frame's thumbnail
  unlike the previous frame's, :func:`~dff.runtime.adaptive_signals.cut_score`, above the calibrated
  threshold, or above half of it in a sudden jump: the cut frame itself is the key frame), and a frame
  ``max_interval`` after the last key frame.

When it decides (``decide``):

* ``"before"`` (default): before F on frame i, from frame i − 1's staleness extrapolated one frame;
  a key frame never pays for F.
* ``"after"``: after F on frame i, from frame i's own staleness; a frame promoted to a key frame has paid
  for F as well as N_feat. ``benchmarks/adaptive.py`` measures which wins at equal cost.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from dff.atomic import write_bytes_atomic, write_failure
from dff.config import from_dict, to_dict
from dff.errors import ConfigError
from dff.runtime.adaptive_signals import STATISTICS_COUNT, FlowStatistics, Thumbnail, cut_score, thumbnail, thumbnail_distance
from dff.runtime.scheduler import KeyFrameScheduler

Decide = Literal["before", "after"]
#: What the staleness model reads: F's statistics ("flow"), or the thumbnail change since the key frame ("frame":
#: exports without statistics). The thumbnail change adds nothing next to F's statistics (staleness R² 0.545 with
#: it, 0.542 without, on the demo model's 6,586 training pairs) and costs two OpenCV calls a frame, so "flow" leaves
#: it out (and its frames' thumbnails have no grey levels).
Signals = Literal["flow", "frame"]
#: Points of pixel accuracy a propagated frame is assumed to lose at least (see Calibration.staleness).
STALENESS_FLOOR = 0.01
#: A cut is also a score above CUT_LOW × the threshold that jumps to CUT_JUMP × the last two frames' scores.
CUT_LOW, CUT_JUMP = 0.5, 2.0
#: The calibration's file name beside an export's manifest.
CALIBRATION_NAME = "keyframes.json"
#: The cut test a calibration's ``cut_score`` threshold is for: calibrations of another (earlier) test are refused.
CUT_TEST = "quadrant-histogram-8"


@dataclass(frozen=True)
class Calibration:
    """Thresholds and the staleness model, measured on training videos (never on the test videos).

    ``weights`` and ``bias``: d = max(STALENESS_FLOOR, weights · x + bias), x the signals (:func:`signal_vector`), in
    pixel-accuracy points lost; ``thresholds``: (key-frame rate, T) pairs measured on the training videos,
    rates increasing; ``cut_score``: :func:`~dff.runtime.adaptive_signals.cut_score` above which a frame is a cut;
    ``cut_test``: the cut test the threshold is for (:data:`CUT_TEST`); ``flow_sha256``: the ``flow.onnx`` it was
    measured with; ``videos``: what it was measured on.
    """

    signals: Signals
    weights: tuple[float, ...]
    bias: float
    thresholds: tuple[tuple[float, float], ...]
    cut_score: float
    cut_test: str = CUT_TEST
    flow_sha256: str | None = None
    videos: str = ""

    def __post_init__(self) -> None:
        expected = {"flow": STATISTICS_COUNT, "frame": 1}[self.signals]
        if not (len(self.weights) == expected):
            raise ConfigError(f"a {self.signals!r} calibration has {expected} weights, got {len(self.weights)}")
        rates = [rate for rate, _ in self.thresholds]
        if not (rates and rates == sorted(rates) and all(t > 0 for _, t in self.thresholds)):
            raise ConfigError(f"calibration thresholds must be (rate, T > 0) pairs with rates increasing, got {self.thresholds}")

    def staleness(self, x: Sequence[float]) -> float:
        # The floor keeps every frame adding a little: a still scene still reaches T (a slow clock), and the
        # budget controller can always lower T to a rate the signals alone never reach.
        return max(STALENESS_FLOOR, sum(w * v for w, v in zip(self.weights, x)) + self.bias)

    def threshold(self, rate: float) -> float:
        """T for ``rate``: interpolated in log-log between the measured pairs, extrapolated by the end segments."""
        pairs = self.thresholds
        if len(pairs) == 1:
            return pairs[0][1]
        logs = [(math.log(r), math.log(t)) for r, t in pairs]
        x = math.log(rate)
        i = max(1, min(len(logs) - 1, next((j for j, (r, _) in enumerate(logs) if r >= x), len(logs) - 1)))
        (x0, y0), (x1, y1) = logs[i - 1], logs[i]
        return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def signal_vector(signals: Signals, statistics: FlowStatistics | None, current: Thumbnail, key: Thumbnail) -> tuple[float, ...]:
    """The staleness model's inputs: F's four statistics, or the thumbnail distance from the key frame ``key``
    (thumbnails made with ``grey``)."""
    if signals == "frame":
        return (thumbnail_distance(current, key),)
    if statistics is None:
        raise ConfigError(
            "this calibration reads F's statistics, but the export's flow.onnx has none (exported before them): "
            "export the checkpoint again, or calibrate with signals='frame'"
        )
    return statistics  # a tuple already


def save_calibration(path: str | Path, calibration: Calibration) -> Path:
    """Write ``calibration`` as JSON, atomically."""
    try:
        return write_bytes_atomic(Path(path), (json.dumps(to_dict(calibration), indent=2) + "\n").encode())
    except OSError as error:
        raise write_failure(path, error, "key-frame calibration") from None


def load_calibration(path: str | Path, *, flow_sha256: str | None = None) -> Calibration:
    """Read a calibration; with ``flow_sha256``, refuse one measured with another ``flow.onnx``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"no key-frame calibration at {path}: calibrate on training videos first "
            f"(python -m dff.runtime.adaptive_calibration EXPORT_DIR), or give --calibration PATH"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a key-frame calibration ({error}); calibrate again") from None
    if isinstance(data, dict) and data.get("cut_test") != CUT_TEST:
        raise ConfigError(f"{path} was calibrated for an earlier scene-cut test than this version's: calibrate again")
    calibration = from_dict(Calibration, data, where=str(path))
    if flow_sha256 is not None and calibration.flow_sha256 not in (None, flow_sha256):
        raise ConfigError(f"{path} was calibrated with another flow.onnx than this export's: calibrate again")
    return calibration


class AdaptiveInterval(KeyFrameScheduler):
    """Key frames where propagation fails, ``rate`` of all frames over a long run, never more than
    ``max_interval`` frames apart, and at every scene cut (see the module for the rule and its budget)."""

    reads_flow = True

    def __init__(
        self,
        *,
        rate: float,
        max_interval: int,
        calibration: Calibration,
        decide: Decide = "before",
        gain: float = 0.2,
        swing: float = 3.0,
    ) -> None:
        if not (isinstance(rate, (int, float)) and 0 < rate <= 1):
            raise ValueError(f"key-frame rate must be in (0, 1], got {rate!r}")
        if not (isinstance(max_interval, int) and max_interval >= 1 and max_interval * rate >= 1):
            raise ValueError(
                f"max_interval must be an integer >= 1/rate = {1 / rate:.3g} (otherwise it alone spends more than the "
                f"budget), got {max_interval!r}"
            )
        if decide not in ("before", "after"):
            raise ValueError(f"decide must be 'before' or 'after', got {decide!r}")
        self.rate, self.max_interval, self.calibration, self.decide = float(rate), max_interval, calibration, decide
        self.gain, self.swing = gain, swing
        self._base_threshold = calibration.threshold(self.rate)
        self._grey = calibration.signals == "frame"  # only the "frame" signals read the grey thumbnails
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self._offset = 0.0  # log of T's factor: the budget's integral controller
        self._previous: Thumbnail | None = None
        self._key: Thumbnail | None = None  # the key frame's
        self._current: Thumbnail | None = None
        self._cut = False
        self._scores = (0.0, 0.0)  # the cut scores of the last two frames
        self._accumulated = 0.0  # sum of d_j since the key frame
        self._last = self._before_last = 0.0  # d of the last two non-key frames since the key frame
        #: Frames seen, key frames among them, and scene cuts found since the last reset.
        self.frames = self.keys = self.cuts = 0

    @property
    def threshold(self) -> float:
        """T now: the calibrated threshold for ``rate`` times the budget controller's factor."""
        return self._base_threshold * math.exp(self._offset)

    def is_key(self, image: np.ndarray) -> bool:
        self._current = thumbnail(image, grey=self._grey)
        if self._previous is not None:
            score, threshold = cut_score(self._current, self._previous), self.calibration.cut_score
            # A score above the calibrated threshold, or above half of it and twice the last two frames' scores
            # (motion changes smoothly, a cut at once).
            self._cut = score > threshold or (score > CUT_LOW * threshold and score > CUT_JUMP * max(self._scores))
            self._scores = (self._scores[1], score)
        self._previous = self._current
        key = super().is_key(image)
        self.cuts += self._cut
        self._count(key)
        return key

    def choose(self, image: np.ndarray) -> bool:
        if self._cut or self.since_key + 1 >= self.max_interval:
            return True
        if self.decide == "after":
            return False
        forecast = max(0.0, 2 * self._last - self._before_last)  # d_i from d_{i-1}, d_{i-2}, linearly
        return self._accumulated + forecast >= self.threshold

    def promote(self, statistics: FlowStatistics | None) -> bool:
        calibration = self.calibration
        x = signal_vector(calibration.signals, statistics, self._current, self._key)
        d = calibration.staleness(x)
        if self.decide == "after" and self._accumulated + d >= self.threshold:
            self._offset = min(self.swing, self._offset + self.gain)  # counted as non-key in is_key: now a key frame
            self.keys += 1
            self._start_interval()
            return True
        self._accumulated += d
        self._before_last, self._last = self._last, d
        return False

    def _count(self, key: bool) -> None:
        self.frames += 1
        self.keys += key
        self._offset = max(-self.swing, min(self.swing, self._offset + self.gain * (key - self.rate)))
        if key:
            self._start_interval()

    def _start_interval(self) -> None:
        self._key = self._current
        self._accumulated = self._last = self._before_last = 0.0

    def __repr__(self) -> str:
        return f"AdaptiveInterval(rate={self.rate:g}, max_interval={self.max_interval}, decide={self.decide!r})"
