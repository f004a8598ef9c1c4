"""dff imports OpenVINO without its import-time telemetry (dff.quiet_openvino), in a fresh interpreter each time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

# Records instead of starting processes: OpenVINO's telemetry sends from a forked child, and nothing may leave here.
_PROBE = """
import json, multiprocessing, sys
started = []
multiprocessing.Process.start = lambda self: started.append(repr(self))
import dff.runtime.backends.openvino  # what opens an OpenVINO backend imports
import dff.export.runners.openvino  # and what dff check runs in OpenVINO
import openvino.tools.ovc.telemetry_utils as telemetry_utils
import openvino_telemetry  # the user's own import still works afterwards
import threading
for thread in threading.enumerate():  # the telemetry event is sent from a pool thread: let it finish
    if thread is not threading.current_thread() and not thread.daemon:
        thread.join(timeout=5)
print(json.dumps({"telemetry": telemetry_utils.tm.__name__, "started": started, "user_import": openvino_telemetry.__name__}))
"""


def _probe(**environment: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "DFF_OPENVINO_TELEMETRY"} | environment
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_openvino_is_imported_without_its_telemetry():
    found = _probe()
    assert found["telemetry"] == "openvino.tools.ovc.telemetry_stub"
    assert found["started"] == []  # no process forked to send anything
    assert found["user_import"] == "openvino_telemetry"


def test_the_variable_leaves_openvino_telemetry_as_it_is():
    found = _probe(DFF_OPENVINO_TELEMETRY="1")
    assert found["telemetry"] == "openvino_telemetry"
