"""The thin TensorRT calls, as small loaders in the style of Polygraphy (``polygraphy/backend/trt/loader.py``).

A loader stores its arguments when constructed and does its work when called; an argument may be a
value or a loader producing it, so steps compose and nothing runs early::

    plan = EngineBytesFromNetwork(NetworkFromOnnx(path), input_shapes=shapes, timing_cache=cache)()
    engine = EngineFromBytes(plan)()

Every call follows NVIDIA's documented Python API (TensorRT 10 and 11; the docstrings in
``python/docstrings/infer/pyCoreDoc.h`` and ``parsers/pyOnnxDoc.h`` of NVIDIA/TensorRT) and its
samples: ``samples/python/introductory_parser_samples/onnx_resnet50.py`` (Builder, strongly typed
network, OnnxParser, workspace pool limit, build_serialized_network, deserialize_cuda_engine),
``samples/python/onnx_custom_plugin/sample.py`` (optimisation profile) and
``samples/python/common.py`` (``setup_timing_cache`` / ``save_timing_cache``). None of this has run
against a real TensorRT here: TensorRT cannot be installed on the machines this was written on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from dff.engines.errors import EngineError, missing
from dff.atomic import write_bytes_atomic
from dff.engines.records import TensorRecord

T = TypeVar("T")
Shapes = dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]

_logger: Any = None
#: Plugin libraries loaded into TensorRT's registry in this process, by resolved path. TensorRT's
#: ``load_library`` fails (returns None) for a library whose plugins are already registered.
_plugin_libraries: dict[Path, Any] = {}


def import_tensorrt(what: str = "this") -> ModuleType:
    """The ``tensorrt`` module; TensorRTMissingError with the install command where it is absent."""
    try:
        import tensorrt
    except ImportError as error:
        raise missing("tensorrt", error, what) from None
    return tensorrt


def tensorrt_logger(trt: ModuleType, *, verbose: bool = False) -> Any:
    """The process's one ``trt.Logger``: TensorRT expects builders and runtimes to share a logger."""
    global _logger
    if _logger is None:
        _logger = trt.Logger(trt.Logger.WARNING)
    _logger.min_severity = trt.Logger.VERBOSE if verbose else trt.Logger.WARNING
    return _logger


#: The plugin the warp_plugin.onnx node asks for: (op type, plugin_version, plugin_namespace) as dff export writes them.
WARP_PLUGIN = ("DFFWarp", "1", "dff")


def load_plugin_library(trt: ModuleType, path: Path) -> None:
    """Register the plugins of shared library ``path`` with TensorRT's plugin registry, once per process.

    ``trt.get_plugin_registry().load_library(path)`` (IPluginRegistry docs): the library exports
    ``getCreators`` (and ``setLoggerFinder``), see NVIDIA/TensorRT ``samples/trtexec/README.md``.
    The registry must then hold the creator of :data:`WARP_PLUGIN`, else the ONNX parser would fail
    later with a less telling error.
    """
    path = Path(path).resolve()
    if path in _plugin_libraries:
        return
    if not path.is_file():
        raise EngineError(
            f"plugin library {path} does not exist: build it with `make plugins` or pass --plugin-lib PATH"
        )
    registry = trt.get_plugin_registry()
    handle = registry.load_library(str(path))
    if handle is None:
        raise EngineError(
            f"TensorRT could not load plugin library {path}: it is not a TensorRT plugin library, was built for "
            f"another TensorRT, or its plugins are already registered by another library in this process "
            f"(pass libdff_warp_plugin.so, not libdff_warp_plugin_static.so)"
        )
    _plugin_libraries[path] = handle
    if registry.get_creator(*WARP_PLUGIN) is None:
        name, version, namespace = WARP_PLUGIN
        raise EngineError(
            f"plugin library {path} loaded, but TensorRT's registry has no {namespace}::{name} version {version}: "
            f"it is not the DFFWarp plugin library; pass plugins/build/libdff_warp_plugin.so (`make plugins`)"
        )


def _value(argument: T | Callable[[], T]) -> T:
    """A loader's argument: called if it is a loader, as it is otherwise."""
    return argument() if callable(argument) else argument


class NetworkFromOnnx:
    """(builder, network, parser) from an ONNX file, strongly typed: precision comes from the file's dtypes."""

    def __init__(self, path: str | Path, *, verbose: bool = False) -> None:
        self.path = Path(path)
        self.verbose = verbose

    def __call__(self) -> tuple[Any, Any, Any]:
        trt = import_tensorrt("building TensorRT engines")
        logger = tensorrt_logger(trt, verbose=self.verbose)
        builder = trt.Builder(logger)
        # TensorRT 10 builds weakly typed networks unless asked; TensorRT 11 is always strongly typed
        # and documents the flag as ignored. Set it where it exists (onnx_resnet50.py sets it too).
        strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
        parser = trt.OnnxParser(network, logger)
        # parse_from_file (not parse(bytes)) so that weights stored beside the model are found.
        if not parser.parse_from_file(str(self.path)):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise EngineError(
                f"TensorRT's ONNX parser rejected {self.path}: {'; '.join(errors[:3]) or 'no error reported'}"
                + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")
                + "; a plugin op needs --plugin-lib, other ops need a newer TensorRT or another export"
            )
        return builder, network, parser


class TimingCache:
    """A timing cache file shared by the builds of one ``dff build``: read once, saved after every engine.

    The cache records how fast each tactic ran on this GPU, so rebuilding (another profile, a changed
    model) skips most of the timing. Follows ``setup_timing_cache`` / ``save_timing_cache`` of the
    TensorRT samples' ``common.py``, but writes atomically and never overwrites a user's cache that
    TensorRT refuses: a file it cannot read is an error, and a cache timed on another GPU or TensorRT
    is left as it is while this build reads and writes ``elsewhere`` (a per-GPU file beside it).
    ``elsewhere=None`` marks dff build's own per-GPU file, which is started over instead.
    """

    def __init__(self, path: str | Path, *, elsewhere: str | Path | None = None) -> None:
        self.path = Path(path)
        self.elsewhere = Path(elsewhere) if elsewhere is not None else None
        self._cache: Any = None

    def _create(self, config: Any, path: Path) -> Any:
        data = path.read_bytes() if path.is_file() else b""
        cache = config.create_timing_cache(data)
        if cache is None:  # documented: null for a blob TensorRT cannot deserialise
            raise EngineError(
                f"timing cache {path} is not a timing cache TensorRT can read (corrupt or truncated): delete it, "
                f"or pass another --timing-cache PATH"
            )
        return cache

    def attach(self, config: Any) -> None:
        """Give ``config`` the cache (``create_timing_cache`` on first use, then ``set_timing_cache``)."""
        if self._cache is None:
            self._cache = self._create(config, self.path)
        # ignore_mismatch=False: a cache timed on another device property set is refused, not merged.
        if config.set_timing_cache(self._cache, False):
            return
        if self.elsewhere is None:  # dff build's own per-GPU file, from an older driver or build: start over
            print(f"warning: timing cache {self.path} is from another GPU or TensorRT; starting a new one", file=sys.stderr)
            self._cache = config.create_timing_cache(b"")
        else:
            print(
                f"warning: timing cache {self.path} was timed on another GPU or TensorRT; it is left as it is, and "
                f"this build reads and writes {self.elsewhere}",
                file=sys.stderr,
            )
            self.path, self.elsewhere = self.elsewhere, None
            self._cache = self._create(config, self.path)
        if not config.set_timing_cache(self._cache, False):
            raise EngineError(
                f"timing cache {self.path} was timed on another GPU or TensorRT too: delete it and build again"
            )

    def save(self, config: Any) -> None:
        """Write ``config``'s timing cache (``get_timing_cache().serialize()``) to the file, atomically."""
        cache = config.get_timing_cache()
        if cache is not None:
            write_bytes_atomic(self.path, bytes(memoryview(cache.serialize())))


class EngineBytesFromNetwork:
    """A serialised engine (plan) from a (builder, network, parser), one optimisation profile covering ``input_shapes``."""

    def __init__(
        self,
        network: tuple[Any, Any, Any] | Callable[[], tuple[Any, Any, Any]],
        *,
        input_shapes: Shapes,
        workspace: int | None = None,
        timing_cache: TimingCache | None = None,
    ) -> None:
        self.network = network
        self.input_shapes = input_shapes
        self.workspace = workspace
        self.timing_cache = timing_cache

    def __call__(self) -> bytes:
        trt = import_tensorrt("building TensorRT engines")
        builder, network, _parser = _value(self.network)  # the parser must outlive the build (it owns weights)
        config = builder.create_builder_config()
        if self.workspace is not None:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, self.workspace)
        profile = builder.create_optimization_profile()
        for index in range(network.num_inputs):
            name = network.get_input(index).name
            if name not in self.input_shapes:
                raise EngineError(
                    f"the network has an input {name!r} that the manifest does not list "
                    f"(it lists {sorted(self.input_shapes)}): run `dff export` again"
                )
            profile.set_shape(name, *self.input_shapes[name])
        config.add_optimization_profile(profile)
        if self.timing_cache is not None:
            self.timing_cache.attach(config)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise EngineError("TensorRT could not build the engine: run `dff build --verbose` to see TensorRT's log")
        if self.timing_cache is not None:
            self.timing_cache.save(config)
        return bytes(memoryview(plan))


class EngineFromBytes:
    """An ``ICudaEngine`` deserialised from a plan (``Runtime.deserialize_cuda_engine``)."""

    def __init__(self, plan: bytes | Callable[[], bytes], *, source: str = "the engine", verbose: bool = False) -> None:
        self.plan = plan
        self.source = source
        self.verbose = verbose

    def __call__(self) -> Any:
        trt = import_tensorrt("running TensorRT engines")
        runtime = trt.Runtime(tensorrt_logger(trt, verbose=self.verbose))
        engine = runtime.deserialize_cuda_engine(_value(self.plan))
        if engine is None:  # documented: None when it cannot be deserialised
            raise EngineError(
                f"TensorRT could not deserialise {self.source}: it is corrupt, or was built by another TensorRT "
                f"or for another GPU; run `dff build` again"
            )
        return engine


def numpy_dtype_name(trt: ModuleType, dtype: Any) -> str:
    """The numpy name of a TensorRT data type ("float32", "uint8"); TensorRT's own name where numpy has none."""
    import numpy as np

    try:
        return np.dtype(trt.nptype(dtype)).name
    except TypeError:  # BF16, FP8, INT4 (common_runtime.py's allocate_buffers handles them the same way)
        return str(dtype)


def tensor_records(engine: Any) -> tuple[TensorRecord, ...]:
    """The I/O tensors of ``engine``: name, mode, dtype, shape and, for inputs, profile 0's (min, opt, max)."""
    trt = import_tensorrt("reading TensorRT engines")
    records = []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        records.append(
            TensorRecord(
                name=name,
                mode="input" if is_input else "output",
                dtype=numpy_dtype_name(trt, engine.get_tensor_dtype(name)),
                shape=tuple(engine.get_tensor_shape(name)),
                # get_tensor_profile_shape is input-only (common_runtime.py notes it), so outputs get None.
                profile=tuple(tuple(s) for s in engine.get_tensor_profile_shape(name, 0)) if is_input else None,
            )
        )
    return tuple(records)
