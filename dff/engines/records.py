"""Cache keys and build records of engines, and the checks made before an engine is deserialised.

An engine depends on its ONNX file, the GPU model, the TensorRT version and the build options; the
SHA-256 of all of them (:meth:`EngineKey.digest`) names the engine file, ``<role>-<digest[:16]>.engine``,
and its JSON build record beside it. A rebuild finds the record of an unchanged key and skips the
engine; an engines directory can hold engines for several GPUs side by side.

Before loading, the runtime picks the record built for this GPU and this TensorRT from this export,
and checks the engine file's SHA-256: TensorRT refuses (or worse, crashes on) a plan from another
version or GPU, so these errors are caught first, with the fix: run ``dff build`` again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dff.atomic import write_bytes_atomic
from dff.config import from_dict, to_dict
from dff.engines.errors import EngineError
from dff.engines.gpu import GpuIdentity
from dff.engines.profiles import SizeProfile
from dff.errors import ConfigError
from dff.manifest import sha256_file

FORMAT = "dff-engine-1"
#: The engines of an export, in build order; ``warp`` is built from warp.onnx or warp_plugin.onnx.
ROLES = ("feature", "flow", "warp", "task")
ENGINE_SUFFIX, RECORD_SUFFIX = ".engine", ".json"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on: two engines with equal keys are interchangeable."""

    role: str
    onnx_file: str
    onnx_sha256: str
    gpu: GpuIdentity
    tensorrt_version: str
    profile: SizeProfile
    #: TensorRT's workspace pool limit in bytes; None leaves TensorRT's default (the device's memory).
    workspace: int | None = None
    #: SHA-256 of the plugin library a plugin warp engine is built against.
    plugin_sha256: str | None = None

    def digest(self) -> str:
        """SHA-256 of the key's canonical JSON and the record format."""
        text = json.dumps({"format": FORMAT, **to_dict(self)}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def stem(self) -> str:
        """The file name, without suffix, of this key's engine and record."""
        return f"{self.role}-{self.digest()[:16]}"


@dataclass(frozen=True)
class TensorRecord:
    """One I/O tensor of a built engine; -1 marks a dynamic dimension, ``profile`` is an input's (min, opt, max)."""

    name: str
    mode: Literal["input", "output"]
    dtype: str
    shape: tuple[int, ...]
    profile: tuple[tuple[int, ...], ...] | None = None


@dataclass(frozen=True)
class BuildRecord:
    """What was built, from what, where, and how long it took; written beside each engine."""

    format: str
    key: EngineKey
    digest: str
    engine_file: str
    engine_sha256: str
    engine_bytes: int
    built_at: str
    build_seconds: float
    tensors: tuple[TensorRecord, ...]
    #: The plugin library the warp engine was built against (absolute path); the runtime loads it.
    plugin_library: str | None = None


def write_record(directory: Path, record: BuildRecord) -> Path:
    path = directory / f"{record.key.stem}{RECORD_SUFFIX}"
    write_bytes_atomic(path, (json.dumps(to_dict(record), indent=2) + "\n").encode())
    return path


def read_record(path: Path) -> BuildRecord:
    """The build record at ``path``; EngineError if it is unreadable or not a record of this format."""
    try:
        record = from_dict(BuildRecord, json.loads(path.read_text()), where=str(path))
    except (OSError, json.JSONDecodeError, ConfigError, ValueError) as error:
        raise EngineError(f"build record {path} is unreadable ({error}); delete it and run `dff build` again") from None
    if record.format != FORMAT:
        raise EngineError(
            f"build record {path} has format {record.format!r}, this dff reads {FORMAT!r}: run `dff build` again"
        )
    return record


def cached_record(directory: Path, key: EngineKey) -> BuildRecord | None:
    """The record of an intact engine built for ``key`` in ``directory``, or None if it must be (re)built."""
    path = directory / f"{key.stem}{RECORD_SUFFIX}"
    if not path.is_file():
        return None
    try:
        record = read_record(path)
    except EngineError:
        return None
    engine = directory / record.engine_file
    if record.key != key or not engine.is_file() or sha256_file(engine) != record.engine_sha256:
        return None
    return record


def select_record(
    directory: Path, role: str, *, onnx_sha256s: Collection[str], gpu: GpuIdentity, tensorrt_version: str
) -> BuildRecord:
    """The newest record in ``directory`` of a ``role`` engine built for this GPU and TensorRT from one of these ONNX files.

    ``onnx_sha256s``: the export's files the engine may come from (warp.onnx or warp_plugin.onnx for ``warp``).

    EngineError, saying what is there and to run ``dff build`` again, when there is none.
    """
    paths = sorted(directory.glob(f"{role}-*{RECORD_SUFFIX}")) if directory.is_dir() else []
    if not paths:
        raise EngineError(
            f"{directory} has no {role} engine: build the engines with `dff build EXPORT_DIR --out {directory}`"
        )
    records = [read_record(path) for path in paths]
    here = [r for r in records if r.key.gpu == gpu and r.key.tensorrt_version == tensorrt_version]
    if not here:
        built = sorted({f"{r.key.gpu} with TensorRT {r.key.tensorrt_version}" for r in records})
        raise EngineError(
            f"the {role} engine(s) in {directory} were built for {'; '.join(built)}, but this machine has {gpu} with "
            f"TensorRT {tensorrt_version}: TensorRT engines only run on the GPU and TensorRT they were built with; "
            f"run `dff build` again on this machine"
        )
    current = [r for r in here if r.key.onnx_sha256 in onnx_sha256s]
    if not current:
        raise EngineError(
            f"the {role} engine(s) in {directory} were built from another export ({here[0].key.onnx_file} has changed "
            f"since): run `dff build` again"
        )
    return max(current, key=lambda r: r.built_at)


def read_engine(directory: Path, record: BuildRecord) -> bytes:
    """The serialised engine of ``record``, after checking it is the file that was built."""
    path = directory / record.engine_file
    if not path.is_file():
        raise EngineError(f"engine file {path} is missing (its build record is there): run `dff build` again")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != record.engine_sha256:
        raise EngineError(
            f"engine file {path} is corrupt: its SHA-256 differs from the one in its build record "
            f"(truncated copy or changed file); delete it and run `dff build` again"
        )
    return data


def check_plugin_library(record: BuildRecord, path: Path) -> None:
    """EngineError unless ``path`` is the plugin library ``record``'s engine was built against."""
    if record.key.plugin_sha256 is None:
        return
    if not path.is_file():
        raise EngineError(
            f"the {record.key.role} engine needs the warp plugin library {path}, which does not exist: build it "
            f"(`make plugins`) or pass its path, then run `dff build --plugin-lib PATH` again"
        )
    if sha256_file(path) != record.key.plugin_sha256:
        raise EngineError(
            f"plugin library {path} is not the one the {record.key.role} engine was built against (SHA-256 differs): "
            f"run `dff build --plugin-lib {path}` again"
        )
