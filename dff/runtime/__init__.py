"""The DFF runtime: Algorithm 1 over a pluggable backend, with video in and out. Torch-free.

    from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend

    backend = open_backend("onnxruntime", model="export/")
    runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(10))
    for image in frames:  # uint8 H×W×3 BGR
        labels = runtime(image).labels

Only the ``torch`` backend imports torch, when it is opened.
"""

from dff.runtime.backend import Backend
from dff.runtime.backends import backend_names, open_backend
from dff.runtime.outputs import RunOutputs
from dff.runtime.runtime import DeepFeatureFlowRuntime, FrameResult
from dff.runtime.scheduler import FixedInterval, KeyFrameScheduler
from dff.runtime.streams import MultiStreamRuntime, PhasedInterval, phased_schedulers, stream_phases
from dff.runtime.timing import FrameTiming, TimingSummary, predicted_speedup
from dff.runtime.video import Step, run_source

__all__ = [
    "Backend",
    "DeepFeatureFlowRuntime",
    "FixedInterval",
    "FrameResult",
    "FrameTiming",
    "KeyFrameScheduler",
    "MultiStreamRuntime",
    "PhasedInterval",
    "RunOutputs",
    "Step",
    "TimingSummary",
    "backend_names",
    "open_backend",
    "phased_schedulers",
    "predicted_speedup",
    "run_source",
    "stream_phases",
]
