"""Key-frame scheduling: Algorithm 1, line 6, ``is_key_frame(i)``.

The paper uses a fixed key-frame duration l (Section 3, "Key Frame Scheduling") and leaves
adaptive schedules to future work; a scheduler here sees each frame, so an adaptive one can
subclass :class:`KeyFrameScheduler` and decide from the image, and, with ``reads_flow``, from F's
statistics after F (:class:`dff.runtime.adaptive.AdaptiveInterval`).

Whatever the policy, three frames are always key frames: the first one, the first after
:meth:`KeyFrameScheduler.reset`, and one whose size differs from the frame before it (features
of another size cannot be propagated to it).
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from dff.runtime.adaptive_signals import FlowStatistics


class KeyFrameScheduler(ABC):
    """Decides, frame by frame in order, which frames are key frames."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next frame is a key frame."""
        self._size: tuple[int, ...] | None = None
        #: Frames since the last key frame (0 on a key frame).
        self.since_key = 0

    def is_key(self, image: np.ndarray) -> bool:
        """Whether ``image``, the next frame of the stream, is a key frame. Call once per frame."""
        size = image.shape[:2]
        key = size != self._size or self.choose(image)
        self._size = size
        self.since_key = 0 if key else self.since_key + 1
        return key

    @abstractmethod
    def choose(self, image: np.ndarray) -> bool:
        """The policy, for frames the rules above leave open; ``since_key`` counts the frames since the last key frame."""

    #: True where the policy reads F's statistics: the runtime then passes them to :meth:`observe` after F.
    reads_flow: ClassVar[bool] = False

    def observe(self, statistics: FlowStatistics | None) -> bool:
        """F's statistics on the non-key frame just decided (None where the export has none); True promotes that
        frame to a key frame after all (F was then paid for nothing). Only called where ``reads_flow``."""
        promoted = self.promote(statistics)
        if promoted:
            self.since_key = 0
        return promoted

    def promote(self, statistics: FlowStatistics | None) -> bool:
        """The policy after F; never promotes unless a subclass says otherwise."""
        return False


class FixedInterval(KeyFrameScheduler):
    """One key frame every ``interval`` frames, l in the paper (Eq. 7); ``interval=1`` is per-frame evaluation."""

    def __init__(self, interval: int) -> None:
        # Any integer type (numpy's too, as from a config array), but not a bool: True would read as l = 1.
        if not (isinstance(interval, numbers.Integral) and not isinstance(interval, bool) and interval >= 1):
            raise ValueError(f"key-frame interval must be an integer >= 1, got {interval!r}")
        self.interval = int(interval)
        super().__init__()

    def choose(self, image: np.ndarray) -> bool:
        return self.since_key + 1 >= self.interval

    def __repr__(self) -> str:
        return f"FixedInterval({self.interval})"
