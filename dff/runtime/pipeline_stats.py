"""Running statistics of a stream in constant memory: a camera may run for days, so nothing is kept per frame.

Latency percentiles come from a histogram with bins 1% wide on a log scale (0.01 ms to 1000 s), so
p50/p99 are exact to 1%; stage times are running sums per path (key, non-key). The per-frame
figures, where wanted, are in each stream's timing log.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from dff.runtime.timing import FrameTiming

#: Latency histogram: bins from LOW_MS up, each RATIO times the one before.
LOW_MS, HIGH_MS, RATIO = 0.01, 1e6, 1.01


class LatencyHistogram:
    """Counts of latencies in log-spaced bins; :meth:`percentile` to within one bin (1%)."""

    def __init__(self) -> None:
        self._counts = np.zeros(math.ceil(math.log(HIGH_MS / LOW_MS, RATIO)) + 1, np.int64)
        self.count = 0

    def add(self, ms: float) -> None:
        index = 0 if ms <= LOW_MS else min(int(math.log(ms / LOW_MS, RATIO)), len(self._counts) - 1)
        self._counts[index] += 1
        self.count += 1

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) in ms, the geometric middle of its bin; None without samples."""
        if not self.count:
            return None
        index = int(np.searchsorted(np.cumsum(self._counts), math.ceil(q / 100 * self.count) or 1))
        return LOW_MS * RATIO ** (index + 0.5)


class StreamStats:
    """What a report needs of a stream, updated frame by frame: frames, key frames, latency, stage sums per path."""

    def __init__(self) -> None:
        self.frames = 0
        self.key_frames = 0
        self.latency = LatencyHistogram()
        self._stage_sums: dict[str, dict[str, float]] = {"key": defaultdict(float), "non-key": defaultdict(float)}

    def add(self, timing: FrameTiming, latency_ms: float) -> None:
        self.frames += 1
        self.key_frames += timing.key
        self.latency.add(latency_ms)
        sums = self._stage_sums["key" if timing.key else "non-key"]
        for stage, ms in timing.stages_ms.items():
            sums[stage] += ms

    def stage_mean_ms(self) -> dict[str, dict[str, float]]:
        """Mean ms per stage of the key and the non-key frames (the frame's share of each batched call)."""
        counts = {"key": self.key_frames, "non-key": self.frames - self.key_frames}
        return {path: {s: ms / counts[path] for s, ms in sums.items()} for path, sums in self._stage_sums.items() if counts[path]}
