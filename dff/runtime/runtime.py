"""Algorithm 1 of the paper: deep feature flow inference on one video stream, over any backend.

Per frame: resize to an allowed size and upload (preprocess); on a key frame, f_k = N_feat(I_k) and
y_k = N_task(f_k) (the backend's key path); otherwise y_i = N_task(W(f_k, F(I_k, I_i))) (its propagation),
each one engine call where the backend has fused graphs; then the labels are downloaded and resized
back to the frame's own size (postprocess). The stream's state is the key frame, as the flow network takes
it, and the key features, both left on the backend's device.

One runtime is one stream; streams can share a backend (handles own their memory).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dff.runtime.backend import Backend, FeatureHandle, FrameHandle
from dff.runtime.detections import Detections
from dff.runtime.scheduler import KeyFrameScheduler
from dff.runtime.timing import FrameTiming, Stopwatch
from dff.sources import check_image


@dataclass(frozen=True)
class FrameResult:
    """One frame's result at the frame's own size, its path and its timing: ``labels`` (uint8 H×W class indices)
    from a segmentation export, ``detections`` from a detection export; the other is None."""

    labels: np.ndarray | None
    key: bool
    timing: FrameTiming
    detections: Detections | None = None


class DeepFeatureFlowRuntime:
    """Runs a backend per Algorithm 1 with key frames chosen by ``scheduler``.

    ``sync_timing`` synchronises an asynchronous device after every stage so the per-stage times
    are the device's; it slows the pipeline, so it is off by default (the frame totals are right
    either way: postprocess waits for the labels).
    """

    def __init__(self, *, backend: Backend, scheduler: KeyFrameScheduler, sync_timing: bool = False) -> None:
        self.backend = backend
        self.scheduler = scheduler
        self._synchronize = backend.synchronize if (sync_timing and backend.asynchronous) else None
        self.reset()

    def reset(self) -> None:
        """Start a new stream: drop the key frame and features; the next frame is a key frame."""
        self.scheduler.reset()
        self.key_frame: FrameHandle | None = None
        self.key_feat: FeatureHandle | None = None
        self.frames = 0

    def __call__(self, image: np.ndarray) -> FrameResult:
        """Labels for ``image``, the stream's next frame: uint8 H×W×3 BGR of any size."""
        check_image(image, f"frame {self.frames}")
        watch = Stopwatch(self._synchronize)
        frame = self.backend.upload(self._resize(image))
        watch.lap("preprocess")
        key = self.scheduler.is_key(image)  # line 6
        if not key:
            # lines 11-12: y_i = N_task(W(f_k, F(I_k, I_i))), with F's statistics (16 bytes)
            reads_flow = self.scheduler.reads_flow
            labels, statistics = self.backend.propagate(self.key_frame, self.key_feat, frame, watch.lap, statistics=reads_flow)
            # An adaptive scheduler reads them and may still make this a key frame.
            key = reads_flow and self.scheduler.observe(statistics)
        if key:
            self.key_frame = frame  # line 7: k = i
            self.key_feat, labels = self.backend.key_path(frame, watch.lap)  # lines 8-9: f_k = N_feat(I_k), y_k = N_task(f_k)
        output = self.backend.download(labels)
        if isinstance(output, Detections):
            labels, detections = None, output.rescaled(self.network_size(*image.shape[:2]), image.shape[:2])
        else:
            labels, detections = self._restore(output, image.shape[:2]), None
        watch.lap("postprocess")
        timing = FrameTiming(index=self.frames, key=key, stages_ms=watch.stages_ms)
        self.frames += 1
        return FrameResult(labels=labels, key=key, timing=timing, detections=detections)

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """The size (H, W) frames of ``height`` × ``width`` are resized to before inference."""
        return self.backend.sizes.nearest(height, width)

    def warmup(self, height: int, width: int) -> None:
        """Run every stage once at the network size for frames of ``height`` × ``width`` (first runs allocate and
        tune), so that timings measure the steady state. The stream's state is untouched."""
        frame = self.backend.upload(np.zeros((*self.network_size(height, width), 3), np.uint8))
        feat, labels = self.backend.key_path(frame)
        self.backend.download(labels)
        self.backend.download(self.backend.propagate(frame, feat, frame, statistics=self.scheduler.reads_flow)[0])

    def _resize(self, image: np.ndarray) -> np.ndarray:
        height, width = self.network_size(*image.shape[:2])
        if (height, width) == image.shape[:2]:
            return np.ascontiguousarray(image)
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)

    @staticmethod
    def _restore(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if labels.shape == size:
            return labels
        return cv2.resize(labels, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
