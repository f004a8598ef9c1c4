"""The Triton Python-backend model that `dff triton` writes as model.py: deep feature flow per sequence.

It runs inside Triton's Python-backend stub (``triton_python_backend_utils`` exists only there), with ``dff``,
onnxruntime and numpy importable in the stub's Python (the environment `dff serve` makes, or the model's
``EXECUTION_ENV_PATH``). Each ``execute`` call's requests, one per sequence (the ``oldest`` sequence batcher never
puts two requests of a sequence in one batch), run as one batched tick of :class:`dff.serve.sequences.SequenceRuntime`.
The stub converts tensors with the numpy it was built against, numpy 1: under numpy 2 it corrupts them without an
error, so the model refuses to start under numpy 2. (Its DLPack path is no way out: handing it a numpy array
breaks the capsule's protocol and kills the stub.)
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

from dff.errors import DFFError
from dff.runtime import open_backend
from dff.serve.repository import BATCH, CORRID, END, FRAME, HELD, KEY, LABELS, START, STATE, ModelSettings
from dff.serve.sequences import SequenceFrame, SequenceRuntime


def _input(request: object, name: str) -> np.ndarray:
    # A copy: the request's memory is the stub's and is reused after execute, while a key frame is kept.
    return np.array(pb_utils.get_input_tensor_by_name(request, name).as_numpy())


def _output(name: str, array: np.ndarray) -> object:
    return pb_utils.Tensor(name, np.ascontiguousarray(array))


def _flag(request: object, name: str) -> bool:
    return bool(_input(request, name).reshape(-1)[0])


class TritonPythonModel:
    """One model instance: one backend, the sequences Triton routes to this instance, an idle sweeper."""

    def initialize(self, args: dict[str, str]) -> None:
        if int(np.__version__.split(".")[0]) >= 2:
            raise RuntimeError(
                f"dff model: numpy {np.__version__} in the model's Python; Triton's Python-backend stub corrupts "
                "tensors under numpy 2: serve with `dff serve` (its own environment has numpy<2) or give the model "
                "an environment with numpy<2 (EXECUTION_ENV_PATH, `dff triton --execution-env`)"
            )
        config = json.loads(args["model_config"])
        settings = ModelSettings.from_parameters({k: v["string_value"] for k, v in config["parameters"].items()})
        options = dict(settings.options)
        if args["model_instance_kind"] == "GPU":  # the instance's GPU, in each backend's own option
            gpu = int(args["model_instance_device_id"])
            device_option = {
                "onnxruntime": ("device_id", gpu),
                "tensorrt": ("device", gpu),
                "torch": ("device", f"cuda:{gpu}"),
            }
            if settings.backend in device_option:
                options.setdefault(*device_option[settings.backend])
        export = Path(args["model_repository"]) / args["model_version"] / "export"
        self.backend = open_backend(settings.backend, model=export, **options)
        self.sequences = SequenceRuntime(
            backend=self.backend, interval=settings.interval, idle_timeout_s=settings.idle_timeout_s
        )
        # Triton frees an idle sequence's slot without telling the model, so the model frees its state itself.
        self._stop = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="dff-idle-sweeper", daemon=True)
        self._sweeper.start()

    def _sweep(self) -> None:
        while not self._stop.wait(self.sequences.idle_timeout_s / 4):
            self.sequences.free_idle()

    def execute(self, requests: list) -> list:
        frames: dict[int, SequenceFrame] = {}
        order: list[int | DFFError] = []
        for request in requests:
            sequence = int(_input(request, CORRID).reshape(-1)[0])
            if sequence in frames:
                order.append(DFFError(f"two requests of sequence {sequence} in one batch: send its frames in order"))
                continue
            frames[sequence] = SequenceFrame(
                image=_input(request, FRAME)[0], start=_flag(request, START), end=_flag(request, END)
            )
            order.append(sequence)
        try:
            results = self.sequences.step(frames)
        except Exception as error:  # a backend failure fails the whole tick; Triton reports it per request
            failure = pb_utils.TritonError(f"dff model: {type(error).__name__}: {error}")
            return [pb_utils.InferenceResponse(error=failure) for _ in requests]
        batch = np.array([[len(requests)]], np.int32)
        held = np.array([[self.sequences.held]], np.int32)
        state = np.array([[self.sequences.state_bytes()]], np.int64)
        responses = []
        for item in order:
            result = item if isinstance(item, DFFError) else results[item]
            if isinstance(result, DFFError):
                error = pb_utils.TritonError(str(result), pb_utils.TritonError.INVALID_ARG)
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            tensors = [
                _output(LABELS, result.labels[None]),
                _output(KEY, np.array([[result.key]], np.uint8)),
                _output(BATCH, batch),
                _output(HELD, held),
                _output(STATE, state),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        self._stop.set()
        s = self.sequences
        pb_utils.Logger.log_info(
            f"dff model: {s.calls} execute calls, {s.requests} requests, largest batch {s.largest_batch}, "
            f"{s.freed_idle} idle sequence(s) freed, {s.held} held at shutdown"
        )
        self.backend.close()
