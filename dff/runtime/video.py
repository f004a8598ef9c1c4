"""Driving a runtime over a frame source: one step per decoded frame, optionally beside the per-frame baseline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from dff.runtime.runtime import DeepFeatureFlowRuntime, FrameResult
from dff.runtime.timing import FrameTiming, TimingSummary
from dff.sources import Frame, FrameSource


@dataclass(frozen=True)
class Step:
    """One frame, what the runtime made of it, and what the per-frame baseline made of it (if run)."""

    frame: Frame
    result: FrameResult
    baseline: FrameResult | None = None


def run_source(
    runtime: DeepFeatureFlowRuntime,
    source: FrameSource,
    *,
    baseline: DeepFeatureFlowRuntime | None = None,
    warmup: bool = True,
    progress: bool = False,
) -> Iterator[Step]:
    """Run ``runtime`` (and ``baseline`` on the same frames) over ``source``, frame by frame.

    ``warmup`` runs every stage once at the first frame's size before timing starts. The
    progress bar shows where ``source`` knows its length. Afterwards ``source.skipped`` counts
    unreadable frames and ``source.ended_early`` (video files) tells whether it stopped short.
    """
    bar = tqdm(total=source.length, unit="frame", disable=not progress or source.length is None)
    with bar:
        for frame in source:
            if warmup:
                for each in (runtime, baseline):
                    if each is not None:
                        each.warmup(*frame.image.shape[:2])
                warmup = False
            result = runtime(frame.image)
            yield Step(frame, result, None if baseline is None else baseline(frame.image))
            bar.update(frame.index + 1 - bar.n)  # frames consumed, skipped ones included
        if bar.total is not None and bar.n < bar.total:
            # The container over-announced its length: the bar ends full at the frames there were (the summary says so).
            bar.total = bar.n
            bar.refresh()


@dataclass(frozen=True)
class RunReport:
    """Timing of a run over a source, of the per-frame baseline on the same frames where it ran, and the source's health."""

    timing: TimingSummary
    baseline: TimingSummary | None
    skipped: int
    ended_early: bool
    announced: int | None = None

    @classmethod
    def of(
        cls,
        timings: Sequence[FrameTiming],
        *,
        interval: int,
        source: FrameSource,
        baseline: Sequence[FrameTiming] | None = None,
    ) -> RunReport:
        return cls(
            timing=TimingSummary.of(timings, interval=interval),
            baseline=None if baseline is None else TimingSummary.of(baseline, interval=1),
            skipped=source.skipped,
            ended_early=getattr(source, "ended_early", False),
            announced=source.length,
        )

    @property
    def speedup(self) -> float | None:
        """Measured speed-up over the per-frame baseline: the ratio of their frame rates on the same frames."""
        if self.baseline is None or not self.baseline.fps:
            return None
        return self.timing.fps / self.baseline.fps

    def lines(self) -> list[str]:
        out = ["deep feature flow:"] + self.timing.lines()
        if self.baseline is not None:
            out += ["per-frame baseline:"] + self.baseline.lines()
            out.append(f"measured speed-up over per-frame: {self.speedup:.2f}x")
        if self.skipped:
            out.append(f"skipped {self.skipped} unreadable frame(s)")
        if self.ended_early:
            read = self.timing.frames + self.skipped
            out.append(f"the video ended after {read} of the {self.announced} frames its container announced")
        return out
