"""``dff bench --scheduler``: a key-frame scheduler's measured cost on the benchmark's frames (issue 16).

Each pass runs the frames, in order from a fresh stream, through a runtime with the chosen scheduler,
taking turns frame by frame with the per-frame baseline (l = 1) as the interval sweep does
(:mod:`dff.benchmark.speedup`), so that a drifting machine load hits both alike. Reported: the measured
key-frame share and share of frames that ran F, fps, the speed-up over the baseline in the same pass,
and r (Eq. 5) measured on the scheduled run's own frames; medians over passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dff.benchmark.speedup import Spread
from dff.runtime import Backend, DeepFeatureFlowRuntime, FixedInterval, TimingSummary
from dff.runtime.scheduler import KeyFrameScheduler


@dataclass(frozen=True)
class ScheduledBenchmark:
    """A scheduler over ``frames`` frames, ``passes`` times: shares, speed and r, each a median over passes."""

    scheduler: str
    frames: int
    passes: int
    key_share: float
    flow_share: float
    fps: Spread
    speedup: Spread  # baseline time per frame / the scheduler's, in the same pass
    r_measured: float | None  # None where the run had no non-key frame

    def to_json(self) -> dict:
        return {
            "scheduler": self.scheduler,
            "frames": self.frames,
            "passes": self.passes,
            "key_share": self.key_share,
            "flow_share": self.flow_share,
            "fps": self.fps.median,
            "speedup": self.speedup.to_json(),
            "r_measured": self.r_measured,
        }

    def lines(self) -> list[str]:
        r = "-" if self.r_measured is None else f"{self.r_measured:.4f}"
        return [
            f"{self.scheduler} over {self.frames} frames, {self.passes} pass(es) in turns with per-frame evaluation:",
            f"  key frames {100 * self.key_share:.1f}% (measured), F on {100 * self.flow_share:.1f}% of frames, "
            f"{self.fps.median:.2f} fps, speed-up over per-frame {self.speedup.median:.3f} [range {self.speedup.low:.3f}, "
            f"{self.speedup.high:.3f}], r measured (Eq. 5) {r}",
        ]


def measure_scheduled(backend: Backend, images: Sequence[np.ndarray], scheduler: KeyFrameScheduler, *, passes: int) -> ScheduledBenchmark:
    """Run ``images`` ``passes`` times through ``scheduler`` and the per-frame baseline in turns (see the module)."""
    runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
    baseline = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1))
    keys = flows = 0
    fps, speedups, timings = [], [], []
    for index in range(passes):
        runtime.reset()
        baseline.reset()
        seconds = {"scheduled": 0.0, "baseline": 0.0}
        for frame, image in enumerate(images):
            # The turn order alternates, so neither always follows the other (warm caches).
            for name in ("scheduled", "baseline") if (frame + index) % 2 == 0 else ("baseline", "scheduled"):
                start = time.perf_counter()
                result = (runtime if name == "scheduled" else baseline)(image)
                seconds[name] += time.perf_counter() - start
                if name == "scheduled":
                    keys += result.key
                    flows += result.timing.ran_flow
                    timings.append(result.timing)
        fps.append(len(images) / seconds["scheduled"])
        speedups.append(seconds["baseline"] / seconds["scheduled"])
    total = passes * len(images)
    return ScheduledBenchmark(
        scheduler=repr(scheduler),
        frames=len(images),
        passes=passes,
        key_share=keys / total,
        flow_share=flows / total,
        fps=Spread.range(fps),
        speedup=Spread.range(speedups),
        r_measured=TimingSummary.of(timings).ratio,
    )
