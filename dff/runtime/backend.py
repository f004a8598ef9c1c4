"""The backend interface: the five operations Algorithm 1 asks of an inference engine, one frame or a batch.

A backend runs the three networks of the paper and the propagation W on one device. The
runtimes (:mod:`dff.runtime.runtime` for one stream, :mod:`dff.runtime.streams` for many) decide
which of them to call for each frame; the backend only executes. Torch-free: this module imports
numpy only.

Data and device memory
----------------------
Every method but :meth:`Backend.download` returns an opaque *handle* to a tensor on the
backend's device (an ``OrtValue``, a ``torch.Tensor``, a TensorRT device buffer, ...). The
caller never looks inside a handle; it passes it back to the same backend.

* A returned handle **owns** its device memory for as long as the caller holds a reference to
  it. The runtime keeps the key frame and the key features across many frames, and several
  streams may share one backend, so a backend must never write into memory that a handle still
  alive outside it refers to. A backend may pool memory and recycle the memory of handles the
  caller has dropped.
* Arguments are **borrowed**: a method reads its handle arguments and keeps no reference to them
  after it returns. Work may still be in flight on an asynchronous device when a method returns;
  a backend enqueues all work in call order on one stream, so memory recycled from a dropped
  handle is only written after the work that read it.
* ``upload`` copies the host image: the caller may overwrite or free it as soon as ``upload``
  returns. ``download`` waits for the labels and returns a new host array the caller owns.

Batches: many streams, one call per stage
-----------------------------------------
Each single-frame method has a batched twin (``upload_batch``, ``feature_batch``, ``flow_batch``,
``warp_batch``, ``task_batch``, ``download_batch``) that takes a sequence of per-frame arguments and
returns a list of **per-frame handles**, one per item, in order. Handles are interchangeable:
a handle from a batched call may go to a single-frame call and the other way round, so a stream's
state (its key frame and key features) is always per-stream handles, whichever call made them.

* All items of one batched call have the same frame size (the runtime batches sizes apart) and
  there is at least one item; ``max_batch`` (None: any number) bounds the count.
* A per-frame handle from a batched call may be a *view* into the batch's device tensor (a slice of
  an ``OrtValue``'s memory, of a ``torch.Tensor``, of a device buffer). It keeps that memory alive
  and owns its part of it as above; the batch's memory is freed when its last view is dropped.
  So the key features of one stream may hold a whole batch's features until that stream's next
  key frame: memory per stream stays bounded (one batch per stream at most), never grows.
* Stacking per-frame handles into a batch (gathering the key frames and key features of the
  streams that share a tick) happens **on the device**: per-stream state is never copied to the
  host and back. Only ``download``/``download_batch`` cross to the host, with the labels.
* Results must equal the single-frame methods' item by item, to the precision of the engine
  (batched convolutions may pick other kernels: where they are not bit-exact, a backend says so).
* The default implementations here loop over the single-frame methods, so every backend is
  batched-correct without writing a line; ``native_batching`` tells which backends override them
  with one engine call per batch.

Paths: one call per frame where the engine can
-----------------------------------------------
:meth:`Backend.key_path` (lines 8-9: N_feat, then N_task) and :meth:`Backend.propagate` (lines 11-12: F, W,
N_task) are what the one-stream runtime calls. Their default implementations compose the stage methods,
so every backend runs them; ONNX Runtime and OpenVINO override them with the export's fused graphs
(``key_path.onnx``, ``propagate.onnx``: one engine call a frame instead of two or three) where the export
has them. Each takes ``lap``, called with a stage's name when it ends, for the runtime's timing: the
defaults report ``feature``, ``task`` and ``flow``, ``warp``, ``task``; a fused call reports itself once
as ``key_path`` or ``propagate``. ``fused_paths`` tells whether a backend runs them as fused calls.

Their batched twins :meth:`Backend.key_path_batch` and :meth:`Backend.propagate_batch` are what the multi-stream
runtime calls on a backend with ``fused_paths``: one engine call per path per tick (ONNX Runtime: the fused graphs
over the stacked frames); the defaults loop over the one-frame paths (OpenVINO's fused calls) or, on a natively
batching backend, compose the batched stages.

Preprocessing lives in the models (see :mod:`dff.manifest`): frames go to the device as uint8
BGR, exactly as OpenCV decodes them, and labels come back as uint8 class indices at frame size.
The host only resizes frames to an allowed size (``sizes``) before ``upload``.

Threads: a backend may be shared by runtimes on several threads. Every method must be safe to
call concurrently (each backend documents how: per-thread I/O bindings, a lock, ...).

Adding a backend adds one module to :mod:`dff.runtime.backends` that defines a subclass and
names it ``BACKEND``; nothing else is edited (see :func:`dff.runtime.backends.open_backend`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeAlias

import numpy as np

from dff.manifest import SizeRange
from dff.runtime.adaptive_signals import FlowStatistics

#: A frame on the device in the form the backend's feature and flow networks take it: for the exported
#: graphs uint8 (1, H, W, 3) BGR; a backend may normalise here instead (that is then part of ``upload``).
FrameHandle: TypeAlias = Any
#: float (1, C, H/16, W/16) features f on the device (float32, or float16 for half-precision backends).
FeatureHandle: TypeAlias = Any
#: The flow field M (1, 2, H/16, W/16), in feature-map pixels, and the scale field S (1, C, H/16, W/16),
#: on the device, as one handle (F computes them together), with their statistics where the export has them.
FlowHandle: TypeAlias = Any
#: uint8 (1, H, W) per-pixel class indices on the device.
LabelHandle: TypeAlias = Any
#: Called with a stage's name when the stage ends (the runtime's stopwatch); see "Paths" above.
Lap: TypeAlias = Callable[[str], None]


def no_lap(stage: str) -> None:
    """The :data:`Lap` of a caller that does not time."""


class Backend(ABC):
    """An inference engine for the networks of one model. Subclasses take keyword-only options."""

    #: The name the registry knows the backend by (its module's name in :mod:`dff.runtime.backends`).
    name: ClassVar[str]
    #: True where calls return before the device has finished (CUDA streams): timing a stage then
    #: needs :meth:`synchronize` after it. False where every call blocks until its result is ready.
    asynchronous: bool = False
    #: Frame sizes (H, W) the models accept; the runtime resizes frames to ``sizes.nearest(...)``.
    sizes: SizeRange
    #: One name per class index the labels take.
    class_names: tuple[str, ...]
    #: What ``download`` returns: ``segmentation`` labels, or ``detection`` :class:`~dff.runtime.detections.Detections`.
    task_kind: str = "segmentation"
    #: True where the ``*_batch`` methods run one engine call per batch; False where they are the default loops.
    native_batching: ClassVar[bool] = False
    #: The most frames one batched call takes (an engine profile's batch range); None: any number.
    max_batch: int | None = None
    #: True where :meth:`key_path` and :meth:`propagate` run as one engine call each (the export's fused graphs).
    fused_paths: bool = False

    @abstractmethod
    def upload(self, image: np.ndarray) -> FrameHandle:
        """Copy a host frame to the device.

        ``image``: uint8 (H, W, 3) BGR, C-contiguous, with (H, W) allowed by ``sizes``.
        Returns a :data:`FrameHandle`: the frame as the feature and flow networks take it.
        """

    @abstractmethod
    def feature(self, frame: FrameHandle) -> FeatureHandle:
        """f = N_feat(I) (Algorithm 1, line 8): the features (1, C, H/16, W/16) of an uploaded frame."""

    @abstractmethod
    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        """(M, S) = F(I_k, I_i) (Algorithm 1, line 11): flow and scale fields from the key frame to ``frame``.

        Both frames are handles from :meth:`upload` of the same size.
        """

    def flow_statistics(self, flow: FlowHandle) -> FlowStatistics | None:
        """The four statistics of a :meth:`flow` result for adaptive key frames (16 bytes copied to the host; the
        fields stay on the device), or None where the model has none (``flow.onnx`` of exports made before them)."""
        return None

    @abstractmethod
    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        """f_i = W(f_k, M, S) (Eq. 3): the key features propagated to the current frame, same shape as ``key_feat``."""

    @abstractmethod
    def task(self, feat: FeatureHandle) -> LabelHandle:
        """y = N_task(f) (Algorithm 1, lines 9 and 12): uint8 labels (1, H, W) at frame size (16 × the feature grid)."""

    @abstractmethod
    def download(self, labels: LabelHandle) -> np.ndarray:
        """Wait for ``labels`` and copy them to the host: a new uint8 (H, W) array of class indices."""

    # Paths: the defaults compose the stages; a backend with fused graphs runs each in one call (see "Paths").

    def key_path(self, frame: FrameHandle, lap: Lap = no_lap) -> tuple[FeatureHandle, LabelHandle]:
        """(f_k, y_k) = (N_feat(I_k), N_task(f_k)) (Algorithm 1, lines 8-9): the key features, kept for the frames
        after, and the key frame's labels."""
        feat = self.feature(frame)
        lap("feature")
        labels = self.task(feat)
        lap("task")
        return feat, labels

    def propagate(
        self,
        key_frame: FrameHandle,
        key_feat: FeatureHandle,
        frame: FrameHandle,
        lap: Lap = no_lap,
        *,
        statistics: bool = False,
    ) -> tuple[LabelHandle, FlowStatistics | None]:
        """y_i = N_task(W(f_k, F(I_k, I_i))) (lines 11-12) and, with ``statistics``, F's statistics (None without,
        or where the export has none: copying them to the host waits for F, which an asynchronous device should not).

        An adaptive scheduler reads the statistics afterwards and may promote the frame to a key frame; its labels
        are then dropped (W and N_task were paid with F, one call on a fused backend)."""
        flow = self.flow(key_frame, frame)
        lap("flow")
        feat = self.warp(key_feat, flow)
        lap("warp")
        labels = self.task(feat)
        lap("task")
        return labels, self.flow_statistics(flow) if statistics else None

    # Batches: one call per stage for the frames of many streams (see "Batches" above). The defaults loop.

    def upload_batch(self, images: Sequence[np.ndarray]) -> list[FrameHandle]:
        """:meth:`upload` for frames of one size: one handle per image, in order."""
        return [self.upload(image) for image in images]

    def feature_batch(self, frames: Sequence[FrameHandle]) -> list[FeatureHandle]:
        """:meth:`feature` for a batch: the key frames of the streams whose tick is a key frame (Algorithm 1, line 8)."""
        return [self.feature(frame) for frame in frames]

    def flow_batch(self, key_frames: Sequence[FrameHandle], frames: Sequence[FrameHandle]) -> list[FlowHandle]:
        """:meth:`flow` for a batch: ``key_frames[n]`` is the key frame of the stream ``frames[n]`` belongs to (line 11)."""
        return [self.flow(key_frame, frame) for key_frame, frame in zip(key_frames, frames, strict=True)]

    def warp_batch(self, key_feats: Sequence[FeatureHandle], flows: Sequence[FlowHandle]) -> list[FeatureHandle]:
        """:meth:`warp` for a batch: ``key_feats[n]`` propagated by ``flows[n]`` (Eq. 3)."""
        return [self.warp(key_feat, flow) for key_feat, flow in zip(key_feats, flows, strict=True)]

    def task_batch(self, feats: Sequence[FeatureHandle]) -> list[LabelHandle]:
        """:meth:`task` for a batch: key and propagated features of one size together (lines 9 and 12)."""
        return [self.task(feat) for feat in feats]

    def download_batch(self, labels: Sequence[LabelHandle]) -> list[np.ndarray]:
        """:meth:`download` for a batch: one new uint8 (H, W) host array per handle."""
        return [self.download(label) for label in labels]

    def key_path_batch(self, frames: Sequence[FrameHandle]) -> tuple[list[FeatureHandle], list[LabelHandle]]:
        """:meth:`key_path` for a batch: the key features and the labels of the streams whose tick is a key frame."""
        if not self.native_batching:
            pairs = [self.key_path(frame) for frame in frames]
            return [feat for feat, _ in pairs], [labels for _, labels in pairs]
        feats = self.feature_batch(frames)
        return feats, self.task_batch(feats)

    def propagate_batch(
        self,
        key_frames: Sequence[FrameHandle],
        key_feats: Sequence[FeatureHandle],
        frames: Sequence[FrameHandle],
        *,
        statistics: bool = False,
    ) -> tuple[list[LabelHandle], list[FlowStatistics | None]]:
        """:meth:`propagate` for a batch: ``frames[n]`` propagated from its stream's ``key_frames[n]`` and ``key_feats[n]``;
        the labels and, with ``statistics``, each frame's F statistics."""
        if not self.native_batching:
            pairs = [self.propagate(k, f, frame, statistics=statistics) for k, f, frame in zip(key_frames, key_feats, frames, strict=True)]
            return [labels for labels, _ in pairs], [found for _, found in pairs]
        flows = self.flow_batch(key_frames, frames)
        labels = self.task_batch(self.warp_batch(key_feats, flows))
        return labels, [self.flow_statistics(flow) if statistics else None for flow in flows]

    def synchronize(self) -> None:
        """Block until all work enqueued so far has finished. Only timing needs it; a no-op on synchronous backends."""

    def close(self) -> None:
        """Release sessions, engines and device memory. The backend is unusable afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
