"""OpenVINO, imported without its import-time telemetry.

``import openvino`` sends a usage event to Google Analytics (the ``openvino_telemetry`` package; consent is assumed
where the user never ran its opt-in tool, and it is off only where a CI variable is set) from a child process that a
worker thread forks. Forked after ONNX Runtime sessions or torch exist, that child inherits locks held by their
threads and can hang (``dff demo`` and pytest once never exited); and a library should not report from its users'
machines unasked. OpenVINO falls back to its own no-op telemetry where ``openvino_telemetry`` cannot be imported, so
:func:`import_openvino` hides that package while OpenVINO is first imported. ``DFF_OPENVINO_TELEMETRY=1`` leaves
OpenVINO as it is.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

#: Set to 1 to let OpenVINO send its telemetry (its own opt-in and CI rules then apply).
TELEMETRY_VARIABLE = "DFF_OPENVINO_TELEMETRY"


def import_openvino() -> ModuleType:
    """The ``openvino`` module; imported here first, without its telemetry (see the module)."""
    if "openvino" in sys.modules or "openvino_telemetry" in sys.modules or os.environ.get(TELEMETRY_VARIABLE) == "1":
        return importlib.import_module("openvino")  # already imported (nothing left to prevent), or asked for
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # importing it now raises ImportError
    try:
        return importlib.import_module("openvino")
    finally:
        del sys.modules["openvino_telemetry"]  # the user's own later import of the package still works
