"""The backend interface: the five operations Algorithm 1 asks of an inference engine.

A backend runs the three networks of the paper and the propagation W on one device. The
runtime (:mod:`dff.runtime.runtime`) decides which of them to call for each frame; the backend
only executes. One frame at a time (batch 1). Torch-free: this module imports numpy only.

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

Preprocessing lives in the models (see :mod:`dff.manifest`): frames go to the device as uint8
BGR, exactly as OpenCV decodes them, and labels come back as uint8 class indices at frame size.
The host only resizes frames to an allowed size (``sizes``) before ``upload``.

Adding a backend adds one module to :mod:`dff.runtime.backends` that defines a subclass and
names it ``BACKEND``; nothing else is edited (see :func:`dff.runtime.backends.open_backend`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, TypeAlias

import numpy as np

from dff.manifest import SizeRange

#: A frame on the device in the form the backend's feature and flow networks take it: for the exported
#: graphs uint8 (1, H, W, 3) BGR; a backend may normalise here instead (that is then part of ``upload``).
FrameHandle: TypeAlias = Any
#: float (1, C, H/16, W/16) features f on the device (float32, or float16 for half-precision backends).
FeatureHandle: TypeAlias = Any
#: The flow field M (1, 2, H/16, W/16), in feature-map pixels, and the scale field S (1, C, H/16, W/16),
#: on the device, as one handle (F computes them together).
FlowHandle: TypeAlias = Any
#: uint8 (1, H, W) per-pixel class indices on the device.
LabelHandle: TypeAlias = Any


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

    @abstractmethod
    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        """f_i = W(f_k, M, S) (Eq. 3): the key features propagated to the current frame, same shape as ``key_feat``."""

    @abstractmethod
    def task(self, feat: FeatureHandle) -> LabelHandle:
        """y = N_task(f) (Algorithm 1, lines 9 and 12): uint8 labels (1, H, W) at frame size (16 × the feature grid)."""

    @abstractmethod
    def download(self, labels: LabelHandle) -> np.ndarray:
        """Wait for ``labels`` and copy them to the host: a new uint8 (H, W) array of class indices."""

    def synchronize(self) -> None:
        """Block until all work enqueued so far has finished. Only timing needs it; a no-op on synchronous backends."""

    def close(self) -> None:
        """Release sessions, engines and device memory. The backend is unusable afterwards."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()
