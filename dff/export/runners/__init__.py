"""One module per runtime that ``dff check`` runs the exported graphs in; each defines ``RUNNER``.

A runner is built from an ``onnx.ModelProto`` (so that graphs changed by surgery run without a
file) and called with the feeds by input name; it returns every graph output by name, as NumPy
arrays. The runtimes are independent implementations of ONNX: a graph that all three agree on,
and that matches PyTorch, is read the way we meant it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Protocol

import numpy as np
import onnx

RUNTIMES = ("onnxruntime", "opencv", "reference")


class Runner(Protocol):
    def __init__(self, model: onnx.ModelProto) -> None: ...

    #: Whether the runner executes the ``dff::DFFWarp`` node itself; otherwise it runs the inlined standard form.
    runs_plugin: bool

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def runner_class(runtime: str) -> type[Runner]:
    """The runner class of ``runtime``, one of RUNTIMES (its module is imported only now)."""
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {list(RUNTIMES)}, got {runtime!r}")
    return importlib.import_module(f"{__name__}.{runtime}").RUNNER


def runner(runtime: str, model: onnx.ModelProto) -> Runner:
    """A runner of ``runtime`` for ``model``."""
    return runner_class(runtime)(model)


def output_names(model: onnx.ModelProto) -> list[str]:
    return [output.name for output in model.graph.output]
