"""The writing side of the pipelined driver: one thread per stream draws the overlay, encodes it and writes the
label PNGs and the timing log (:class:`~dff.runtime.outputs.RunOutputs`), fed by a bounded queue.

OpenCV releases the GIL while it blends, encodes and compresses, so writing overlaps inference. The
queue is bounded: when a writer falls behind, the inference thread waits for it (files) rather than
holding frames without limit. A failed write is kept and raised in the inference thread at the next
frame, naming the stream; the run then stops and every unfinished file is removed.
"""

from __future__ import annotations

import queue
import threading

from dff.errors import OutputError
from dff.runtime.outputs import RunOutputs
from dff.runtime.pipeline_inputs import POLL_S
from dff.runtime.runtime import FrameResult
from dff.sources import Frame

#: Frames a writer may lag behind inference.
WRITER_QUEUE_DEPTH = 8


class Writer:
    """Writes one stream's outputs on its own thread. :meth:`close` commits them, :meth:`abort` removes them."""

    def __init__(self, outputs: RunOutputs, *, name: str, depth: int = WRITER_QUEUE_DEPTH) -> None:
        self.outputs = outputs
        self.name = name
        self.written = 0
        self.error: BaseException | None = None
        self._queue: queue.Queue[tuple[Frame, FrameResult] | None] = queue.Queue(depth)
        self._thread = threading.Thread(target=self._write, name=f"write {name}", daemon=True)
        self._thread.start()

    def put(self, frame: Frame, result: FrameResult) -> None:
        """Queue a frame's outputs (waits while the queue is full); raises the error of an earlier failed write."""
        self._check()
        while True:
            try:
                self._queue.put((frame, result), timeout=POLL_S)
                return
            except queue.Full:
                self._check()

    def close(self) -> None:
        """Write what is queued, then finish the files and move them into place."""
        self._finish()
        self._check()
        if self.written:
            self.outputs.close()
        else:  # a stream that never produced a frame has nothing to save
            self.outputs.abort()

    def abort(self) -> None:
        """Stop writing and remove the unfinished files; the targets are left as they were."""
        self.error = self.error or _Aborted()
        self._finish()
        self.outputs.abort()

    def _finish(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()

    def _check(self) -> None:
        if self.error is not None and not isinstance(self.error, _Aborted):
            error = self.error
            raise OutputError(f"stream {self.name}: {error}") from None

    def _write(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is not None:
                continue  # drain: after a failure or an abort nothing more is written
            try:
                self.outputs.write(*item)
                self.written += 1
            except Exception as error:  # noqa: BLE001 - raised in the inference thread by _check
                self.error = error


class _Aborted(Exception):
    """Marks a writer that was told to stop: what is still queued is dropped."""
