"""CUDA graph capture of a TensorRT enqueue through cuda-python, ended on every path, and the counts of what ran.

The capture follows trtexec (NVIDIA/TensorRT ``samples/common/sampleInference.cpp`` and
``sampleUtils``' ``TrtCudaGraph``): one plain enqueue first, so that TensorRT's one-time
initialisation stays out of the graph; ``cudaStreamBeginCapture`` in thread-local mode; the
enqueue; ``cudaStreamEndCapture`` whatever happened, because a stream left capturing fails every
later call on it (``close()`` included); on failure the half-made graph is destroyed and the
error state cleared (``endCaptureOnError``); then ``cudaGraphInstantiate``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dff.engines.cudart import call


@dataclass
class GraphStats:
    """What one engine ran: graph captures, graph launches, captures that failed, and plain enqueues."""

    captures: int = 0
    replays: int = 0
    failures: int = 0
    plain: int = 0

    def __add__(self, other: GraphStats) -> GraphStats:
        return GraphStats(
            captures=self.captures + other.captures,
            replays=self.replays + other.replays,
            failures=self.failures + other.failures,
            plain=self.plain + other.plain,
        )


def capture_graph(cudart: Any, stream: Any, enqueue: Callable[[], bool], *, what: str) -> Any | None:
    """The executable graph of ``enqueue()`` on ``stream``, or None (with a warning) if it cannot be captured.

    ``enqueue`` returns False where TensorRT refuses (an operation not allowed under capture); an
    exception from it propagates after the capture has been ended and the graph destroyed.
    """
    call(cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
    mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
    status = cudart.cudaStreamBeginCapture(stream, mode)[0]
    if status.value:
        cudart.cudaGetLastError()
        return _failed(what, "cudaStreamBeginCapture failed")
    captured = False
    graph = None
    try:
        captured = bool(enqueue())
    finally:
        status, graph = cudart.cudaStreamEndCapture(stream)
        if not (captured and status.value == 0 and graph is not None):
            if status.value == 0 and graph is not None:  # a failed enqueue leaves a graph that must not be used
                cudart.cudaGraphDestroy(graph)
            cudart.cudaGetLastError()
            graph = None
    if graph is None:
        return _failed(what, "TensorRT's enqueue cannot be captured" if status.value == 0 else "the capture was invalidated")
    status, graph_exec = cudart.cudaGraphInstantiate(graph, 0)
    cudart.cudaGraphDestroy(graph)  # the executable graph does not need it (trtexec's endCapture)
    if status.value:
        cudart.cudaGetLastError()
        return _failed(what, "cudaGraphInstantiate failed")
    return graph_exec


def _failed(what: str, reason: str) -> None:
    print(f"warning: CUDA graph capture of {what} failed ({reason}); it runs without a graph", file=sys.stderr)
    return None
