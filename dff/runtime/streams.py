"""Algorithm 1 for many streams on one backend: one batched call per stage per tick, staggered key frames.

Each stream keeps its own scheduler and state (key frame and key features: per-stream handles on
the backend's device). A tick takes the next frame of some streams; per network size, the non-key
streams go through F together, then the key-frame streams through N_feat together (with those an
adaptive scheduler promoted after reading its own stream's F statistics), the rest through W together,
and all of them through N_task together (see the batched methods of :mod:`dff.runtime.backend`). On a backend with
fused paths (``Backend.fused_paths``: ONNX Runtime and OpenVINO on an export with ``key_path.onnx`` and
``propagate.onnx``) a tick is two calls instead: the non-key streams through F → W → N_task together, then the key
frames (promoted ones included) through N_feat → N_task together. With one stream this is
:class:`~dff.runtime.runtime.DeepFeatureFlowRuntime` frame by frame.

Staggered phases: with a fixed interval l, stream j gets phase round(j·l/S), so each tick carries
about S/l key frames instead of S on one tick and none on the next l−1 (``phases="aligned"``: all 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from dff.runtime.backend import Backend, FeatureHandle, FrameHandle
from dff.runtime.detections import Detections
from dff.runtime.runtime import FrameResult
from dff.runtime.scheduler import FixedInterval, KeyFrameScheduler
from dff.runtime.timing import FrameTiming, Stopwatch
from dff.sources import check_image

Phase = Literal["staggered", "aligned"]


class PhasedInterval(FixedInterval):
    """A key frame every ``interval`` frames, on the frames i with (i − phase) ≡ 0 (mod l) counted from the stream's
    first frame; the rules of :class:`KeyFrameScheduler` (first frame, after reset, new size) add key frames off phase,
    after which the stream returns to its phase, so a restart does not move its key frames onto another stream's tick."""

    def __init__(self, interval: int, phase: int = 0) -> None:
        self.phase = phase % interval if isinstance(interval, int) and interval >= 1 else 0
        self.count = 0
        super().__init__(interval)

    def is_key(self, image: np.ndarray) -> bool:
        key = super().is_key(image)
        self.count += 1
        return key

    def choose(self, image: np.ndarray) -> bool:
        return (self.count - self.phase) % self.interval == 0

    def __repr__(self) -> str:
        return f"PhasedInterval({self.interval}, phase={self.phase})"


def stream_phases(streams: int, interval: int, phase: Phase = "staggered") -> list[int]:
    """Stream j's phase: round(j·l/S) staggered, 0 aligned."""
    if phase not in ("staggered", "aligned"):
        raise ValueError(f"phase must be 'staggered' or 'aligned', got {phase!r}")
    # Halves round up (integer arithmetic): Python's round() rounds them to even, which put 3 of 4 streams on one phase at l = 2.
    return [(2 * j * interval + streams) // (2 * streams) % interval if phase == "staggered" else 0 for j in range(streams)]


@dataclass
class StreamState:
    """One stream: its scheduler, its key frame and key features (device handles), frames seen."""

    scheduler: KeyFrameScheduler
    key_frame: FrameHandle | None = None
    key_feat: FeatureHandle | None = None
    frames: int = 0


class MultiStreamRuntime:
    """S streams over one backend. ``schedulers``: one per stream (e.g. :func:`phased_schedulers`).

    Each result's ``timing.stages_ms`` holds the frame's share of every batched call it took part in (the call's time
    over the frames in it), so the shares of a tick's frames add up to the tick's time and a stream's timings sum to
    its part of the inference time. ``sync_timing`` as for :class:`~dff.runtime.runtime.DeepFeatureFlowRuntime`.

    ``fused``: run each path as one batched call where the backend has fused paths (the default); False: stage by stage.
    """

    def __init__(
        self, *, backend: Backend, schedulers: list[KeyFrameScheduler], sync_timing: bool = False, fused: bool = True
    ) -> None:
        self.backend = backend
        self.streams = [StreamState(scheduler) for scheduler in schedulers]
        self._synchronize = backend.synchronize if (sync_timing and backend.asynchronous) else None
        self.fused = fused and backend.fused_paths

    def reset(self, stream: int) -> None:
        """Restart ``stream``: its next frame is a key frame, on its own tick; the other streams are untouched."""
        state = self.streams[stream]
        state.scheduler.reset()
        state.key_frame = state.key_feat = None

    def __call__(self, images: Mapping[int, np.ndarray]) -> dict[int, FrameResult]:
        """One tick: labels for the next frame of each stream in ``images`` (stream index → uint8 H×W×3 BGR)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for j, image in images.items():
            check_image(image, f"stream {j}, frame {self.streams[j].frames}")
            groups.setdefault(self.backend.sizes.nearest(*image.shape[:2]), []).append(j)
        results: dict[int, FrameResult] = {}
        for size, members in groups.items():  # frames of different network sizes batch separately
            results.update(self._tick(size, members, images))
        return results

    def _tick(self, size: tuple[int, int], members: list[int], images: Mapping[int, np.ndarray]) -> dict[int, FrameResult]:
        backend, streams = self.backend, self.streams
        limit = backend.max_batch or len(members)
        if len(members) > limit:  # an engine's batch range: run the group in chunks
            out: dict[int, FrameResult] = {}
            for start in range(0, len(members), limit):
                out.update(self._tick(size, members[start : start + limit], images))
            return out
        watch = Stopwatch(self._synchronize)
        frames = dict(zip(members, backend.upload_batch([_resize(images[j], size) for j in members])))
        keys = [j for j in members if streams[j].scheduler.is_key(images[j])]  # line 6
        others = [j for j in members if j not in keys]
        watch.lap("preprocess")
        if self.fused:
            order, labels, promoted = self._paths(frames, keys, others, watch)
        else:
            order, labels, promoted = self._stages(frames, keys, others, watch)
        keys += promoted
        others = [j for j in others if j not in promoted]
        labels = [_to_frame(label, size, images[j].shape[:2]) for j, label in zip(order, backend.download_batch(labels))]
        watch.lap("postprocess")
        key_ms, other_ms = _shares(watch.stages_ms, len(keys), len(others), len(promoted))
        out = {}
        flowed = "propagate" if self.fused else "flow"
        for j, label in zip(order, labels):
            state = streams[j]
            stages = (key_ms | {flowed: other_ms[flowed]} if j in promoted else key_ms) if j in keys else other_ms
            timing = FrameTiming(index=state.frames, key=j in keys, stages_ms=stages)
            if isinstance(label, Detections):
                out[j] = FrameResult(labels=None, key=j in keys, timing=timing, detections=label)
            else:
                out[j] = FrameResult(labels=label, key=j in keys, timing=timing)
            state.frames += 1
        return out

    def _stages(self, frames: dict, keys: list[int], others: list[int], watch: Stopwatch) -> tuple[list[int], list, list[int]]:
        """Stage by stage: F for the non-key frames, N_feat for the key frames (promoted ones too), W, then N_task for
        all. Returns the streams in the order of their labels, the label handles and the promoted streams."""
        backend, streams = self.backend, self.streams
        promoted: list[int] = []
        if others:
            flows = dict(zip(others, backend.flow_batch([streams[j].key_frame for j in others], [frames[j] for j in others])))  # line 11
            watch.lap("flow")
            # An adaptive scheduler reads its stream's F statistics (16 bytes) and may still make the frame a key frame.
            promoted = [j for j in others if streams[j].scheduler.reads_flow and streams[j].scheduler.observe(backend.flow_statistics(flows[j]))]
            others = [j for j in others if j not in promoted]
        keys = keys + promoted
        feats = dict(zip(keys, backend.feature_batch([frames[j] for j in keys]))) if keys else {}  # line 8
        for j in keys:
            streams[j].key_frame, streams[j].key_feat = frames[j], feats[j]  # line 7: k = i
        watch.lap("feature")
        if others:
            feats.update(zip(others, backend.warp_batch([streams[j].key_feat for j in others], [flows[j] for j in others])))  # line 11
            watch.lap("warp")
        order = keys + others
        labels = backend.task_batch([feats[j] for j in order])  # lines 9 and 12
        watch.lap("task")
        return order, labels, promoted

    def _paths(self, frames: dict, keys: list[int], others: list[int], watch: Stopwatch) -> tuple[list[int], list, list[int]]:
        """The fused paths: F → W → N_task for the non-key frames in one call, then N_feat → N_task for the key frames
        (promoted ones too: their propagated labels are dropped, as in the one-stream runtime). Returns as :meth:`_stages`."""
        backend, streams = self.backend, self.streams
        promoted: list[int] = []
        labels: dict[int, object] = {}
        if others:
            reads_flow = any(streams[j].scheduler.reads_flow for j in others)
            found, statistics = backend.propagate_batch(
                [streams[j].key_frame for j in others], [streams[j].key_feat for j in others], [frames[j] for j in others],
                statistics=reads_flow,
            )  # lines 11-12
            watch.lap("propagate")
            labels.update(zip(others, found))
            promoted = [
                j for j, stats in zip(others, statistics) if streams[j].scheduler.reads_flow and streams[j].scheduler.observe(stats)
            ]
        keys = keys + promoted
        if keys:
            feats, found = backend.key_path_batch([frames[j] for j in keys])  # lines 8-9
            for j, feat in zip(keys, feats):
                streams[j].key_frame, streams[j].key_feat = frames[j], feat  # line 7: k = i
            labels.update(zip(keys, found))
            watch.lap("key_path")
        order = keys + [j for j in others if j not in promoted]
        return order, [labels[j] for j in order], promoted


def phased_schedulers(streams: int, interval: int, phase: Phase = "staggered") -> list[KeyFrameScheduler]:
    """One :class:`PhasedInterval` per stream with the phases of :func:`stream_phases`."""
    return [PhasedInterval(interval, p) for p in stream_phases(streams, interval, phase)]


#: The stages of a tick and who pays them: every frame, the key frames, the frames through F (non-key and promoted),
#: the frames propagated (non-key). Stage by stage: feature, flow, warp, task; fused: key_path, propagate.
_PAID_BY = {"preprocess": "every", "task": "every", "postprocess": "every", "feature": "keys", "key_path": "keys",
            "flow": "flowed", "propagate": "flowed", "warp": "others"}
_KEY_STAGES = ("preprocess", "feature", "key_path", "task", "postprocess")
_OTHER_STAGES = ("preprocess", "flow", "propagate", "warp", "task", "postprocess")


def _shares(stages_ms: dict[str, float], keys: int, others: int, promoted: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    """Per-frame shares of a tick's batched calls, for a key frame and for a non-key frame; ``promoted`` of the key
    frames went through F first (a frame's share of F is then in the non-key dict, also where no frame stayed non-key)."""
    count = {"every": keys + others, "keys": keys, "flowed": others + promoted, "others": others}
    share = {stage: ms / count[_PAID_BY[stage]] for stage, ms in stages_ms.items() if count[_PAID_BY[stage]]}
    key = {stage: share[stage] for stage in _KEY_STAGES if stage in share} if keys else {}
    other = {stage: share[stage] for stage in _OTHER_STAGES if stage in share} if others + promoted else {}
    return key, other


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == size:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)


def _to_frame(result: np.ndarray | Detections, network: tuple[int, int], frame: tuple[int, int]) -> np.ndarray | Detections:
    """Labels or a detection export's boxes, mapped from the network's size back onto the stream's frame."""
    return result.rescaled(network, frame) if isinstance(result, Detections) else _restore(result, frame)


def _restore(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if labels.shape == size:
        return labels
    return cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
