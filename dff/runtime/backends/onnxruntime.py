"""ONNX Runtime backend: the exported graphs in ONNX Runtime sessions, on the CPU, CUDA or TensorRT provider.

Tensors stay in ONNX Runtime's memory between the stages: every run goes through an I/O binding
whose outputs are ``OrtValue`` s on the provider's device, so the key frame and the key features
never travel to the host. Only the labels are copied back.

Batches run as one session call per stage: the per-frame handles are stacked along the batch axis
on the device, and the batch's outputs are split back into per-frame handles. On the CPU both are
numpy operations on ONNX Runtime's own memory (there the device *is* host memory; a split item is
a view that keeps the batch alive); on other devices they are one-node Concat and Split graphs run
by the same provider (:class:`DeviceStacking`), so nothing crosses to the host.

Labels: on the CPU provider the task graph's tail (×16 upsampling and ArgMax at frame size) runs on the host, sparsely
and with the same labels (:mod:`dff.runtime.label_tail`): the sessions of ``task.onnx`` and the fused graphs end at
``probs``, and ``download`` computes the labels from them.

Threads: ``InferenceSession.run_with_iobinding`` may be called from many threads at once, but an
I/O binding holds the inputs and outputs of one run, so each thread gets its own bindings (a
thread-local lookup, well under a microsecond). Sharing one set of bindings between threads was
what failed ("Unexpected input data type", "Fetches vector", arena assertions).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnxruntime.capi import onnxruntime_pybind11_state as ortstate
from onnx import TensorProto, helper

from dff import manifest as names
from dff.errors import ConfigError
from dff.manifest import invalid_model, load_manifest
from dff.runtime.adaptive_signals import FLOW_STATS, FlowStatistics
from dff.runtime.backend import Backend, FeatureHandle, FlowHandle, FrameHandle, LabelHandle, Lap, no_lap
from dff.runtime.detections import Detections, task_handle, task_outputs
from dff.runtime import gather_sample
from dff.runtime.key_cache import KeyCache
from dff.runtime.key_flow_half import KEY_FLOW_HALF, split_key_half
from dff.runtime.label_tail import LabelTail, choose_label_tail, graph_before_tail, host_tail_outputs, labels_from_probs

Provider = Literal["cpu", "cuda", "tensorrt"]
_PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider"}


def _providers(provider: Provider, device_id: int, engine_cache_dir: Path | None) -> list[str | tuple[str, dict]]:
    """The provider list for a session, the chosen one first, falling back to CUDA and the CPU per node."""
    available = ort.get_available_providers()
    if provider not in _PROVIDER_NAMES:
        raise ConfigError(f"unknown ONNX Runtime provider {provider!r}; choose one of {list(_PROVIDER_NAMES)}")
    if _PROVIDER_NAMES[provider] not in available:
        raise ConfigError(
            f"ONNX Runtime provider {provider!r} ({_PROVIDER_NAMES[provider]}) is not available in this onnxruntime "
            f"(available: {available}); install onnxruntime-gpu for 'cuda' and 'tensorrt', or use provider='cpu'"
        )
    chain: list[str | tuple[str, dict]] = []
    if provider == "tensorrt":
        options: dict[str, object] = {"device_id": device_id}
        if engine_cache_dir is not None:
            # Building TensorRT engines takes minutes; the cache makes later sessions start in seconds.
            Path(engine_cache_dir).mkdir(parents=True, exist_ok=True)
            options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(engine_cache_dir))
        chain.append((_PROVIDER_NAMES["tensorrt"], options))
    if provider in ("tensorrt", "cuda"):
        chain.append((_PROVIDER_NAMES["cuda"], {"device_id": device_id}))
    chain.append(_PROVIDER_NAMES["cpu"])
    return chain


class ThreadBindings:
    """One I/O binding per session and per thread: a binding is the state of one run in flight."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, key: object, session: ort.InferenceSession) -> ort.IOBinding:
        bindings = getattr(self._local, "bindings", None)
        if bindings is None:
            bindings = self._local.bindings = {}
        binding = bindings.get(key)
        if binding is None:
            binding = bindings[key] = session.io_binding()
        return binding


def run_bound(
    binding: ort.IOBinding,
    session: ort.InferenceSession,
    inputs: dict[str, ort.OrtValue],
    outputs: Sequence[str],
    device: tuple[str, int],
) -> list[ort.OrtValue]:
    """One run of ``session`` through ``binding``: OrtValue inputs, outputs allocated anew on ``device``."""
    binding.clear_binding_inputs()
    binding.clear_binding_outputs()
    for name, value in inputs.items():
        binding.bind_ortvalue_input(name, value)
    for name in outputs:
        binding.bind_output(name, *device)
    session.run_with_iobinding(binding)
    values = binding.get_outputs()
    # The binding would otherwise keep the last run's tensors alive until its next run.
    binding.clear_binding_inputs()
    binding.clear_binding_outputs()
    return values


class DeviceStacking:
    """Stacking OrtValues along the batch axis and splitting them again, on the provider's device.

    One-node graphs (Concat of k inputs, Split into k outputs, both on axis 0), built in memory once
    per (k, element type, rank) and run by the same providers as the models, so that gathering the
    streams' key frames and key features never copies them through the host.
    """

    #: ONNX element types of the tensors a backend stacks: uint8 frames and labels, float16/float32 features.
    ELEMENT_TYPES = {
        "tensor(uint8)": TensorProto.UINT8,
        "tensor(float)": TensorProto.FLOAT,
        "tensor(float16)": TensorProto.FLOAT16,
    }

    def __init__(self, options: ort.SessionOptions, providers: list, device: tuple[str, int]) -> None:
        self._options = options
        self._providers = providers
        self._device = device
        self._sessions: dict[tuple, ort.InferenceSession] = {}
        self._bindings = ThreadBindings()
        self._lock = threading.Lock()

    def _session(self, op: str, count: int, value: ort.OrtValue) -> tuple[tuple, ort.InferenceSession]:
        key = (op, count, value.data_type(), len(value.shape()))
        with self._lock:  # building a session is rare; two threads must not both build it
            if key not in self._sessions:
                self._sessions[key] = self._build(op, count, self.ELEMENT_TYPES[value.data_type()], len(value.shape()))
        return key, self._sessions[key]

    def _build(self, op: str, count: int, element: int, rank: int) -> ort.InferenceSession:
        dims = [f"d{i}" for i in range(rank)]
        if op == "concat":
            inputs = [helper.make_tensor_value_info(f"x{i}", element, dims) for i in range(count)]
            outputs = [helper.make_tensor_value_info("y", element, None)]
            node = helper.make_node("Concat", [f"x{i}" for i in range(count)], ["y"], axis=0)
        else:
            inputs = [helper.make_tensor_value_info("x", element, dims)]
            outputs = [helper.make_tensor_value_info(f"y{i}", element, None) for i in range(count)]
            node = helper.make_node("Split", ["x"], [f"y{i}" for i in range(count)], axis=0, num_outputs=count)
        model = helper.make_model(
            helper.make_graph([node], op, inputs, outputs), opset_imports=[helper.make_opsetid("", 18)]
        )
        model.ir_version = 8
        return ort.InferenceSession(model.SerializeToString(), self._options, providers=self._providers)

    def stack(self, values: Sequence[ort.OrtValue]) -> ort.OrtValue:
        key, session = self._session("concat", len(values), values[0])
        inputs = {f"x{i}": value for i, value in enumerate(values)}
        return run_bound(self._bindings.get(key, session), session, inputs, ["y"], self._device)[0]

    def split(self, value: ort.OrtValue) -> list[ort.OrtValue]:
        count = value.shape()[0]
        key, session = self._session("split", count, value)
        outputs = [f"y{i}" for i in range(count)]
        return run_bound(self._bindings.get(key, session), session, {"x": value}, outputs, self._device)


class HostStacking:
    """The same on the CPU provider, where ONNX Runtime's tensors are host memory: numpy does it in place."""

    @staticmethod
    def stack(values: Sequence[ort.OrtValue]) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.concatenate([value.numpy() for value in values]))

    @staticmethod
    def split(value: ort.OrtValue) -> list[ort.OrtValue]:
        """``value``: a run's output, in ONNX Runtime's memory (its numpy view keeps the tensor alive)."""
        # Views of the batch's memory; each OrtValue keeps its view, and the view the batch, alive.
        array = value.numpy()
        return [ort.OrtValue.ortvalue_from_numpy(array[i : i + 1]) for i in range(len(array))]


#: The row gathers' input: the key features as (N, Hk, Wk, C).
_KEY_FEAT_NHWC = gather_sample.nhwc_name(names.KEY_FEAT)

#: What ONNX Runtime raises for a file it cannot read as a model (a hash that matches proves only that nobody changed it).
_INVALID_MODEL = (ortstate.InvalidProtobuf, ortstate.InvalidGraph, ortstate.InvalidArgument, ortstate.Fail)


def _session(
    path: Path,
    role: str,
    options: ort.SessionOptions,
    providers: list,
    *,
    before_tail: bool = False,
    gather: bool = False,
    key_half: bool = False,
) -> tuple[ort.InferenceSession, onnx.ModelProto | None]:
    """A session of the model at ``path``; with ``before_tail`` cut before its labels' tail (:mod:`dff.runtime.label_tail`),
    with ``gather`` its GridSample as row gathers (:mod:`dff.runtime.gather_sample`; reading the key features' rows
    from one more input, transposed once per key frame), with ``key_half`` reading the key
    frame's half of F's conv1 in place of the key frame where the graph allows it (:mod:`dff.runtime.key_flow_half`);
    all in memory, the file unchanged. Returns the session and, where it reads the key half, the graph computing it."""
    try:
        if not (before_tail or gather or key_half):
            return ort.InferenceSession(str(path), options, providers=providers), None
        model = onnx.load(path)
        if before_tail:
            model = graph_before_tail(model)
        if gather:
            model, _ = gather_sample.gather_warp(model, nhwc_inputs=True)
        split = split_key_half(model) if key_half else None
        if split is not None:
            model = split.graph
        session = ort.InferenceSession(model.SerializeToString(), options, providers=providers)
        return session, None if split is None else split.key_half
    except (*_INVALID_MODEL, DecodeError, KeyError) as error:  # DecodeError, KeyError: onnx.load and the cut
        raise invalid_model(path, role, error) from None


class OnnxRuntimeBackend(Backend):
    """The ONNX files of an export directory (``model``), hashes checked, in one session per network.

    ``provider``: ``cpu``, ``cuda`` or ``tensorrt`` (the latter two need onnxruntime-gpu);
    ``engine_cache_dir``: where the TensorRT provider keeps its engines; ``threads``: intra-op
    threads per session (ONNX Runtime's default when None); ``spin_threads``: let idle intra-op threads
    spin, as ONNX Runtime does by default. Off here: the four sessions run one after another, and
    the spinning threads of the idle ones take the cores from the running one (on 2 CPU cores that
    made every stage several times slower). ``fused_graphs``: run the one-stream paths through the export's
    ``key_path.onnx`` and ``propagate.onnx`` where it has them, one session call a frame (False: stage by stage).
    ``label_tail``: ``host`` computes the labels from the task graph's probabilities on the host
    (:mod:`dff.runtime.label_tail`: the same labels; from 256×320 up 1.6-8x cheaper than the graph's tail on this
    machine's CPU, no gain at 128×128),
    ``graph`` takes the graph's labels; None (default): ``host`` on the CPU provider for segmentation exports
    with float32 probabilities, ``graph`` otherwise (a GPU computes the tail faster than the host).
    ``gather_warp``: run the warp's GridSample as row gathers (:mod:`dff.runtime.gather_sample`: the same samples,
    2-5x faster on the CPU provider); None (default): on the CPU provider.
    ``key_flow_half``: compute the key frame's half of F's first convolution once per key frame, not on every frame
    propagated from it (:mod:`dff.runtime.key_flow_half`: F's outputs equal to float rounding; 0.76-0.83x the time of
    the propagation graph of the demo model at 320x400); None (default): on the CPU provider.
    """

    name = "onnxruntime"
    native_batching = True

    def __init__(
        self,
        *,
        model: str | Path,
        provider: Provider = "cpu",
        device_id: int = 0,
        engine_cache_dir: str | Path | None = None,
        threads: int | None = None,
        spin_threads: bool = False,
        fused_graphs: bool = True,
        label_tail: LabelTail | None = None,
        gather_warp: bool | None = None,
        key_flow_half: bool | None = None,
    ) -> None:
        directory = Path(model)
        manifest = load_manifest(directory)
        self.sizes = manifest.sizes
        self.class_names = manifest.class_names
        self.task_kind = manifest.task
        #: Where the labels are computed: ``host`` (from the graphs' probabilities, in ``download``) or ``graph``.
        self.label_tail = choose_label_tail(label_tail, manifest, directory, on_cpu=provider == "cpu")
        host_tail = self.label_tail == "host"
        #: Whether the warp's GridSample runs as row gathers (warp.onnx and propagate.onnx, rewritten in memory).
        self.gather_warp = provider == "cpu" if gather_warp is None else gather_warp
        self._task_outputs = host_tail_outputs(task_outputs(manifest)) if host_tail else task_outputs(manifest)
        # OrtValues and bound outputs live where the provider computes: host memory for the CPU.
        self._device = ("cpu", 0) if provider == "cpu" else ("cuda", device_id)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_threads else "0")
        providers = _providers(provider, device_id, None if engine_cache_dir is None else Path(engine_cache_dir))
        files = manifest.files()
        # (M, S), and their statistics where flow.onnx has them (exports before issue 16 do not).
        self._flow_outputs = tuple(s.name for s in files["flow"].outputs if s.name in (names.FLOW, names.SCALE, FLOW_STATS))
        # Outputs of the fused graphs: the key features and the task's; the task's and F's statistics where it has them.
        self._fused_outputs = {"key_path": (names.FEAT, *self._task_outputs), "propagate": (*self._task_outputs, *self._flow_outputs[2:])}
        fused = manifest.fused_files() if fused_graphs else {}
        split = provider == "cpu" if key_flow_half is None else key_flow_half
        self._sessions: dict[str, ort.InferenceSession] = {}
        halves: dict[str, onnx.ModelProto] = {}  # by role: the graph computing the key half it reads
        for role, entry in {**{role: files[role] for role in ("feature", "flow", "warp", "task")}, **fused}.items():
            self._sessions[role], half = _session(
                directory / entry.file, role, options, providers,
                before_tail=host_tail and role in ("task", *fused), gather=self.gather_warp and role in ("warp", "propagate"),
                key_half=split and role in ("flow", "propagate"),
            )
            if half is not None:
                halves[role] = half
        #: Whether F's graphs read the key frame's half of conv1, computed once per key frame (those of flow.onnx's
        #: form: the flow graph and the fused one alike, both flow.onnx's nodes).
        self.key_flow_half = bool(halves)
        self._reads_half = halves
        if halves:
            key_half = halves.get("flow") or halves["propagate"]
            self._sessions[KEY_FLOW_HALF] = ort.InferenceSession(key_half.SerializeToString(), options, providers=providers)
        self._key_halves = KeyCache(lambda frames: self._run_batch(KEY_FLOW_HALF, {names.KEY_FRAME: frames}, (KEY_FLOW_HALF,))[0])
        self.fused_paths = "propagate" in self._sessions and "key_path" in self._sessions
        # The key features as the row gathers read them, (N, Hk, Wk, C): transposed once per key frame, not per frame.
        nhwc = {role: i.type for role, session in self._sessions.items() for i in session.get_inputs() if i.name == _KEY_FEAT_NHWC}
        self._reads_nhwc = set(nhwc)
        if nhwc:
            element = TensorProto.FLOAT16 if "tensor(float16)" in nhwc.values() else TensorProto.FLOAT
            graph = gather_sample.nhwc_graph(names.KEY_FEAT, element, 17)
            self._sessions[_KEY_FEAT_NHWC] = ort.InferenceSession(graph.SerializeToString(), options, providers=providers)
        self._key_nhwc = KeyCache(lambda feats: self._run_batch(_KEY_FEAT_NHWC, {names.KEY_FEAT: feats}, (_KEY_FEAT_NHWC,))[0])
        # Bindings are reused, per thread: creating one per call costs 5-10 µs a stage. Outputs are
        # allocated anew on each run, so handles returned earlier keep their memory.
        self._bindings = ThreadBindings()
        self._stacking = HostStacking() if provider == "cpu" else DeviceStacking(options, providers, self._device)

    def _run(self, role: str, inputs: dict[str, ort.OrtValue], outputs: tuple[str, ...]) -> list[ort.OrtValue]:
        session = self._sessions[role]
        return run_bound(self._bindings.get(role, session), session, inputs, outputs, self._device)

    def _run_batch(self, role: str, inputs: dict[str, Sequence[ort.OrtValue]], outputs: tuple[str, ...]) -> list[list[ort.OrtValue]]:
        """One run over per-frame handles stacked along the batch axis; per output, its per-frame handles."""
        stack = self._stacking.stack
        stacked = {name: values[0] if len(values) == 1 else stack(values) for name, values in inputs.items()}
        results = self._run(role, stacked, outputs)
        if len(next(iter(inputs.values()))) == 1:
            return [[value] for value in results]
        return [self._stacking.split(value) for value in results]

    def _key_inputs(self, role: str, key_frames: Sequence[FrameHandle]) -> tuple[str, list[ort.OrtValue]]:
        """What the graph ``role`` reads of ``key_frames``: the frames, or (``key_flow_half``) each one's half of F's
        conv1, computed for the frames that have none yet in one call, then kept while the frame's handle lives."""
        if role not in self._reads_half:
            return names.KEY_FRAME, list(key_frames)
        return KEY_FLOW_HALF, self._key_halves.of(key_frames)

    def _feat_inputs(self, role: str, key_feats: Sequence[FeatureHandle]) -> dict[str, list[ort.OrtValue]]:
        """What the graph ``role`` reads of ``key_feats``: the features, and (row gathers) each one's rows, transposed
        for the features that have none yet in one call, then kept while the features' handle lives."""
        if role not in self._reads_nhwc:
            return {names.KEY_FEAT: list(key_feats)}
        return {names.KEY_FEAT: list(key_feats), _KEY_FEAT_NHWC: self._key_nhwc.of(key_feats)}

    def upload(self, image: np.ndarray) -> FrameHandle:
        # On the CPU an OrtValue wraps the array's memory: copy so that the caller may reuse its buffer.
        frame = image[None].copy() if self._device[0] == "cpu" else image[None]
        return ort.OrtValue.ortvalue_from_numpy(frame, *self._device)

    def feature(self, frame: FrameHandle) -> FeatureHandle:
        return self._run("feature", {names.FRAME: frame}, (names.FEAT,))[0]

    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        key_name, (key,) = self._key_inputs("flow", [key_frame])
        return tuple(self._run("flow", {key_name: key, names.FRAME: frame}, self._flow_outputs))

    def flow_statistics(self, flow: FlowHandle) -> FlowStatistics | None:
        return FlowStatistics.from_array(flow[2].numpy()) if len(flow) > 2 else None

    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        flow_field, scale = flow[:2]
        inputs = {**self._feat_inputs("warp", [key_feat]), names.FLOW: [flow_field], names.SCALE: [scale]}
        return self._run_batch("warp", inputs, (names.FEAT,))[0][0]

    def task(self, feat: FeatureHandle) -> LabelHandle:
        outputs = self._run("task", {names.FEAT: feat}, self._task_outputs)
        return task_handle(outputs)

    def key_path(self, frame: FrameHandle, lap: Lap = no_lap) -> tuple[FeatureHandle, LabelHandle]:
        if "key_path" not in self._sessions:
            return super().key_path(frame, lap)
        feat, *task = self._run("key_path", {names.FRAME: frame}, self._fused_outputs["key_path"])
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
        if "propagate" not in self._sessions:
            return super().propagate(key_frame, key_feat, frame, lap, statistics=statistics)
        key_name, keys = self._key_inputs("propagate", [key_frame])
        inputs = {key_name: keys, names.FRAME: [frame], **self._feat_inputs("propagate", [key_feat])}
        outputs = [values[0] for values in self._run_batch("propagate", inputs, self._fused_outputs["propagate"])]
        lap("propagate")
        task, stats = outputs[: len(self._task_outputs)], outputs[len(self._task_outputs) :]
        found = FlowStatistics.from_array(stats[0].numpy()) if statistics and stats else None
        return task_handle(task), found

    def download(self, labels: LabelHandle) -> np.ndarray | Detections:
        if isinstance(labels, tuple):  # a detection export's boxes, scores, classes, count
            return Detections.from_padded(*(value.numpy()[0] for value in labels))
        if self.label_tail == "host":  # the handle holds the probabilities on the feature grid
            return labels_from_probs(labels.numpy()[0])
        return np.array(labels.numpy()[0], dtype=np.uint8)

    def upload_batch(self, images: Sequence[np.ndarray]) -> list[FrameHandle]:
        batch = np.stack(images)  # a copy: the caller may reuse its buffers
        if self._device[0] == "cpu":
            # An OrtValue over numpy memory does not keep that memory alive: each one holds its own view of it.
            return [ort.OrtValue.ortvalue_from_numpy(batch[i : i + 1]) for i in range(len(batch))]
        return self._stacking.split(ort.OrtValue.ortvalue_from_numpy(batch, *self._device))  # one transfer

    def feature_batch(self, frames: Sequence[FrameHandle]) -> list[FeatureHandle]:
        return self._run_batch("feature", {names.FRAME: frames}, (names.FEAT,))[0]

    def flow_batch(self, key_frames: Sequence[FrameHandle], frames: Sequence[FrameHandle]) -> list[FlowHandle]:
        key_name, keys = self._key_inputs("flow", key_frames)
        outputs = self._run_batch("flow", {key_name: keys, names.FRAME: frames}, self._flow_outputs)
        return list(zip(*outputs))

    def warp_batch(self, key_feats: Sequence[FeatureHandle], flows: Sequence[FlowHandle]) -> list[FeatureHandle]:
        inputs = {**self._feat_inputs("warp", key_feats), names.FLOW: [f[0] for f in flows], names.SCALE: [f[1] for f in flows]}
        return self._run_batch("warp", inputs, (names.FEAT,))[0]

    def task_batch(self, feats: Sequence[FeatureHandle]) -> list[LabelHandle]:
        outputs = self._run_batch("task", {names.FEAT: feats}, self._task_outputs)
        return outputs[0] if len(outputs) == 1 else list(zip(*outputs))

    def key_path_batch(self, frames: Sequence[FrameHandle]) -> tuple[list[FeatureHandle], list[LabelHandle]]:
        if not self.fused_paths:
            return super().key_path_batch(frames)
        feats, *task = self._run_batch("key_path", {names.FRAME: frames}, self._fused_outputs["key_path"])
        return feats, [task_handle(outputs) for outputs in zip(*task)]

    def propagate_batch(
        self,
        key_frames: Sequence[FrameHandle],
        key_feats: Sequence[FeatureHandle],
        frames: Sequence[FrameHandle],
        *,
        statistics: bool = False,
    ) -> tuple[list[LabelHandle], list[FlowStatistics | None]]:
        if not self.fused_paths:
            return super().propagate_batch(key_frames, key_feats, frames, statistics=statistics)
        key_name, keys = self._key_inputs("propagate", key_frames)
        inputs = {key_name: keys, names.FRAME: frames, **self._feat_inputs("propagate", key_feats)}
        outputs = self._run_batch("propagate", inputs, self._fused_outputs["propagate"])
        count = len(self._task_outputs)
        labels = [task_handle(task) for task in zip(*outputs[:count])]
        stats = outputs[count:]
        if not (statistics and stats):
            return labels, [None] * len(frames)
        return labels, [FlowStatistics.from_array(value.numpy()) for value in stats[0]]

    def download_batch(self, labels: Sequence[LabelHandle]) -> list[np.ndarray] | list[Detections]:
        if isinstance(labels[0], tuple) or self.label_tail == "host":  # detections, or probabilities: one frame at a time
            return [self.download(label) for label in labels]  # type: ignore[misc]
        # One transfer: the labels are stacked on the device first. ``stacked`` stays referenced while its
        # memory is read (on the CPU it is numpy memory, which its numpy view would not keep alive).
        stacked = labels[0] if len(labels) == 1 else self._stacking.stack(labels)
        return [np.array(item, dtype=np.uint8) for item in stacked.numpy()]

    def close(self) -> None:
        self._sessions.clear()


BACKEND = OnnxRuntimeBackend
