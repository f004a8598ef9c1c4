"""Many streams on one backend: S streams batched in one MultiStreamRuntime against the same S streams run one after
another at batch 1, on the same frames, and how flat the batched ticks are.

For each S the two take turns ``repeats`` times, alternating which goes first (so a load that drifts hits both
alike). Stream j
takes the frames from offset j of one pool, so the streams differ. In a batched run every frame of
a tick waits for the whole tick, so a frame's latency is its tick's time; the tick spread is the
slowest steady-state tick over the mean one (the first l ticks, where every stream needs its first
key frame, are left out), each tick's time being its best over the repeats.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from dff.errors import ConfigError
from dff.runtime import Backend, DeepFeatureFlowRuntime, MultiStreamRuntime, phased_schedulers
from dff.runtime.streams import Phase


@dataclass(frozen=True)
class StreamsRow:
    """The figures for S streams: aggregate and per-stream fps batched, fps one after another at batch 1, their ratio,
    tick latency p50/p99, slowest over mean tick, and the share of pixels whose labels equal the stream's alone."""

    streams: int
    fps: float
    stream_fps: float
    one_by_one_fps: float
    batching_gain: float
    p50_ms: float
    p99_ms: float
    tick_max_over_mean: float
    same_labels: float

    def to_json(self) -> dict[str, float]:
        return {key: round(value, 6) if isinstance(value, float) else value for key, value in asdict(self).items()}

    def line(self) -> str:
        return (
            f"{self.streams:>3} {self.fps:>9.1f} {self.stream_fps:>10.1f} {self.one_by_one_fps:>11.1f} {self.batching_gain:>6.2f}x "
            f"{self.p50_ms:>7.2f} {self.p99_ms:>7.2f} {self.tick_max_over_mean:>9.2f} {self.same_labels:>10.6f}"
        )


HEADER = f"{'S':>3} {'fps':>9} {'per stream':>10} {'1-by-1 fps':>11} {'gain':>7} {'p50 ms':>7} {'p99 ms':>7} {'max/mean':>9} {'same':>10}"


def batched(backend: Backend, streams: Sequence[Sequence[np.ndarray]], interval: int, phase: Phase) -> tuple[float, list[float], list]:
    """Seconds for all ticks, each tick's seconds, and labels[i][j] of frame i of stream j, in one MultiStreamRuntime."""
    runtime = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(len(streams), interval, phase))
    ticks, labels = [], []
    for i in range(len(streams[0])):
        start = time.perf_counter()
        out = runtime({j: s[i] for j, s in enumerate(streams)})
        ticks.append(time.perf_counter() - start)
        labels.append([out[j].labels for j in range(len(streams))])
    return sum(ticks), ticks, labels


def one_after_another(backend: Backend, streams: Sequence[Sequence[np.ndarray]], interval: int, phase: Phase) -> tuple[float, list]:
    """Seconds and labels[j][i] of the same streams, each alone at batch 1 with the same scheduler and phase."""
    labels = []
    start = time.perf_counter()
    for scheduler, images in zip(phased_schedulers(len(streams), interval, phase), streams):
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
        labels.append([runtime(image).labels for image in images])
    return time.perf_counter() - start, labels


def measure_streams(
    backend: Backend,
    pool: Sequence[np.ndarray],
    counts: Sequence[int],
    *,
    frames: int,
    interval: int,
    phase: Phase = "staggered",
    repeats: int = 2,
) -> list[StreamsRow]:
    """One row per S in ``counts``; ``pool`` holds at least ``frames + max(counts) - 1`` frames of one size."""
    if not (frames > interval and len(pool) >= frames + max(counts) - 1 and repeats >= 1):
        raise ConfigError(
            f"need frames per stream > l ({frames} vs {interval}), a pool of frames + S - 1 ({len(pool)} vs "
            f"{frames + max(counts) - 1}) and repeats >= 1 ({repeats})"
        )
    DeepFeatureFlowRuntime(backend=backend, scheduler=phased_schedulers(1, 1)[0]).warmup(*pool[0].shape[:2])
    rows = []
    for count in counts:
        streams = [pool[j : j + frames] for j in range(count)]
        batched_s = alone_s = 0.0
        ticks: list[list[float]] = []
        for repeat in range(repeats):
            for run in ("batched", "alone") if repeat % 2 == 0 else ("alone", "batched"):  # neither always goes first
                if run == "batched":
                    seconds, tick_s, labels_b = batched(backend, streams, interval, phase)
                    batched_s += seconds
                    ticks.append(tick_s)
                else:
                    seconds, labels_a = one_after_another(backend, streams, interval, phase)
                    alone_s += seconds
        same = float(np.mean([(labels_b[i][j] == labels_a[j][i]).mean() for j in range(count) for i in range(frames)]))
        total = count * frames * repeats
        # Tick i carries the same key frames in every repeat: its best time over the repeats is its cost without the
        # load spikes of a shared machine, which would otherwise decide the slowest tick.
        steady = np.min(ticks, axis=0)[interval:]
        rows.append(
            StreamsRow(
                streams=count,
                fps=total / batched_s,
                stream_fps=total / batched_s / count,
                one_by_one_fps=total / alone_s,
                batching_gain=alone_s / batched_s,
                p50_ms=float(np.percentile(ticks, 50) * 1e3),
                p99_ms=float(np.percentile(ticks, 99) * 1e3),
                tick_max_over_mean=float(steady.max() / steady.mean()),
                same_labels=same,
            )
        )
    return rows
