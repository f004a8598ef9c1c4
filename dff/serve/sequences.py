"""Deep feature flow for a server: streams keyed by sequence (correlation) id, started, ended and freed when idle.

A Triton model instance receives, per ``execute`` call, requests of different sequences; each sequence is one
video stream whose state (key frame and key features) lives between requests. Triton's Python backend has no
implicit state, so the model keeps it here, keyed by the correlation id, and runs each call's requests as one
tick of :class:`~dff.runtime.streams.MultiStreamRuntime` (one batched call per stage).

A START request (re)starts its sequence with a key frame; END frees it after its frame; a sequence that sent
nothing for ``idle_timeout_s`` is freed (Triton frees its own slot after the same time, without telling the
model). A non-START request for a sequence the model does not hold is refused with :class:`UnknownSequence`:
the client must restart the sequence (START, so a key frame).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from dff.errors import DFFError
from dff.runtime.backend import Backend
from dff.runtime.runtime import FrameResult
from dff.runtime.scheduler import FixedInterval
from dff.runtime.streams import MultiStreamRuntime, StreamState
from dff.sources import check_image


_ORT_ITEM_BYTES = {"float": 4, "float16": 2, "double": 8, "uint8": 1, "int8": 1, "int32": 4, "int64": 8, "bool": 1}


def handle_bytes(handle: object) -> int:
    """Memory of a backend handle: numpy and torch arrays (``nbytes``), OpenVINO tensors (``byte_size``), ONNX Runtime
    OrtValues (shape × element size), tuples of these; 0 for None."""
    if handle is None:
        return 0
    if isinstance(handle, (tuple, list)):
        return sum(handle_bytes(item) for item in handle)
    for attribute in ("nbytes", "byte_size"):
        if isinstance(getattr(handle, attribute, None), int):
            return getattr(handle, attribute)
    if callable(getattr(handle, "shape", None)) and callable(getattr(handle, "data_type", None)):  # OrtValue
        element = handle.data_type().removeprefix("tensor(").removesuffix(")")
        return int(np.prod(handle.shape())) * _ORT_ITEM_BYTES[element]
    raise TypeError(f"cannot tell the size of a {type(handle).__name__} handle")


class UnknownSequence(DFFError):
    """A request without START for a sequence the model does not hold (never started, ended, freed when idle)."""


@dataclass(frozen=True)
class SequenceFrame:
    """One request: the sequence's next frame (uint8 H×W×3 BGR) and its START/END flags."""

    image: np.ndarray
    start: bool = False
    end: bool = False


class SequenceRuntime(MultiStreamRuntime):
    """Streams by correlation id over one backend, each with a key frame every ``interval`` frames from its START."""

    def __init__(
        self, *, backend: Backend, interval: int, idle_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(backend=backend, schedulers=[])
        FixedInterval(interval)  # checks the interval now rather than on the first START
        self.interval = interval
        self.idle_timeout_s = idle_timeout_s
        self.streams: dict[int, StreamState] = {}  # type: ignore[assignment]  # keyed by correlation id
        self._clock = clock
        self._last_seen: dict[int, float] = {}
        self._lock = threading.Lock()  # execute and the idle sweeper run on different threads
        #: Counters for the server's operators and the tests: calls, requests, the largest batch, sequences freed.
        self.calls = self.requests = self.largest_batch = self.freed_idle = 0

    def step(self, requests: Mapping[int, SequenceFrame]) -> dict[int, FrameResult | DFFError]:
        """One ``execute`` call: each sequence's result, or the error that refused its request alone."""
        with self._lock:
            now = self._clock()
            self._free_idle(now)
            self.calls += 1
            self.requests += len(requests)
            self.largest_batch = max(self.largest_batch, len(requests))
            results: dict[int, FrameResult | DFFError] = {}
            images: dict[int, np.ndarray] = {}
            for sequence, request in requests.items():
                try:
                    check_image(request.image, f"sequence {sequence}")
                except DFFError as error:
                    results[sequence] = error
                    continue
                if request.start:
                    self.streams[sequence] = StreamState(FixedInterval(self.interval))
                elif sequence not in self.streams:
                    results[sequence] = UnknownSequence(
                        f"sequence {sequence} is not held by the model (never started, ended, or freed after "
                        f"{self.idle_timeout_s:g} s idle): restart it with the START flag (a key frame)"
                    )
                    continue
                images[sequence] = request.image
                self._last_seen[sequence] = now
            if images:
                results.update(self(images))
            for sequence, request in requests.items():
                if request.end:
                    self._free(sequence)
            return results

    def free_idle(self) -> int:
        """Free the sequences idle for longer than the timeout; how many were freed."""
        with self._lock:
            return self._free_idle(self._clock())

    @property
    def held(self) -> int:
        """Sequences whose state the model holds."""
        return len(self.streams)

    def state_bytes(self) -> int:
        """Bytes of the state held for all sequences: key frames and key features (the latter dominate)."""
        return sum(handle_bytes(s.key_frame) + handle_bytes(s.key_feat) for s in self.streams.values())

    def _free_idle(self, now: float) -> int:
        idle = [s for s, seen in self._last_seen.items() if now - seen > self.idle_timeout_s]
        for sequence in idle:
            self._free(sequence)
        self.freed_idle += len(idle)
        return len(idle)

    def _free(self, sequence: int) -> None:
        self.streams.pop(sequence, None)
        self._last_seen.pop(sequence, None)
