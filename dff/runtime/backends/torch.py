"""PyTorch backend: the modules of a checkpoint, eagerly, on the CPU or a CUDA device.

Runs under ``inference_mode`` with channels-last convolutions. On CUDA it can run in float16
(``half``) and replay each stage from a CUDA graph (``cuda_graphs``), captured once per frame
size; both are GPU-only options.

Batches are one module call per stage: per-frame handles are concatenated on the device and the
outputs split into per-frame views (which keep the batch alive). With CUDA graphs each batch size
is a shape of its own, so it gets its own graph. Batched convolutions may use other kernels than
batch 1 (oneDNN, cuDNN), so batched labels can differ from single-frame ones in rare near-tie
pixels; ``benchmarks/bench_streams.py`` measures by how much.

Threads: eager modules under ``inference_mode`` keep no state between calls, so threads may share
them; a CUDA graph replays into static buffers, so each graph's replay and copy-out hold a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from dff.checkpoint import load_checkpoint
from dff.errors import ConfigError
from dff.frames import FEATURE_STRIDE, MIN_SIDE
from dff.manifest import SizeRange
from dff.models.preprocess import FrameNormalizer
from dff.models.task import class_ids
from dff.ops.flow_statistics import flow_statistics
from dff.ops.warp import warp
from dff.runtime.adaptive_signals import FlowStatistics
from dff.runtime.backend import Backend, FeatureHandle, FlowHandle, FrameHandle, LabelHandle
from dff.runtime.detections import Detections

#: The networks are fully convolutional: any multiple of 16 from 64 up works; the upper bound only keeps SizeRange finite.
MAX_SIDE = 8192

Tensors = torch.Tensor | tuple[torch.Tensor, ...]


class CudaGraphed:
    """``function`` of tensors replayed from a CUDA graph captured on the first call with each input shape.

    Outputs are cloned out of the graph's static buffers: a returned handle must own its memory
    (see :mod:`dff.runtime.backend`), and the next replay overwrites those buffers.
    """

    def __init__(self, function: Callable[..., Tensors], *, warmup_runs: int = 3) -> None:
        self.function = function
        self.warmup_runs = warmup_runs
        self._graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], Tensors]] = {}
        # Static buffers are shared by every caller: copy-in, replay and copy-out are one critical section.
        self._lock = threading.Lock()

    def __call__(self, *inputs: torch.Tensor) -> Tensors:
        signature = tuple((t.shape, t.dtype) for t in inputs)
        with self._lock:
            if signature not in self._graphs:
                self._graphs[signature] = self._capture(inputs)
            graph, static_inputs, static_outputs = self._graphs[signature]
            for static, tensor in zip(static_inputs, inputs):
                static.copy_(tensor)
            graph.replay()
            if isinstance(static_outputs, tuple):
                return tuple(t.clone() for t in static_outputs)
            return static_outputs.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], Tensors]:
        static_inputs = tuple(t.clone() for t in inputs)
        # Warm up on a side stream, as capture requires (cuDNN picks its algorithms here).
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_runs):
                self.function(*static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = self.function(*static_inputs)
        return graph, static_inputs, static_outputs


class TorchBackend(Backend):
    """The model of a checkpoint file (``model``) on ``device`` (``cpu``, ``cuda``, ``cuda:1`` …).

    ``half``: float16 weights and activations (CUDA only); ``cuda_graphs``: replay each stage
    from a CUDA graph (CUDA only). Frame handles are the normalised frames, so the key frame is
    normalised once, in ``upload``.
    """

    name = "torch"
    native_batching = True

    def __init__(self, *, model: str | Path, device: str = "cpu", half: bool = False, cuda_graphs: bool = False) -> None:
        self.device = torch.device(device)
        if (half or cuda_graphs) and self.device.type != "cuda":
            raise ConfigError(f"half and cuda_graphs need a CUDA device, got device={device!r}")
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} asked for but torch sees no CUDA device; use device='cpu'")
        network, config = load_checkpoint(model)
        self.dtype = torch.float16 if half else torch.float32
        self.network = network.to(self.device, self.dtype, memory_format=torch.channels_last).eval()
        self.normalizer = FrameNormalizer(mean=config.mean, std=config.std, layout="nhwc_bgr").to(self.device)
        self.class_names = config.names
        self.task_kind = config.task
        # A detector runs the very graph `dff export` writes (proposals, PS-RoI pooling, NMS), eagerly.
        self._detector = detection_graph(self.network.task_net).to(self.device) if config.task == "detection" else None
        self.sizes = SizeRange(
            min_height=MIN_SIDE, min_width=MIN_SIDE, max_height=MAX_SIDE, max_width=MAX_SIDE, multiple=FEATURE_STRIDE
        )
        self.asynchronous = self.device.type == "cuda"
        stages = (self._feature, self._flow, self._warp, self._task)
        if cuda_graphs:
            stages = tuple(CudaGraphed(stage) for stage in stages)
        self._run_feature, self._run_flow, self._run_warp, self._run_task = stages

    # The stages as pure functions of device tensors (what CUDA graphs capture).
    def _feature(self, frame: torch.Tensor) -> torch.Tensor:
        return self.network.key(frame)

    def _flow(self, key_frame: torch.Tensor, frame: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flow, scale = self.network.flow_net(key_frame, frame)
        return flow, scale, flow_statistics(flow, scale)  # as flow.onnx computes them

    def _warp(self, key_feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        return warp(key_feat, flow, scale)

    def _task(self, feat: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self._detector is not None:
            return self._detector(feat)
        size = (feat.shape[2] * FEATURE_STRIDE, feat.shape[3] * FEATURE_STRIDE)
        return class_ids(self.network.task_net.probabilities(feat, size)).to(torch.uint8)

    @torch.inference_mode()
    def upload(self, image: np.ndarray) -> FrameHandle:
        # The normaliser writes a new tensor, so the caller may reuse ``image`` as soon as this returns.
        frame = torch.from_numpy(image).to(self.device)[None]
        return self.normalizer(frame).to(self.dtype).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def feature(self, frame: FrameHandle) -> FeatureHandle:
        return self._run_feature(frame)

    @torch.inference_mode()
    def flow(self, key_frame: FrameHandle, frame: FrameHandle) -> FlowHandle:
        return self._run_flow(key_frame, frame)

    @torch.inference_mode()
    def warp(self, key_feat: FeatureHandle, flow: FlowHandle) -> FeatureHandle:
        return self._run_warp(key_feat, *flow[:2])

    def flow_statistics(self, flow: FlowHandle) -> FlowStatistics:
        return FlowStatistics.from_array(flow[2].cpu().numpy())

    @torch.inference_mode()
    def task(self, feat: FeatureHandle) -> LabelHandle:
        return self._run_task(feat)

    def download(self, labels: LabelHandle) -> np.ndarray | Detections:
        if isinstance(labels, tuple):  # boxes, scores, classes, count of a detector
            return Detections.from_padded(*(value[0].cpu().numpy() for value in labels))
        # On the CPU the array shares the tensor's memory; the tensor is this frame's alone (handles own their memory).
        return labels[0].cpu().numpy()

    @torch.inference_mode()
    def upload_batch(self, images: Sequence[np.ndarray]) -> list[FrameHandle]:
        frames = torch.from_numpy(np.stack(images)).to(self.device)
        return list(self.normalizer(frames).to(self.dtype).contiguous(memory_format=torch.channels_last).split(1))

    @torch.inference_mode()
    def feature_batch(self, frames: Sequence[FrameHandle]) -> list[FeatureHandle]:
        return list(self._run_feature(_cat(frames)).split(1))

    @torch.inference_mode()
    def flow_batch(self, key_frames: Sequence[FrameHandle], frames: Sequence[FrameHandle]) -> list[FlowHandle]:
        flow, scale, statistics = self._run_flow(_cat(key_frames), _cat(frames))
        return list(zip(flow.split(1), scale.split(1), statistics.split(1)))

    @torch.inference_mode()
    def warp_batch(self, key_feats: Sequence[FeatureHandle], flows: Sequence[FlowHandle]) -> list[FeatureHandle]:
        feat = self._run_warp(_cat(key_feats), _cat([f[0] for f in flows]), _cat([f[1] for f in flows]))
        return list(feat.split(1))

    @torch.inference_mode()
    def task_batch(self, feats: Sequence[FeatureHandle]) -> list[LabelHandle]:
        out = self._run_task(_cat(feats))
        if isinstance(out, tuple):
            return list(zip(*(value.split(1) for value in out)))
        return list(out.split(1))

    def download_batch(self, labels: Sequence[LabelHandle]) -> list[np.ndarray] | list[Detections]:
        if isinstance(labels[0], tuple):
            return [self.download(label) for label in labels]  # type: ignore[misc]
        host = _cat(labels).cpu().numpy()  # one transfer; the rows below are copies the caller owns
        return [np.array(item) for item in host]

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def close(self) -> None:
        self.__dict__.pop("network", None)


def _cat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-frame handles as one batch on their device (no copy for a batch of one)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(list(tensors))


BACKEND = TorchBackend


def detection_graph(task_net: torch.nn.Module) -> torch.nn.Module:
    """The exported detection graph around ``task_net``, keeping as many boxes as the head's own cap."""
    from dff.export.detection_graph import DetectionGraph

    return DetectionGraph(task_net=task_net, max_detections=task_net.detection.max_detections).eval()
