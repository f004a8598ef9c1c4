"""Per-stage timing of the runtime and its summary: fps, latency per path, r (Eq. 5) and s (Eq. 7).

Timing costs one ``perf_counter`` call per stage. On an asynchronous device a stage's time is
only its launch time unless the device is synchronised after it, which slows the pipeline;
the :class:`Stopwatch` does that only when given a ``synchronize`` function.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The stages of one frame, in order. A key frame runs feature, a non-key frame flow and warp; where the backend runs a
#: path as one fused graph (:meth:`~dff.runtime.backend.Backend.key_path`, ``propagate``), that call is one stage,
#: ``key_path`` (feature and task) or ``propagate`` (flow, warp and task).
STAGES = ("preprocess", "feature", "key_path", "flow", "warp", "propagate", "task", "postprocess")


@dataclass(frozen=True)
class FrameTiming:
    """Milliseconds per stage of one frame, and whether it took the key-frame path."""

    index: int
    key: bool
    stages_ms: dict[str, float]

    @property
    def total_ms(self) -> float:
        return sum(self.stages_ms.values())

    @property
    def ran_flow(self) -> bool:
        """Whether F ran on this frame: a non-key frame, or one an adaptive scheduler promoted after F."""
        return "flow" in self.stages_ms or "propagate" in self.stages_ms

    @property
    def ran_feature(self) -> bool:
        """Whether N_feat ran on this frame: a key frame."""
        return "feature" in self.stages_ms or "key_path" in self.stages_ms


class Stopwatch:
    """Laps of ``perf_counter`` for the stages of one frame; synchronises before each lap when given ``synchronize``."""

    def __init__(self, synchronize: Callable[[], None] | None = None) -> None:
        self._synchronize = synchronize
        self.stages_ms: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        """Add the time since the previous lap (or the start) to ``stage`` (a frame promoted to a key frame after F
        runs task twice)."""
        if self._synchronize is not None:
            self._synchronize()
        now = time.perf_counter()
        self.stages_ms[stage] = self.stages_ms.get(stage, 0.0) + (now - self._last) * 1e3
        self._last = now


@dataclass(frozen=True)
class PathStats:
    """Latency of the frames that took one path (key or non-key)."""

    frames: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    stage_mean_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, timings: Sequence[FrameTiming]) -> PathStats | None:
        if not timings:
            return None
        totals = np.array([t.total_ms for t in timings])
        stages = [s for s in STAGES if s in timings[0].stages_ms]
        return cls(
            frames=len(timings),
            mean_ms=float(totals.mean()),
            p50_ms=float(np.percentile(totals, 50)),
            p99_ms=float(np.percentile(totals, 99)),
            stage_mean_ms={s: float(np.mean([t.stages_ms[s] for t in timings])) for s in stages},
        )


def predicted_speedup(interval: int, ratio: float) -> float:
    """Eq. 7: s = l / (1 + (l - 1) r), the speed-up over per-frame evaluation with one key frame every l."""
    return interval / (1 + (interval - 1) * ratio)


@dataclass(frozen=True)
class TimingSummary:
    """What a run measured. ``ratio`` is r of Eq. 5, measured: mean non-key time / mean key time."""

    frames: int
    fps: float
    key: PathStats | None
    non_key: PathStats | None
    interval: int | None = None

    @classmethod
    def of(cls, timings: Sequence[FrameTiming], *, interval: int | None = None) -> TimingSummary:
        total_s = sum(t.total_ms for t in timings) / 1e3
        return cls(
            frames=len(timings),
            fps=len(timings) / total_s if total_s > 0 else 0.0,
            key=PathStats.of([t for t in timings if t.key]),
            non_key=PathStats.of([t for t in timings if not t.key]),
            interval=interval,
        )

    @property
    def ratio(self) -> float | None:
        if self.key is None or self.non_key is None:
            return None
        return self.non_key.mean_ms / self.key.mean_ms

    @property
    def predicted_speedup(self) -> float | None:
        if self.ratio is None or self.interval is None:
            return None
        return predicted_speedup(self.interval, self.ratio)

    def lines(self) -> list[str]:
        """A human-readable report, one line per item."""
        out = [f"{self.frames} frames at {self.fps:.1f} fps"]
        for label, stats in (("key", self.key), ("non-key", self.non_key)):
            if stats is not None:
                stages = ", ".join(f"{s} {ms:.2f}" for s, ms in stats.stage_mean_ms.items())
                out.append(
                    f"  {label:8s} {stats.frames:5d} frames: mean {stats.mean_ms:.2f} ms, p50 {stats.p50_ms:.2f}, "
                    f"p99 {stats.p99_ms:.2f} ({stages})"
                )
        if self.ratio is not None:
            out.append(f"  r (Eq. 5, non-key / key time) = {self.ratio:.3f}")
        if self.predicted_speedup is not None:
            out.append(f"  s (Eq. 7, predicted speed-up for l = {self.interval}) = {self.predicted_speedup:.2f}x")
        return out
