"""A client of the served model over gRPC: one video stream is one Triton sequence.

    with StreamClient("127.0.0.1:8001") as stream:
        for image in frames:                      # uint8 H×W×3 BGR
            labels = stream.send(image).labels    # uint8 H×W class ids

The first frame starts the sequence (START: a key frame), :meth:`StreamClient.close` ends it (END). A lost
sequence (freed by the server after its idle timeout, or a server restart) is restarted on the same frame with
START, so a key frame, and counted in ``restarts``: no frame is dropped.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from dff.errors import DFFError
from dff.serve.repository import BATCH, FRAME, HELD, KEY, LABELS, STATE
from dff.sources import Frame


#: Sent with every request, so that a load balancer in front of many servers can keep a stream on one server by
#: hashing it (the sequence id itself travels inside the gRPC message, where balancers do not look).
SEQUENCE_HEADER = "dff-sequence-id"


class ServeError(DFFError):
    """The server refused a request, or cannot be reached."""


@dataclass(frozen=True)
class ServedModel:
    """What a client needs to know of a served model, read from its configuration on the server."""

    name: str
    interval: int
    class_names: tuple[str, ...]


@dataclass(frozen=True)
class ServedFrame:
    """One frame's answer: labels at the frame's size, key frame or not, the size of the server's batch it ran in,
    the sequences the serving instance held and the bytes of their state, the round trip, and whether its sequence
    was restarted for it."""

    labels: np.ndarray
    key: bool
    batch: int
    held: int
    state_bytes: int
    latency_ms: float
    restarted: bool


def _grpc():
    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError:
        raise ServeError("tritonclient is not installed: pip install 'deep-feature-flow[serve]'") from None
    return grpcclient, InferenceServerException


def _lost(error: Exception) -> bool:
    """A sequence the server no longer holds: Triton's own refusal, or the model's (both INVALID_ARGUMENT, 'START')."""
    return "INVALID_ARGUMENT" in str(getattr(error, "status", lambda: "")()) and "START" in str(error)


def _unreachable(error: Exception) -> bool:
    return "UNAVAILABLE" in str(getattr(error, "status", lambda: "")())


class StreamClient:
    """One stream on the server at ``url`` (HOST:PORT of its gRPC endpoint), as sequence ``sequence_id``
    (a random 63-bit id by default). ``reconnect_s``: how long to wait for an unreachable server to come back
    before giving up (it then restarts the sequence)."""

    def __init__(
        self,
        url: str,
        *,
        model: str = "dff",
        sequence_id: int | None = None,
        timeout_s: float = 60.0,
        reconnect_s: float = 30.0,
    ) -> None:
        grpcclient, self._error_type = _grpc()
        self._grpc = grpcclient
        self.url, self.model = url, model
        self.sequence_id = sequence_id if sequence_id is not None else secrets.randbits(63) or 1
        self.timeout_s, self.reconnect_s = timeout_s, reconnect_s
        self._client = grpcclient.InferenceServerClient(url)
        self._open = False
        self._last: np.ndarray | None = None
        #: Frames sent and answered, and sequence restarts (lost sequences).
        self.frames = self.restarts = 0

    def model_info(self) -> ServedModel:
        """The served model's key-frame interval and class names."""
        try:
            config = self._client.get_model_config(self.model, as_json=True, client_timeout=self.timeout_s)["config"]
        except self._error_type as error:
            raise ServeError(f"server {self.url}: cannot read model {self.model!r}: {error.message()}") from None
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        return ServedModel(self.model, int(parameters["interval"]), tuple(json.loads(parameters["class_names"])))

    def send(self, image: np.ndarray, *, end: bool = False) -> ServedFrame:
        """Labels for ``image``, the stream's next frame; ``end`` ends the sequence with it."""
        restarted = False
        start = not self._open
        began = time.perf_counter()
        try:
            result = self._infer(image, start=start, end=end)
        except self._error_type as error:
            if not (self._open and (_lost(error) or _unreachable(error))):
                raise ServeError(f"server {self.url}, sequence {self.sequence_id}: {error.message()}") from None
            if _unreachable(error):
                self._wait_for_server()
            self.restarts += 1
            restarted = True
            try:
                result = self._infer(image, start=True, end=end)
            except self._error_type as again:
                raise ServeError(f"server {self.url}, sequence {self.sequence_id}: {again.message()}") from None
        latency_ms = (time.perf_counter() - began) * 1e3
        self._open = not end
        self._last = None if end else image
        self.frames += 1
        return ServedFrame(
            labels=result.as_numpy(LABELS)[0],
            key=bool(result.as_numpy(KEY).reshape(-1)[0]),
            batch=int(result.as_numpy(BATCH).reshape(-1)[0]),
            held=int(result.as_numpy(HELD).reshape(-1)[0]),
            state_bytes=int(result.as_numpy(STATE).reshape(-1)[0]),
            latency_ms=latency_ms,
            restarted=restarted,
        )

    def close(self) -> None:
        """End the sequence if it is open, so the server frees its slot at once (its last frame is sent again with
        END; that answer is dropped), and close the connection."""
        if self._open and self._last is not None:
            try:
                self._infer(self._last, start=False, end=True)
            except self._error_type:
                pass  # lost already: nothing left to free
            self._open = False
        self._client.close()

    def _infer(self, image: np.ndarray, *, start: bool, end: bool):
        frame = self._grpc.InferInput(FRAME, [1, *image.shape], "UINT8")
        frame.set_data_from_numpy(np.ascontiguousarray(image)[None])
        outputs = [self._grpc.InferRequestedOutput(name) for name in (LABELS, KEY, BATCH, HELD, STATE)]
        return self._client.infer(
            self.model,
            [frame],
            outputs=outputs,
            sequence_id=self.sequence_id,
            sequence_start=start,
            sequence_end=end,
            client_timeout=self.timeout_s,
            headers={SEQUENCE_HEADER: str(self.sequence_id)},
        )

    def _wait_for_server(self) -> None:
        deadline = time.monotonic() + self.reconnect_s
        while time.monotonic() < deadline:
            # A fresh channel each try: a broken one waits out gRPC's growing reconnect back-off (seconds).
            self._client.close()
            self._client = self._grpc.InferenceServerClient(self.url)
            try:
                if self._client.is_model_ready(self.model, client_timeout=1.0):
                    return
            except self._error_type:
                pass
            time.sleep(0.2)
        raise ServeError(f"server {self.url} unreachable for {self.reconnect_s:g} s: is it running? (`dff serve REPO`)")

    def __enter__(self) -> StreamClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def stream_frames(client: StreamClient, frames: Iterable[Frame]) -> Iterator[tuple[Frame, ServedFrame]]:
    """Send ``frames`` as one sequence, the last one with END (one frame read ahead to know it is the last)."""
    iterator = iter(frames)
    current = next(iterator, None)
    while current is not None:
        following = next(iterator, None)
        yield current, client.send(current.image, end=following is None)
        current = following
