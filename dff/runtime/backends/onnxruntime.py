"""ONNX Runtime backend: the exported graphs in ONNX Runtime sessions, on the CPU, CUDA or TensorRT provider.

Tensors stay in ONNX Runtime's memory between the stages: every run goes through an I/O binding
whose outputs are ``OrtValue`` s on the provider's device, so the key frame and the key features
never travel to the host. Only the labels are copied back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from dff import manifest as names
from dff.errors import ConfigError
from dff.manifest import load_manifest
from dff.runtime.backend import Backend, FeatureHandle, FlowHandle, FrameHandle, LabelHandle

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


class OnnxRuntimeBackend(Backend):
    """The ONNX files of an export directory (``model``), hashes checked, in one session per network.

    ``provider``: ``cpu``, ``cuda`` or ``tensorrt`` (the latter two need onnxruntime-gpu);
    ``engine_cache_dir``: where the TensorRT provider keeps its engines; ``threads``: intra-op
    threads per session (ONNX Runtime's default when None); ``spin_threads``: let idle intra-op threads
    spin, as ONNX Runtime does by default. Off here: the four sessions run one after another, and
    the spinning threads of the idle ones take the cores from the running one (on 2 CPU cores that
    made every stage several times slower).
    """

    name = "onnxruntime"

    def __init__(
        self,
        *,
        model: str | Path,
        provider: Provider = "cpu",
        device_id: int = 0,
        engine_cache_dir: str | Path | None = None,
        threads: int | None = None,
        spin_threads: bool = False,
    ) -> None:
        directory = Path(model)
        manifest = load_manifest(directory)
        self.sizes = manifest.sizes
        self.class_names = manifest.class_names
        # OrtValues and bound outputs live where the provider computes: host memory for the CPU.
        self._device = ("cpu", 0) if provider == "cpu" else ("cuda", device_id)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin_threads else "0")
        providers = _providers(provider, device_id, None if engine_cache_dir is None else Path(engine_cache_dir))
        files = manifest.files()
        self._sessions = {
            role: ort.InferenceSession(str(directory / files[role].file), options, providers=providers)
            for role in ("feature", "flow", "warp", "task")
        }
        # One binding per session, cleared before each run: creating a binding per call costs 5-10 µs a stage.
        # Outputs are allocated anew on each run, so handles returned earlier keep their memory.
        self._bindings = {role: session.io_binding() for role, session in self._sessions.items()}

    def _run(self, role: str, inputs: dict[str, ort.OrtValue], outputs: tuple[str, ...]) -> list[ort.OrtValue]:
        binding = self._bindings[role]
        binding.clear_binding_inputs()
        binding.clear_binding_outputs()
        for name, value in inputs.items():
            binding.bind_ortvalue_input(name, value)
        for name in outputs:
            binding.bind_output(name, *self._device)
        self._sessions[role].run_with_iobinding(binding)
        return binding.get_outputs()

    def upload(self, image: np.ndarray) -> FrameHandle:
        # On the CPU an OrtValue wraps the array's memory: copy so that the caller may reuse its buffer.
        frame = image[None].copy() if self._device[0] == "cpu" else image[None]
        return ort.OrtValue.ortvalue_from_numpy(frame, *self._device)

    def feature(self, frame: FrameHandle) -> FeatureHandle:
        return self._run("feature", {names.FRAME: frame}, (names.FEAT,))[0]

    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        return tuple(self._run("flow", {names.KEY_FRAME: key_frame, names.FRAME: frame}, (names.FLOW, names.SCALE)))

    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        flow_field, scale = flow
        return self._run("warp", {names.KEY_FEAT: key_feat, names.FLOW: flow_field, names.SCALE: scale}, (names.FEAT,))[0]

    def task(self, feat: FeatureHandle) -> LabelHandle:
        return self._run("task", {names.FEAT: feat}, (names.LABELS,))[0]

    def download(self, labels: LabelHandle) -> np.ndarray:
        return np.array(labels.numpy()[0], dtype=np.uint8)

    def close(self) -> None:
        self._bindings.clear()
        self._sessions.clear()


BACKEND = OnnxRuntimeBackend
