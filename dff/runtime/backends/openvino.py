"""OpenVINO backend: the exported ONNX graphs, unchanged, on an OpenVINO device (CPU by default; GPU, NPU, AUTO).

* **One compiled model per network and frame size.** The exported graphs have dynamic N, H and W;
  OpenVINO runs a model reshaped to a static size markedly faster (1.2-1.8× in our trial), so each
  network is reshaped to (1, H, W) and compiled the first time a frame of that size arrives, and the
  compiled models are kept for later frames of that size.
* **Precision is asked for, not inherited.** OpenVINO's CPU plugin computes in bfloat16 by default
  on CPUs with native bf16 (AMX, and AVX512_BF16 as on this machine's EPYC), which flips labels
  against the other backends; ``precision="f32"`` (the default) sets ``ov::hint::inference_precision``
  so labels match them, and ``precision="bf16"`` opts in to the fast path.
* **One call a frame** where the export has fused graphs (``key_path.onnx``, ``propagate.onnx``): the
  one-stream paths run them, compiled per size like the others (``fused_graphs=False``: stage by stage).
* **Tensors stay in OpenVINO's memory.** Handles are ``ov.Tensor`` s: every returned handle is a
  tensor allocated for that call and set as the infer request's output, so the request never
  overwrites a handle the caller still holds; the key frame and key features are passed back as
  inputs without copies. Only the labels are copied to a numpy array.
* **Labels on the host** on the CPU (``label_tail="host"``, :mod:`dff.runtime.label_tail`): the task graph and the
  fused graphs are compiled without their frame-size tail, ending at ``probs``, and ``download`` computes the labels.

Torch-free: it imports numpy and openvino only.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from dff.quiet_openvino import import_openvino

ov = import_openvino()
from openvino.frontend import FrontEndManager, GeneralFailure, OpConversionFailure, OpValidationFailure  # noqa: E402

from dff import manifest as names  # noqa: E402
from dff.errors import ConfigError
from dff.manifest import Dim, ModelFile, TensorSpec, invalid_model, load_manifest
from dff.runtime.adaptive_signals import FLOW_STATS, FlowStatistics
from dff.runtime.backend import Backend, FeatureHandle, FlowHandle, FrameHandle, LabelHandle, Lap, no_lap
from dff.runtime.detections import Detections, task_handle, task_outputs
from dff.runtime.key_cache import KeyCache
from dff.runtime.key_flow_half import KEY_FLOW_HALF, split_key_half
from dff.runtime.label_tail import LabelTail, choose_label_tail, host_tail_outputs, labels_from_probs
from dff.sources import warn_caller

Precision = Literal["f32", "bf16", "f16"]
_PRECISIONS: dict[str, ov.Type] = {"f32": ov.Type.f32, "bf16": ov.Type.bf16, "f16": ov.Type.f16}
#: Virtual devices that pick or combine real ones; OpenVINO does not list them in ``available_devices``.
_VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")
#: The outputs each network's handle carries; other outputs (the task graph's scores and probs) stay in the request.
_RETURNED = {
    "feature": (names.FEAT,),
    "flow": (names.FLOW, names.SCALE),
    "warp": (names.FEAT,),
    "task": (names.LABELS,),
}


def native_bf16(core: ov.Core, device: str) -> bool:
    """Whether ``device`` computes bf16 natively (other devices than the CPU are taken at their word)."""
    if not device.upper().startswith("CPU"):
        return True
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def static_shape(shape: tuple[Dim, ...], height: int, width: int) -> list[int]:
    """A manifest shape with its named dimensions ("N", "H", "W", "H/16", "W/16") fixed for one frame of H × W."""
    sides = {"N": 1, "H": height, "W": width}
    dims = []
    for dim in shape:
        if isinstance(dim, int):
            dims.append(dim)
            continue
        name, _, divisor = dim.partition("/")
        if name not in sides:
            raise ConfigError(f"the manifest names a dimension {dim!r} this backend does not know; run `dff export` again")
        dims.append(sides[name] // int(divisor or 1))
    return dims


#: What OpenVINO's ONNX front end raises for a model it cannot read or convert.
_CONVERSION_ERRORS = (GeneralFailure, OpConversionFailure, OpValidationFailure, RuntimeError)


def _convert(source: str | io.BytesIO) -> ov.Model:
    """An ONNX model (a path, or serialised bytes) through OpenVINO's ONNX front end, asked by name: ``Core.read_model``
    offers a file no front end claims to each in turn, and TensorFlow's then logs parse errors of its own text format."""
    frontend = FrontEndManager().load_by_framework("onnx")
    return frontend.convert(frontend.load(source))


def _read_model(path: Path, role: str, entry: ModelFile) -> ov.Model:
    """``path`` through OpenVINO's ONNX front end; a file that is no ONNX model for ``entry`` is an ExportError."""
    try:
        model = _convert(str(path))
    except _CONVERSION_ERRORS as error:
        raise invalid_model(path, role, error) from None
    _check_outputs(model, path, role, entry)
    return model


def _read_split(path: Path, role: str, entry: ModelFile) -> tuple[ov.Model, ov.Model, TensorSpec] | None:
    """``path`` split at F's conv1 (:mod:`dff.runtime.key_flow_half`): the graph reading the key half, the graph computing
    it and the half's interface; None where the graph has another form."""
    try:
        split = split_key_half(onnx.load(path))
        if split is None:
            return None
        graph, key_half = (_convert(io.BytesIO(part.SerializeToString())) for part in (split.graph, split.key_half))
    except (DecodeError, *_CONVERSION_ERRORS) as error:
        raise invalid_model(path, role, error) from None
    _check_outputs(graph, path, role, entry)
    return graph, key_half, split.spec


def _check_outputs(model: ov.Model, path: Path, role: str, entry: ModelFile) -> None:
    found = {name for output in model.outputs for name in output.get_names()}
    missing = [spec.name for spec in entry.outputs if spec.name not in found]
    if missing:  # an empty file, for one, parses as an empty model
        raise invalid_model(path, role, ValueError(f"it has no output(s) {missing}"))


def _before_tail(model: ov.Model) -> ov.Model:
    """``model`` without its labels output: OpenVINO then compiles only what the other outputs (``probs``) need."""
    kept = [result for result, output in zip(model.get_results(), model.outputs) if names.LABELS not in output.get_names()]
    return ov.Model(kept, model.get_parameters(), model.get_friendly_name())


@dataclass
class _Network:
    """One network compiled at one frame size: its infer request and the outputs it hands back as new tensors."""

    request: ov.InferRequest
    outputs: tuple[tuple[str, ov.Type, ov.Shape], ...]

    def run(self, inputs: dict[str, ov.Tensor]) -> list[ov.Tensor]:
        request = self.request
        for name, tensor in inputs.items():
            request.set_tensor(name, tensor)
        results = []
        for name, kind, shape in self.outputs:
            tensor = ov.Tensor(kind, shape)  # owned by the handle; the request writes into it
            request.set_tensor(name, tensor)
            results.append(tensor)
        request.infer()
        return results


class OpenVINOBackend(Backend):
    """The ONNX files of an export directory (``model``), hashes checked, compiled by OpenVINO for ``device``.

    ``device``: an OpenVINO device name (``CPU``, ``GPU``, ``GPU.1``, ``NPU``, ``AUTO``, ...);
    ``precision``: ``f32`` (default: labels as the other backends give them), ``bf16`` (CPUs with
    AMX or AVX512_BF16) or ``f16`` (GPUs, NPUs); ``threads``: CPU inference threads (OpenVINO's
    default when None); ``fused_graphs``: run the paths through the export's fused graphs where it has them;
    ``label_tail``: ``host`` or ``graph``, as for the ONNX Runtime backend (None: ``host`` on the CPU where the export
    allows it); ``key_flow_half``: compute the key frame's half of F's conv1 once per key frame, as for the ONNX
    Runtime backend (None: on the CPU).
    """

    name = "openvino"

    def __init__(
        self,
        *,
        model: str | Path,
        device: str = "CPU",
        precision: Precision = "f32",
        threads: int | None = None,
        fused_graphs: bool = True,
        label_tail: LabelTail | None = None,
        key_flow_half: bool | None = None,
    ) -> None:
        directory = Path(model)
        manifest = load_manifest(directory)
        self.sizes = manifest.sizes
        self.class_names = manifest.class_names
        self.task_kind = manifest.task
        on_cpu = isinstance(device, str) and device.upper().startswith("CPU")  # checked below
        #: Where the labels are computed: ``host`` (from the graphs' probabilities, in ``download``) or ``graph``.
        self.label_tail = choose_label_tail(label_tail, manifest, directory, on_cpu=on_cpu)
        task = task_outputs(manifest)
        self._returned = {**_RETURNED, "task": host_tail_outputs(task) if self.label_tail == "host" else task}
        self._stride = manifest.feature_stride
        core = self._core = ov.Core()
        self._device = _check_device(core, device)
        if precision not in _PRECISIONS:
            raise ConfigError(f"unknown OpenVINO precision {precision!r}; choose one of {list(_PRECISIONS)}")
        if threads is not None and not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
            raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
        self._config: dict[str, object] = {
            "INFERENCE_PRECISION_HINT": _PRECISIONS[precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = threads
        #: What the device computes in: OpenVINO's CPU plugin quietly runs f32 where the CPU has no native bf16.
        self.precision = precision if precision != "bf16" or native_bf16(core, self._device) else "f32"
        if self.precision != precision:
            warn_caller(
                f"precision=bf16 asked for, but this CPU has no native bf16 (OpenVINO's CPU capabilities: "
                f"{', '.join(core.get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}): OpenVINO computes in f32 here; "
                "bf16 needs AVX512_BF16 or AMX", RuntimeWarning
            )
        files = manifest.files()
        self._files: dict[str, ModelFile] = {role: files[role] for role in _RETURNED}
        stats = (FLOW_STATS,) if any(spec.name == FLOW_STATS for spec in files["flow"].outputs) else ()  # not before issue 16
        self._returned["flow"] += stats
        if fused_graphs:
            self._files |= manifest.fused_files()
            # The key features and the task's outputs; the task's outputs and F's statistics.
            self._returned |= {"key_path": (names.FEAT, *self._returned["task"]), "propagate": (*self._returned["task"], *stats)}
        self.fused_paths = "key_path" in self._files and "propagate" in self._files
        # Read once; each frame size compiles a reshaped clone. F's graphs split at conv1 where they allow it.
        split_roles = ("flow", "propagate") if (on_cpu if key_flow_half is None else key_flow_half) else ()
        self._models: dict[str, ov.Model] = {}
        self._inputs: dict[str, tuple[TensorSpec, ...]] = {}
        #: Whether F's graphs read the key frame's half of conv1, computed once per key frame (as the ONNX Runtime
        #: backend's ``key_flow_half``; 0.82-0.86x the time of the demo model's propagation graph at 320x400).
        self.key_flow_half = False
        for role, entry in self._files.items():
            split = _read_split(directory / entry.file, role, entry) if role in split_roles else None
            if split is None:
                self._models[role], self._inputs[role] = _read_model(directory / entry.file, role, entry), entry.inputs
                continue
            self._models[role], self._models[KEY_FLOW_HALF], half = split
            self._inputs[role] = tuple(half if spec.name == names.KEY_FRAME else spec for spec in entry.inputs)
            self._inputs[KEY_FLOW_HALF] = tuple(spec for spec in entry.inputs if spec.name == names.KEY_FRAME)
            self.key_flow_half = True
        self._returned[KEY_FLOW_HALF] = (KEY_FLOW_HALF,)
        self._key_halves = KeyCache(lambda frames: [self._network(KEY_FLOW_HALF, frame).run({names.KEY_FRAME: frame})[0] for frame in frames])
        if self.label_tail == "host":
            self._models |= {role: _before_tail(self._models[role]) for role in ("task", "key_path", "propagate") if role in self._models}
        self._compiled: dict[tuple[int, int], dict[str, _Network]] = {}

    def networks(self, height: int, width: int) -> dict[str, _Network]:
        """The networks (four, and the fused ones) compiled for frames of ``height`` × ``width`` (compiled on first use, then cached)."""
        size = (height, width)
        if size not in self._compiled:
            self.sizes.check(height, width)
            self._compiled[size] = {role: self._compile(role, height, width) for role in self._models}
        return self._compiled[size]

    def _compile(self, role: str, height: int, width: int) -> _Network:
        model = self._models[role].clone()
        model.reshape({spec.name: ov.PartialShape(static_shape(spec.shape, height, width)) for spec in self._inputs[role]})
        compiled = self._core.compile_model(model, self._device, self._config)
        outputs = tuple(
            (name, compiled.output(name).get_element_type(), compiled.output(name).get_shape()) for name in self._returned[role]
        )
        return _Network(request=compiled.create_infer_request(), outputs=outputs)

    def _at_feature_size(self, feat: ov.Tensor) -> dict[str, _Network]:
        height, width = feat.shape[2:]
        return self.networks(height * self._stride, width * self._stride)

    def upload(self, image: np.ndarray) -> FrameHandle:
        self.networks(*image.shape[:2])  # compile here, on a new size, so that the stages' timings stay steady
        return ov.Tensor(np.ascontiguousarray(image[None]), shared_memory=False)  # a copy: the caller may reuse image

    def feature(self, frame: FrameHandle) -> FeatureHandle:
        return self.networks(*frame.shape[1:3])["feature"].run({names.FRAME: frame})[0]

    def _network(self, role: str, frame: FrameHandle) -> _Network:
        return self.networks(*frame.shape[1:3])[role]

    def _key_input(self, role: str, key_frame: FrameHandle) -> dict[str, ov.Tensor]:
        """What the graph ``role`` reads of the key frame: the frame, or (``key_flow_half``) its half of F's conv1."""
        if names.KEY_FRAME in {spec.name for spec in self._inputs[role]}:
            return {names.KEY_FRAME: key_frame}
        return {KEY_FLOW_HALF: self._key_halves.of([key_frame])[0]}

    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        return tuple(self._network("flow", frame).run({**self._key_input("flow", key_frame), names.FRAME: frame}))

    def flow_statistics(self, flow: FlowHandle) -> FlowStatistics | None:
        return FlowStatistics.from_array(flow[2].data) if len(flow) > 2 else None

    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        flow_field, scale = flow[:2]
        inputs = {names.KEY_FEAT: key_feat, names.FLOW: flow_field, names.SCALE: scale}
        return self._at_feature_size(flow_field)["warp"].run(inputs)[0]

    def task(self, feat: FeatureHandle) -> LabelHandle:
        outputs = self._at_feature_size(feat)["task"].run({names.FEAT: feat})
        return task_handle(outputs)

    def key_path(self, frame: FrameHandle, lap: Lap = no_lap) -> tuple[FeatureHandle, LabelHandle]:
        if "key_path" not in self._files:
            return super().key_path(frame, lap)
        feat, *task = self.networks(*frame.shape[1:3])["key_path"].run({names.FRAME: frame})
        lap("key_path")
        return feat, task_handle(task)

    def propagate(
        self,
        key_frame: FrameHandle,
        key_feat: FeatureHandle,
        frame: FrameHandle,
        lap: Lap = no_lap,
        *,
        statistics: bool = False,
    ) -> tuple[LabelHandle, FlowStatistics | None]:
        if "propagate" not in self._files:
            return super().propagate(key_frame, key_feat, frame, lap, statistics=statistics)
        inputs = {**self._key_input("propagate", key_frame), names.FRAME: frame, names.KEY_FEAT: key_feat}
        outputs = self._network("propagate", frame).run(inputs)
        lap("propagate")
        count = len(self._returned["task"])
        task, stats = outputs[:count], outputs[count:]
        found = FlowStatistics.from_array(stats[0].data) if statistics and stats else None
        return task_handle(task), found

    def download(self, labels: LabelHandle) -> np.ndarray | Detections:
        if isinstance(labels, tuple):  # a detection export's boxes, scores, classes, count
            return Detections.from_padded(*(tensor.data[0] for tensor in labels))
        if self.label_tail == "host":  # the handle holds the probabilities on the feature grid
            return labels_from_probs(labels.data[0])
        return np.array(labels.data[0], dtype=np.uint8)

    def close(self) -> None:
        self._compiled.clear()
        self._models.clear()


def _check_device(core: ov.Core, device: str) -> str:
    """``device`` if OpenVINO can run on it here; a ConfigError listing the devices it has otherwise."""
    available = core.available_devices
    if not isinstance(device, str) or not device:
        raise ConfigError(f"device must be an OpenVINO device name such as 'CPU', got {device!r}")
    base = device.split(":")[0].split(".")[0].upper()
    if base in _VIRTUAL_DEVICES or device in available or base in {d.split(".")[0] for d in available}:
        return device
    raise ConfigError(
        f"OpenVINO device {device!r} is not available here (available: {available}, or one of {list(_VIRTUAL_DEVICES)}); "
        f"install its driver (GPU, NPU) or use device='CPU'"
    )


BACKEND = OpenVINOBackend
