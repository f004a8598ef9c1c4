"""``dff build``: the four TensorRT engines of an export, for this GPU, reusing every engine already built.

:func:`plan_build` is pure: it checks the options against the export and computes each engine's
cache key, so every option error is reported before TensorRT is even imported (and is testable
without it). :func:`build_engines` then builds what the cache lacks with :mod:`dff.engines.loaders`.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from dff.engines.errors import EngineError
from dff.atomic import write_bytes_atomic
from dff.engines.gpu import GpuIdentity, current_gpu
from dff.engines.profiles import FrameSize, SizeProfile, input_shapes, make_profile
from dff.engines.records import (
    FORMAT,
    ROLES,
    BuildRecord,
    EngineKey,
    cached_record,
    write_record,
)
from dff.errors import ConfigError
from dff.manifest import Manifest, load_manifest, sha256_file

WarpMode = Literal["plugin", "gridsample"]


@dataclass(frozen=True)
class BuildOptions:
    """What ``dff build`` takes besides the export directory; each field is one command-line option."""

    #: Engines directory (``--out``); None: ``EXPORT_DIR/engines``.
    out: Path | None = None
    #: The DFFWarp plugin library (``--plugin-lib``); needed for ``warp="plugin"``.
    plugin_lib: Path | None = None
    #: Which warp graph to build (``--warp``): the plugin's or the ONNX GridSample one.
    #: None: the plugin's when a plugin library is given.
    warp: WarpMode | None = None
    min_size: FrameSize | None = None
    opt_size: FrameSize | None = None
    max_size: FrameSize | None = None
    #: Largest batch the engines take (``--max-batch``): the streams one multi-stream call batches.
    max_batch: int = 1
    #: TensorRT's workspace pool limit in bytes (``--workspace``); None: TensorRT's default.
    workspace: int | None = None
    #: Timing cache file (``--timing-cache``); None: one per GPU and TensorRT version in the engines directory.
    timing_cache: Path | None = None
    #: Rebuild every engine even if an intact one with the same key exists (``--force``).
    force: bool = False
    #: Show TensorRT's verbose log (``--verbose``).
    verbose: bool = False


@dataclass(frozen=True)
class PlannedEngine:
    """One engine to have: its key, the ONNX file it is built from, and its input shapes."""

    key: EngineKey
    onnx_path: Path
    input_shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


@dataclass(frozen=True)
class BuildPlan:
    engines_dir: Path
    timing_cache: Path
    #: Where this build's timings go if TensorRT refuses ``timing_cache`` as another GPU's (None: start it over).
    timing_cache_elsewhere: Path | None
    profile: SizeProfile
    plugin_lib: Path | None
    engines: tuple[PlannedEngine, ...]


@dataclass(frozen=True)
class BuildOutcome:
    record: BuildRecord
    #: False when an intact engine with the same key was already there.
    built: bool


def parse_bytes(text: str) -> int:
    """``"2GiB"``, ``"512MiB"``, ``"1.5G"`` or a plain number of bytes, as bytes; ConfigError otherwise."""
    units = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match or float(match[1]) <= 0:
        raise ConfigError(f"--workspace expects a positive size such as 2GiB, 512MiB or 1073741824; got {text!r}")
    return int(float(match[1]) * units[match[2]])


def warp_mode(options: BuildOptions) -> WarpMode:
    """The warp graph to build; ConfigError if the plugin is asked for without its library."""
    mode = options.warp or ("plugin" if options.plugin_lib is not None else "gridsample")
    if mode == "plugin":
        if options.plugin_lib is None:
            raise ConfigError(
                "--warp plugin needs the plugin library: pass --plugin-lib PATH (`make plugins` builds it into "
                "plugins/build/), or build the ONNX GridSample warp with --warp gridsample"
            )
        if not options.plugin_lib.is_file():
            raise ConfigError(f"--plugin-lib {options.plugin_lib} does not exist: build it with `make plugins`")
    return mode


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def check_options(manifest: Manifest, options: BuildOptions) -> tuple[WarpMode, SizeProfile]:
    """The warp graph and the profile ``options`` ask for; ConfigError for any option the export does not allow."""
    return warp_mode(options), make_profile(
        manifest.sizes, min=options.min_size, opt=options.opt_size, max=options.max_size, max_batch=options.max_batch
    )


def plan_build(
    export_dir: Path, manifest: Manifest, options: BuildOptions, *, gpu: GpuIdentity, tensorrt_version: str
) -> BuildPlan:
    """The engines ``options`` ask for on ``gpu`` with this TensorRT, each with its cache key."""
    mode, profile = check_options(manifest, options)
    plugin_lib = options.plugin_lib.resolve() if mode == "plugin" and options.plugin_lib else None
    plugin_sha256 = sha256_file(plugin_lib) if plugin_lib else None
    engines_dir = options.out or export_dir / "engines"
    files = manifest.files()
    planned = []
    for role in ROLES:
        model = files["warp_plugin" if role == "warp" and mode == "plugin" else role]
        key = EngineKey(
            role=role,
            onnx_file=model.file,
            onnx_sha256=model.sha256,
            gpu=gpu,
            tensorrt_version=tensorrt_version,
            profile=profile,
            workspace=options.workspace,
            plugin_sha256=plugin_sha256 if model is files["warp_plugin"] else None,
        )
        planned.append(
            PlannedEngine(key=key, onnx_path=export_dir / model.file, input_shapes=input_shapes(model, profile))
        )
    # The per-GPU name: the default file in the engines directory, or the file beside a user's --timing-cache that a
    # build on another GPU uses instead of overwriting it.
    per_gpu = f"{_slug(gpu.name)}-sm{gpu.compute_capability}-trt{tensorrt_version}"
    if options.timing_cache is None:
        timing_cache, timing_cache_elsewhere = engines_dir / f"timing-{per_gpu}.cache", None
    else:
        user = options.timing_cache
        timing_cache, timing_cache_elsewhere = user, user.with_name(f"{user.stem}-{per_gpu}{user.suffix or '.cache'}")
    return BuildPlan(
        engines_dir=engines_dir,
        timing_cache=timing_cache,
        timing_cache_elsewhere=timing_cache_elsewhere,
        profile=profile,
        plugin_lib=plugin_lib,
        engines=tuple(planned),
    )


def build_engines(
    export_dir: str | Path, options: BuildOptions, *, log: Callable[[str], None] = print
) -> list[BuildOutcome]:
    """Build (or find in the cache) the feature, flow, warp and task engines of ``export_dir`` for this GPU."""
    from dff.engines.loaders import (
        EngineBytesFromNetwork,
        EngineFromBytes,
        NetworkFromOnnx,
        TimingCache,
        import_tensorrt,
        load_plugin_library,
        tensor_records,
    )

    export_dir = Path(export_dir)
    manifest = load_manifest(export_dir)
    check_options(manifest, options)  # option errors first: they need neither TensorRT nor a GPU
    trt = import_tensorrt("`dff build`")
    plan = plan_build(export_dir, manifest, options, gpu=current_gpu(), tensorrt_version=trt.__version__)
    if plan.plugin_lib is not None:
        load_plugin_library(trt, plan.plugin_lib)
    timing_cache = TimingCache(plan.timing_cache, elsewhere=plan.timing_cache_elsewhere)
    outcomes = []
    for engine in plan.engines:
        cached = None if options.force else cached_record(plan.engines_dir, engine.key)
        if cached is not None:
            log(f"{engine.key.role}: up to date, {plan.engines_dir / cached.engine_file}")
            outcomes.append(BuildOutcome(record=cached, built=False))
            continue
        log(
            f"{engine.key.role}: building from {engine.onnx_path.name} for {engine.key.gpu}, profile "
            f"{plan.profile.min}..{plan.profile.max} (opt {plan.profile.opt}), batch 1..{plan.profile.max_batch} ..."
        )
        started = time.perf_counter()
        try:
            plan_bytes = EngineBytesFromNetwork(
                NetworkFromOnnx(engine.onnx_path, verbose=options.verbose),
                input_shapes=engine.input_shapes,
                workspace=engine.key.workspace,
                timing_cache=timing_cache,
            )()
        except EngineError as error:
            raise EngineError(f"{engine.key.role} engine from {engine.onnx_path}: {error}") from None
        seconds = time.perf_counter() - started
        engine_file = f"{engine.key.stem}.engine"
        tensors = tensor_records(EngineFromBytes(plan_bytes, source=f"the {engine.key.role} engine just built")())
        write_bytes_atomic(plan.engines_dir / engine_file, plan_bytes)
        record = BuildRecord(
            format=FORMAT,
            key=engine.key,
            digest=engine.key.digest(),
            engine_file=engine_file,
            engine_sha256=hashlib.sha256(plan_bytes).hexdigest(),
            engine_bytes=len(plan_bytes),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(seconds, 3),
            tensors=tensors,
            plugin_library=str(plan.plugin_lib) if engine.key.plugin_sha256 else None,
        )
        write_record(plan.engines_dir, record)
        log(
            f"{engine.key.role}: built in {seconds:.1f} s, {len(plan_bytes) / 2**20:.1f} MiB, {plan.engines_dir / engine_file}"
        )
        outcomes.append(BuildOutcome(record=record, built=True))
    return outcomes
