"""The pipelined driver: decoding, inference and writing of many streams on their own threads.

Each source is decoded on its own thread into a bounded queue (:mod:`dff.runtime.pipeline_inputs`),
inference runs in the calling thread, one :class:`~dff.runtime.streams.MultiStreamRuntime` tick at a
time, and each stream's overlay, labels and log are written on its own thread
(:mod:`dff.runtime.pipeline_outputs`). The wall time of a run then approaches its inference time
instead of the sum of decoding, inference, drawing and encoding.

A tick waits for the next frame of every file stream (back-pressure: no frame is dropped) and takes
the newest frame of every live stream that has one (a live stream drops what inference cannot keep
up with, counted per stream); it waits for the first live frame only when it would otherwise be empty.

Failures: a source that fails mid-run (a truncated file, a camera gone, a decoding error) ends its own
stream, with the reason in the report; the others go on. A failed write or an inference error stops
the run, as do Ctrl-C and SIGTERM (raised in the calling thread): the decoding threads stop, every
unfinished file is removed and the exception propagates. Streams that ended before keep their files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from dff.runtime.outputs import RunOutputs
from dff.runtime.pipeline_inputs import POLL_S, Arrival, Decoder, End
from dff.runtime.pipeline_outputs import Writer
from dff.runtime.pipeline_stats import StreamStats
from dff.runtime.streams import MultiStreamRuntime
from dff.sources import FrameSource


@dataclass
class PipelineStream:
    """One stream of a pipelined run: its name (for reports), its source, whether it is live, what it writes."""

    name: str
    source: FrameSource
    live: bool = False
    outputs: RunOutputs | None = None


@dataclass(frozen=True)
class StreamReport:
    """What one stream did: frames labelled, key frames, frames dropped (live) or skipped (unreadable), latency from
    frame read to labels, mean ms per stage of its key and non-key frames (their shares of the batched calls), why it
    ended early if it did, and the seconds from the start of the run to its end."""

    name: str
    frames: int
    key_frames: int
    dropped: int
    skipped: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    stage_mean_ms: dict[str, dict[str, float]]
    failure: str | None
    wall_s: float

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def line(self) -> str:
        if not self.frames:
            text = f"stream {self.name}: no frames"
        else:
            text = (
                f"stream {self.name}: {self.frames} frames, {self.fps:.1f} fps, latency p50 {self.latency_p50_ms:.1f} ms "
                f"p99 {self.latency_p99_ms:.1f} ms, key frames {self.key_frames / self.frames:.0%}, dropped {self.dropped}"
            )
        if self.skipped:
            text += f", skipped {self.skipped} unreadable"
        if self.failure:
            text += f"; ended early: {self.failure}"
        return text


@dataclass(frozen=True)
class PipelineReport:
    """A whole run: per stream, and the aggregate (wall time, time inside the runtime's ticks, ticks)."""

    streams: list[StreamReport]
    wall_s: float
    inference_s: float
    ticks: int

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.streams)

    @property
    def fps(self) -> float:
        """Aggregate wall-clock frames per second."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def inference_fps(self) -> float:
        """Frames per second of the inference alone (the time spent in the runtime's ticks)."""
        return self.frames / self.inference_s if self.inference_s > 0 else 0.0

    @property
    def pipelining(self) -> float:
        """Wall-clock fps over inference-only fps: 1 when decoding and writing are entirely hidden."""
        return self.fps / self.inference_fps if self.inference_fps else 0.0

    @property
    def failed(self) -> list[StreamReport]:
        return [s for s in self.streams if s.failure]

    def lines(self) -> list[str]:
        out = [s.line() for s in self.streams]
        out.append(
            f"all {len(self.streams)} streams: {self.frames} frames in {self.wall_s:.1f} s, {self.fps:.1f} fps "
            f"(inference alone {self.inference_fps:.1f} fps: pipelining {self.pipelining:.2f}), {self.ticks} ticks"
        )
        if self.failed:
            out.append("ended early: " + ", ".join(s.name for s in self.failed))
        return out


def run_pipeline(runtime: MultiStreamRuntime, streams: Sequence[PipelineStream], *, progress: bool = False) -> PipelineReport:
    """Run ``streams`` through ``runtime`` (stream j is the runtime's stream j) until every source has ended."""
    arrived = threading.Event()
    decoders = [Decoder(s.source, name=s.name, live=s.live, arrived=arrived) for s in streams]
    writers: list[Writer | None] = [None] * len(streams)
    finished: set[int] = set()  # streams whose files are complete and in place
    stats = [StreamStats() for _ in streams]  # constant memory: a live run may last for days
    failures: list[str | None] = [None] * len(streams)
    ended_at = [0.0] * len(streams)
    ticks, inference_s = 0, 0.0
    lengths = [s.source.length for s in streams]
    bar = tqdm(total=sum(lengths) if None not in lengths else None, unit="frame", disable=not progress)
    start = time.perf_counter()
    active = set(range(len(streams)))
    try:
        if len(streams) != len(runtime.streams):
            raise ValueError(f"the runtime has {len(runtime.streams)} streams but {len(streams)} were given")
        writers = [None if s.outputs is None else Writer(s.outputs, name=s.name) for s in streams]
        for decoder in decoders:
            decoder.start()
        while active:
            arrivals = _gather(decoders, active, arrived)
            for j, item in list(arrivals.items()):
                if isinstance(item, End):
                    failures[j] = item.reason
                    ended_at[j] = time.perf_counter() - start
                    active.discard(j)
                    del arrivals[j]
                    if writers[j] is not None:
                        writers[j].close()  # a finished stream keeps its files whatever the others do
                    finished.add(j)
            if not arrivals:
                continue
            tick_start = time.perf_counter()
            results = runtime({j: a.frame.image for j, a in arrivals.items()})
            done = time.perf_counter()
            ticks, inference_s = ticks + 1, inference_s + done - tick_start
            for j, arrival in arrivals.items():
                stats[j].add(results[j].timing, (done - arrival.read_at) * 1e3)
                if writers[j] is not None:
                    writers[j].put(arrival.frame, results[j])
            bar.update(len(arrivals))
    finally:
        bar.close()
        for decoder in decoders:
            decoder.stop()
        for j, (stream, writer) in enumerate(zip(streams, writers)):
            if j not in finished and writer is not None:
                writer.abort()
            elif j not in finished and stream.outputs is not None:  # its writer never started
                stream.outputs.abort()
    reports = [
        StreamReport(
            name=s.name,
            frames=stats[j].frames,
            key_frames=stats[j].key_frames,
            dropped=decoders[j].dropped,
            skipped=s.source.skipped,
            latency_p50_ms=stats[j].latency.percentile(50),
            latency_p99_ms=stats[j].latency.percentile(99),
            stage_mean_ms=stats[j].stage_mean_ms(),
            failure=failures[j],
            wall_s=ended_at[j],
        )
        for j, s in enumerate(streams)
    ]
    return PipelineReport(streams=reports, wall_s=time.perf_counter() - start, inference_s=inference_s, ticks=ticks)


def _gather(decoders: list[Decoder], active: set[int], arrived: threading.Event) -> dict[int, Arrival | End]:
    """One tick's inputs: the next item of every file stream (waiting for it), the newest of every live one that has
    one; waits for the first live frame where there is nothing else."""
    while True:
        arrived.clear()
        items: dict[int, Arrival | End] = {}
        for j in sorted(active):
            item = decoders[j].next(wait=not decoders[j].live)
            if item is not None:
                items[j] = item
        if items or not active:
            return items
        arrived.wait(POLL_S)
