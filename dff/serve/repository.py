"""A Triton model repository for an export: a stateful Python-backend model under the sequence batcher.

    REPO/
      dff/                         the model (name: ``ModelSettings.name``)
        config.pbtxt               sequence_batching (oldest), START/END/CORRID controls, idle timeout, parameters
        1/model.py                 dff.serve.triton_model: our runtime, one batched tick per execute call
        1/export/                  the export (ONNX files, manifest, engines/ when `dff build` made them)

The model's parameters (backend, its options, the key-frame interval, the idle timeout) are in config.pbtxt, so
an operator can change them there without regenerating the repository.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dff.atomic import check_output_dir
from dff.errors import ConfigError, OutputError
from dff.manifest import load_manifest
from dff.runtime.backends import backend_options

Device = Literal["cpu", "gpu"]
#: Tensor names of the model's interface (the client uses the same).
FRAME, LABELS, KEY, BATCH, HELD, STATE = "FRAME", "LABELS", "KEY", "BATCH", "SEQUENCES", "STATE_BYTES"
START, END, CORRID = "START", "END", "CORRID"


@dataclass(frozen=True)
class ModelSettings:
    """What the generated model runs and how Triton schedules it."""

    name: str = "dff"
    backend: str = "onnxruntime"
    options: dict[str, Any] = field(default_factory=dict)
    interval: int = 10
    #: Streams one instance holds at once (Triton's max_candidate_sequences) and the largest batch of a tick.
    max_sequences: int = 8
    idle_timeout_s: float = 30.0
    #: How long Triton may hold a request to batch it with other sequences' requests.
    max_queue_delay_us: int = 2000
    instances: int = 1
    device: Device = "cpu"
    gpus: tuple[int, ...] = ()
    #: A conda-pack archive for the Python backend (``EXECUTION_ENV_PATH``), as the production container needs.
    execution_env: str | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.interval, int) and self.interval >= 1):
            raise ConfigError(f"key-frame interval must be an integer >= 1, got {self.interval!r}")
        if not (self.max_sequences >= 1 and self.instances >= 1):
            raise ConfigError(f"--max-sequences and --instances must be >= 1, got {self.max_sequences}, {self.instances}")
        if not (self.idle_timeout_s > 0):
            raise ConfigError(f"--idle-timeout must be > 0 seconds, got {self.idle_timeout_s}")
        if self.device not in ("cpu", "gpu"):
            raise ConfigError(f"--device must be cpu or gpu, got {self.device!r}")

    @classmethod
    def from_parameters(cls, parameters: dict[str, str]) -> ModelSettings:
        """The settings as the model reads them back from config.pbtxt's ``parameters``."""
        return cls(
            backend=parameters["backend"],
            options=json.loads(parameters["options"]),
            interval=int(parameters["interval"]),
            idle_timeout_s=float(parameters["idle_timeout_s"]),
        )

    def parameters(self) -> dict[str, str]:
        return {
            "backend": self.backend,
            "options": json.dumps(self.options),
            "interval": str(self.interval),
            "idle_timeout_s": repr(self.idle_timeout_s),
        }


def model_config(settings: ModelSettings, class_names: tuple[str, ...]) -> str:
    """config.pbtxt for ``settings``; ``class_names`` (the export's) tell clients what the labels mean."""
    idle_us = int(settings.idle_timeout_s * 1e6)
    kind = "KIND_GPU" if settings.device == "gpu" else "KIND_CPU"
    gpus = f"\n    gpus: [{', '.join(map(str, settings.gpus))}]" if settings.gpus else ""
    parameters = {**settings.parameters(), "class_names": json.dumps(list(class_names), ensure_ascii=False)}
    if settings.execution_env:
        parameters["EXECUTION_ENV_PATH"] = settings.execution_env
    params = "\n".join(
        f'parameters {{ key: "{key}" value {{ string_value: {json.dumps(value, ensure_ascii=False)} }} }}'
        for key, value in parameters.items()
    )
    return f"""name: "{settings.name}"
backend: "python"
max_batch_size: {settings.max_sequences}
# One video stream = one sequence: its requests reach one instance in order; requests of different
# sequences are batched into one execute call (one batched runtime tick).
sequence_batching {{
  max_sequence_idle_microseconds: {idle_us}
  oldest {{
    max_candidate_sequences: {settings.max_sequences}
    max_queue_delay_microseconds: {settings.max_queue_delay_us}
  }}
  control_input [
    {{ name: "{START}" control [ {{ kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "{END}" control [ {{ kind: CONTROL_SEQUENCE_END int32_false_true: [ 0, 1 ] }} ] }},
    {{ name: "{CORRID}" control [ {{ kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_UINT64 }} ] }}
  ]
}}
input [ {{ name: "{FRAME}" data_type: TYPE_UINT8 dims: [ -1, -1, 3 ] }} ]
output [
  {{ name: "{LABELS}" data_type: TYPE_UINT8 dims: [ -1, -1 ] }},
  {{ name: "{KEY}" data_type: TYPE_UINT8 dims: [ 1 ] }},
  {{ name: "{BATCH}" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "{HELD}" data_type: TYPE_INT32 dims: [ 1 ] }},
  {{ name: "{STATE}" data_type: TYPE_INT64 dims: [ 1 ] }}
]
instance_group [ {{ count: {settings.instances} kind: {kind}{gpus} }} ]
{params}
"""


def write_repository(export_dir: str | Path, out: str | Path, settings: ModelSettings) -> Path:
    """Write the model repository for ``export_dir`` to ``out`` (a new or empty folder, or one this wrote before);
    the model's folder is staged beside it and renamed into place, so a failed write leaves no half model."""
    export_dir, out = Path(export_dir), Path(out)
    manifest = load_manifest(export_dir)  # a missing or corrupt export fails here, naming the problem
    known = backend_options(settings.backend)  # an unknown backend or option fails now, not when the server loads
    unknown = sorted(set(settings.options) - set(known))
    if unknown:
        raise ConfigError(f"backend {settings.backend!r} takes no option(s) {unknown}; its options are {known}")
    check_output_dir(out, "--out")
    model_dir = out / settings.name
    if model_dir.exists() and not (model_dir / "config.pbtxt").is_file():
        raise OutputError(f"{model_dir} exists and is not a model this wrote; choose another --out or --name")
    staging = out / f".{settings.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        version = staging / "1"
        version.mkdir(parents=True)
        shutil.copy2(Path(__file__).with_name("triton_model.py"), version / "model.py")
        shutil.copytree(export_dir, version / "export", symlinks=False)
        (staging / "config.pbtxt").write_text(model_config(settings, manifest.class_names))
        if model_dir.exists():
            shutil.rmtree(model_dir)
        staging.rename(model_dir)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise OutputError(f"cannot write the model repository {out}: {error}") from None
    return model_dir
