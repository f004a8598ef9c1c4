"""The decoding side of the pipelined driver: one thread per source, a bounded queue per stream.

A file or a folder of frames is read with back-pressure: when the queue is full the decoding thread
waits, so no frame is lost. A live source (a camera, a URL OpenCV opens) cannot wait: when inference
falls behind, the oldest frame in its queue is dropped for the newest one and counted, so a queue
never grows and the labels stay close to the present. OpenCV releases the GIL while it decodes, so
the threads decode while the inference thread computes.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2

from dff.errors import VideoError
from dff.sources import Camera, Frame, FrameSource, _Capture, open_source

#: Queue depth of a file or folder: a few frames decoded ahead of inference are enough to hide decoding.
FILE_QUEUE_DEPTH = 4
#: A live source keeps only its newest frame.
LIVE_QUEUE_DEPTH = 1
#: How often a waiting thread looks whether the run was stopped (seconds).
POLL_S = 0.05


@dataclass(frozen=True)
class Arrival:
    """A decoded frame and when it was read (``perf_counter``), for the latency from frame read to labels."""

    frame: Frame
    read_at: float


@dataclass(frozen=True)
class End:
    """The end of a stream: ``reason`` is None for a source that ended as it should, else what went wrong."""

    reason: str | None


class StreamURL(_Capture):
    """A network stream (``rtsp://``, ``http://``, ...) that OpenCV opens; live, of unknown length."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._opened = self._open()
        fps = self._opened.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps > 0 else None

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.url)
        if not capture.isOpened():
            raise VideoError(f"cannot open stream {self.url}: unreachable, or a protocol or codec this OpenCV build lacks")
        return capture

    def __str__(self) -> str:
        return f"stream {self.url}"


def is_url(spec: str) -> bool:
    return re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", spec) is not None


def open_stream_source(spec: str) -> tuple[FrameSource, bool]:
    """The source ``spec`` names and whether it is live: a URL or a camera index (live), a video file or a frame folder."""
    if is_url(spec):
        return StreamURL(spec), True
    source = open_source(spec)
    return source, isinstance(source, (Camera, StreamURL))


def stream_name(spec: str) -> str:
    """A file-system-safe name for a source: a file's stem, a folder's name, ``camera0``, a URL's host and last part."""
    if is_url(spec):
        rest = spec.split("://", 1)[1].split("?", 1)[0]
        parts = [p for p in rest.split("/") if p]
        raw = "-".join(parts[:1] + parts[-1:] if len(parts) > 1 else parts)
    elif spec.isdigit():
        raw = f"camera{spec}"
    else:
        path = Path(spec)
        raw = path.name if path.is_dir() else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw).strip("._") or "stream"


def stream_names(specs: list[str]) -> list[str]:
    """:func:`stream_name` of each source, made unique: names that repeat take their parent folder's name in front
    (``cam1/images``, ``cam2/images`` → ``cam1-images``, ``cam2-images``); what still repeats gets ``-2``, ``-3``, ..."""
    first = [stream_name(spec) for spec in specs]
    names = []
    for spec, name in zip(specs, first):
        parent = "" if is_url(spec) or spec.isdigit() else stream_name(str(Path(spec).absolute().parent))
        names.append(f"{parent}-{name}" if first.count(name) > 1 and parent not in ("", "stream") else name)
    unique: list[str] = []
    for base in names:
        name, count = base, 1
        while name in unique:
            count += 1
            name = f"{base}-{count}"
        unique.append(name)
    return unique


class Decoder:
    """Decodes ``source`` on its own thread into a bounded queue; :meth:`next` takes from it in the inference thread.

    ``live``: drop the oldest queued frame for the newest when the queue is full (counted in ``dropped``);
    otherwise wait for room (no frame lost). ``arrived`` is set after every frame, so that a consumer of
    several live sources can wait for the first of them.
    """

    def __init__(self, source: FrameSource, *, name: str, live: bool, arrived: threading.Event, depth: int | None = None) -> None:
        self.source = source
        self.name = name
        self.live = live
        self.dropped = 0
        self._queue: queue.Queue[Arrival | End] = queue.Queue(depth or (LIVE_QUEUE_DEPTH if live else FILE_QUEUE_DEPTH))
        self._arrived = arrived
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._decode, name=f"decode {name}", daemon=True)

    def start(self) -> Decoder:
        self._thread.start()
        return self

    def next(self, *, wait: bool) -> Arrival | End | None:
        """The next frame or the end; None where ``wait`` is False and nothing is queued. Waiting polls, so Ctrl-C and
        SIGTERM reach the caller."""
        while True:
            try:
                return self._queue.get(timeout=POLL_S) if wait else self._queue.get_nowait()
            except queue.Empty:
                if not wait:
                    return None

    def stop(self) -> None:
        """Ask the thread to stop and wait briefly for it (a camera read may take a frame's time)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _decode(self) -> None:
        reason: str | None = None
        last = -1
        try:
            with closing(iter(self.source)) as frames:  # closing() releases the capture when stopped early
                for frame in frames:
                    if self._stop.is_set():
                        return
                    self._put(Arrival(frame, time.perf_counter()))
                    last = frame.index
            if getattr(self.source, "ended_early", False):
                reason = (
                    f"the video ended after frame {last + 1} of the {self.source.length} its container announced "
                    "(a truncated or damaged file, or a wrong count)"
                )
            elif self.live and not self._stop.is_set():
                reason = "the live source stopped delivering frames (camera gone or stream closed)"
        except Exception as error:  # noqa: BLE001 - a failing source ends its own stream; the run reports why
            reason = f"{type(error).__name__}: {error}" if not isinstance(error, VideoError) else str(error)
        self._wait_put(End(reason))

    def _put(self, item: Arrival) -> None:
        if not self.live:
            self._wait_put(item)
            return
        while True:  # only this thread puts, so room made here stays free for the put
            try:
                self._queue.put_nowait(item)
                break
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
        self._arrived.set()

    def _wait_put(self, item: Arrival | End) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                self._arrived.set()
                return
            except queue.Full:
                continue
