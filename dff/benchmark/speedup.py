"""Measured speed-up against the paper's model: r of Eq. 5 from stage timings, s of Eq. 7 predicted and measured.

One backend, one process, the same frames throughout. After a warm-up, every repeat is one pass
over the N frames in which the per-frame baseline (l = 1, every frame a key frame) and one
runtime (Algorithm 1, :class:`~dff.runtime.DeepFeatureFlowRuntime`) per interval l asked for
(:class:`~dff.runtime.FixedInterval`) take turns on each frame, each its own stream on the one
backend. Runs that take turns see the same machine: a load that drifts while the benchmark runs
(this CPU is shared) slows them all alike instead of whichever happened to run then.

* Stage times are the runtime's own per-stage laps (:mod:`dff.runtime.timing`) of every frame of
  every run; the benchmark reports their median and quartiles per path.
* Measured r (Eq. 5) is the runtime's :attr:`~dff.runtime.TimingSummary.ratio` over all frames of
  one repeat (mean non-key frame time / mean key frame time, whole frames: upload and download
  are part of both paths); the figure is the median over repeats.
* Measured s at l is the baseline's wall time per frame over the l runtime's, in the same pass;
  the figure is the median over repeats, with the range. The l runtime takes the first
  l·⌊N/l⌋ of the N frames, whole key-frame cycles, so it has exactly one key frame in l as
  Eq. 7 assumes. Wall time is the runtime's calls, what it does outside the stage laps included.
* Predicted s is Eq. 7 with the measured r (and with the FLOP r of Eq. 6 where MACs are given).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dff.benchmark.complexity import NetworkMACs
from dff.errors import ConfigError
from dff.runtime import Backend, DeepFeatureFlowRuntime, FixedInterval, FrameTiming, TimingSummary, predicted_speedup
from dff.runtime.timing import STAGES

#: Key-frame intervals of a full sweep: l = 1 … 20, as Figure 3 (detection) uses.
DEFAULT_INTERVALS = tuple(range(1, 21))


@dataclass(frozen=True, kw_only=True)
class SweepSettings:
    """What to measure: ``intervals`` (l), ``frames`` per pass (N), ``repeats`` (passes), and
    ``warmup_frames`` run untimed on both paths before the first pass."""

    intervals: tuple[int, ...] = DEFAULT_INTERVALS
    frames: int = 60
    repeats: int = 3
    warmup_frames: int = 4

    def __post_init__(self) -> None:
        if not (self.intervals and all(isinstance(l, int) and l >= 1 for l in self.intervals)):
            raise ConfigError(f"intervals must be integers >= 1, got {list(self.intervals)}")
        if not (len(set(self.intervals)) == len(self.intervals)):
            raise ConfigError(f"intervals must not repeat, got {list(self.intervals)}")
        if not (self.frames >= max(self.intervals)):
            raise ConfigError(
                f"every run needs at least one key-frame cycle: frames ({self.frames}) must be >= the largest interval "
                f"({max(self.intervals)})"
            )
        if not (self.repeats >= 1 and self.warmup_frames >= 0):
            raise ConfigError(f"need repeats >= 1 and warmup_frames >= 0, got {self.repeats} and {self.warmup_frames}")


@dataclass(frozen=True)
class Spread:
    """A median with a low and a high value around it (quartiles or the range, as the producer says)."""

    median: float
    low: float
    high: float

    @classmethod
    def quartiles(cls, values: Sequence[float]) -> Spread:
        p25, p50, p75 = np.percentile(values, [25, 50, 75])
        return cls(float(p50), float(p25), float(p75))

    @classmethod
    def range(cls, values: Sequence[float]) -> Spread:
        return cls(float(np.median(values)), float(np.min(values)), float(np.max(values)))

    def to_json(self) -> dict[str, float]:
        return {"median": self.median, "low": self.low, "high": self.high}


@dataclass(frozen=True)
class Run:
    """One runtime's share of a pass: interval l, its wall time in its calls, and the timings of its frames."""

    interval: int
    wall_s: float
    timings: tuple[FrameTiming, ...]

    @property
    def ms_per_frame(self) -> float:
        return self.wall_s * 1e3 / len(self.timings)

    @property
    def outside_ms_per_frame(self) -> float:
        """Wall time per frame not covered by the stage laps: the runtime's checks, scheduling and bookkeeping."""
        return self.ms_per_frame - sum(t.total_ms for t in self.timings) / len(self.timings)


@dataclass(frozen=True)
class IntervalRow:
    """Speed-up over per-frame evaluation at key-frame interval l."""

    interval: int
    #: Eq. 7 with the measured r.
    predicted_speedup: float
    #: Per-frame wall time / wall time at l, same pass: median and range over passes.
    measured_speedup: Spread
    fps: float
    #: Eq. 7 with the FLOP r of Eq. 6 (None without MAC counts).
    flops_predicted_speedup: float | None

    @property
    def measured_over_predicted(self) -> float:
        return self.measured_speedup.median / self.predicted_speedup


@dataclass(frozen=True)
class SpeedupBenchmark:
    """The figures of one sweep (see the module docstring for how each is measured)."""

    settings: SweepSettings
    frame_size: tuple[int, int]
    r_measured: Spread
    #: Per path ("key", "non-key"), per stage and "total": ms, median and quartiles over every frame of every run.
    stages_ms: dict[str, dict[str, Spread]]
    outside_ms_per_frame: float
    baseline_fps: float
    rows: tuple[IntervalRow, ...]
    macs: NetworkMACs | None = None
    description: dict[str, str] = field(default_factory=dict)

    @property
    def r_flops(self) -> float | None:
        return None if self.macs is None else self.macs.r_flops

    def row(self, interval: int) -> IntervalRow:
        return next(row for row in self.rows if row.interval == interval)

    def to_json(self) -> dict:
        """The figures as JSON-ready data: ``r_measured``, ``r_flops`` and ``rows`` first, then the details."""
        macs = None
        if self.macs is not None:
            macs = {
                "feature": self.macs.feature,
                "flow": self.macs.flow,
                "task": self.macs.task,
                "counted_from": self.macs.counted_from,
                "r_flops_eq5": self.macs.r_flops_eq5,
            }
        return {
            "r_measured": self.r_measured.median,
            "r_flops": self.r_flops,
            "rows": [
                {
                    "l": row.interval,
                    "predicted_speedup": row.predicted_speedup,
                    "measured_speedup": row.measured_speedup.median,
                    "measured_speedup_min": row.measured_speedup.low,
                    "measured_speedup_max": row.measured_speedup.high,
                    "measured_over_predicted": row.measured_over_predicted,
                    "fps": row.fps,
                    "flops_predicted_speedup": row.flops_predicted_speedup,
                }
                for row in self.rows
            ],
            "r_measured_range": [self.r_measured.low, self.r_measured.high],
            "baseline_fps": self.baseline_fps,
            "frame_size": list(self.frame_size),
            "frames": self.settings.frames,
            "repeats": self.settings.repeats,
            "stages_ms": {path: {s: spread.to_json() for s, spread in stages.items()} for path, stages in self.stages_ms.items()},
            "outside_ms_per_frame": self.outside_ms_per_frame,
            "macs": macs,
            **self.description,
        }

    def lines(self) -> list[str]:
        """The figures as a table, one line per item."""
        height, width = self.frame_size
        out = [f"{height}x{width} frames, {self.settings.frames} per pass, {self.settings.repeats} pass(es); "
               + ", ".join(f"{k} {v}" for k, v in self.description.items())]
        out.append(f"  {'stage':<12} {'key frames, ms':<24} {'non-key frames, ms':<24} (median [quartiles] over every frame)")
        paths = [self.stages_ms.get("key", {}), self.stages_ms.get("non-key", {})]
        for stage in (*STAGES, "total"):
            cells = [f"{p[stage].median:.3f} [{p[stage].low:.3f}, {p[stage].high:.3f}]" if stage in p else "-" for p in paths]
            out.append(f"  {stage:<12} {cells[0]:<24} {cells[1]:<24}")
        out.append(f"  outside the stage laps (the runtime's checks and bookkeeping): {self.outside_ms_per_frame:.3f} ms per frame")
        r = self.r_measured
        out.append(f"r measured (Eq. 5, mean non-key / key frame time): {r.median:.4f} [range over passes {r.low:.4f}, {r.high:.4f}]")
        if self.macs is not None:
            m = self.macs
            out.append(
                f"r FLOPs (Eq. 6, O(F) / O(N_feat), from the {m.counted_from}): {m.r_flops:.4f}; GMACs per frame: N_feat "
                f"{m.feature / 1e9:.4f}, F {m.flow / 1e9:.4f}, N_task {m.task / 1e9:.4f} (Eq. 5 with FLOPs: {m.r_flops_eq5:.4f})"
            )
        out.append(f"per-frame baseline: {self.baseline_fps:.2f} fps")
        flops_head = "   Eq. 7, r FLOPs" if self.macs is not None else ""
        out.append(f"{'l':>4} {'Eq. 7 s, r measured':>20} {'measured s [range]':>26} {'measured/Eq. 7':>15} {'fps':>9}{flops_head}")
        for row in self.rows:
            s = row.measured_speedup
            flops = f" {row.flops_predicted_speedup:17.2f}" if row.flops_predicted_speedup is not None else ""
            out.append(
                f"{row.interval:>4} {row.predicted_speedup:>20.3f} {s.median:>10.3f} [{s.low:.3f}, {s.high:.3f}] "
                f"{row.measured_over_predicted:>15.1%} {row.fps:>9.2f}{flops}"
            )
        return out


def _lockstep_pass(backend: Backend, images: Sequence[np.ndarray], intervals: Sequence[int]) -> tuple[Run, dict[int, Run]]:
    """One pass over ``images`` of the per-frame baseline and one runtime per interval, frame by frame in turn.

    Every runtime is its own stream on the shared backend. Taking turns on each frame exposes all of
    them alike to a machine whose load drifts (other jobs starting and stopping); the turn order
    rotates from frame to frame, so no runtime always follows the same one (warm caches).
    """
    streams: list[tuple[int | None, DeepFeatureFlowRuntime]] = [(None, DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1)))]
    streams += [(l, DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(l))) for l in intervals]
    # Whole key-frame cycles only: the first l·⌊N/l⌋ frames (the baseline takes all N).
    counts = [len(images) if l is None else l * (len(images) // l) for l, _ in streams]
    seconds = [0.0] * len(streams)
    timings: list[list[FrameTiming]] = [[] for _ in streams]
    for index, image in enumerate(images):
        for turn in range(len(streams)):
            which = (turn + index) % len(streams)
            if index < counts[which]:
                start = time.perf_counter()
                result = streams[which][1](image)
                seconds[which] += time.perf_counter() - start
                timings[which].append(result.timing)
    runs = [Run(interval=l or 1, wall_s=s, timings=tuple(t)) for (l, _), s, t in zip(streams, seconds, timings)]
    return runs[0], {run.interval: run for run in runs[1:]}


def measure_speedup(
    backend: Backend,
    images: Sequence[np.ndarray],
    settings: SweepSettings,
    *,
    macs: NetworkMACs | None = None,
    description: dict[str, str] | None = None,
) -> SpeedupBenchmark:
    """Run the sweep of ``settings`` on ``backend`` over ``images`` (the first ``settings.frames`` of them, one size)."""
    if not (len(images) >= settings.frames):
        raise ConfigError(f"the sweep needs {settings.frames} frames, got {len(images)}")
    images = images[: settings.frames]
    height, width = images[0].shape[:2]
    backend.sizes.check(height, width)
    warmup = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(2))
    warmup.warmup(height, width)
    for image in images[: settings.warmup_frames]:
        warmup(image)
    passes = [_lockstep_pass(backend, images, settings.intervals) for _ in range(settings.repeats)]
    ratios = [TimingSummary.of([t for run in (baseline, *runs.values()) for t in run.timings]).ratio for baseline, runs in passes]
    if None in ratios:
        raise ConfigError(f"measuring r needs key and non-key frames: add an interval > 1 to {list(settings.intervals)}")
    r_measured = Spread.range(ratios)
    rows = []
    for l in settings.intervals:
        rows.append(
            IntervalRow(
                interval=l,
                predicted_speedup=predicted_speedup(l, r_measured.median),
                measured_speedup=Spread.range([baseline.ms_per_frame / runs[l].ms_per_frame for baseline, runs in passes]),
                fps=float(np.median([1e3 / runs[l].ms_per_frame for _, runs in passes])),
                flops_predicted_speedup=None if macs is None else predicted_speedup(l, macs.r_flops),
            )
        )
    every_run = [run for baseline, runs in passes for run in (baseline, *runs.values())]
    return SpeedupBenchmark(
        settings=settings,
        frame_size=(height, width),
        r_measured=r_measured,
        stages_ms=_stage_spreads([t for run in every_run for t in run.timings]),
        outside_ms_per_frame=float(np.median([run.outside_ms_per_frame for run in every_run])),
        baseline_fps=float(np.median([1e3 / baseline.ms_per_frame for baseline, _ in passes])),
        rows=tuple(rows),
        macs=macs,
        description=dict(description or {}),
    )


def _stage_spreads(timings: Sequence[FrameTiming]) -> dict[str, dict[str, Spread]]:
    out: dict[str, dict[str, Spread]] = {}
    for path, key in (("key", True), ("non-key", False)):
        chosen = [t for t in timings if t.key == key]
        if chosen:
            stages = [s for s in STAGES if s in chosen[0].stages_ms]
            out[path] = {s: Spread.quartiles([t.stages_ms[s] for t in chosen]) for s in stages}
            out[path]["total"] = Spread.quartiles([t.total_ms for t in chosen])
    return out
