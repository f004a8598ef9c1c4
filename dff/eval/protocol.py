"""The paper's evaluation protocol (Section 5.2) for the modes of Table 4, with mIoU and speed.

For each labelled frame i and key frame duration l, the l pairs (k, i), k = i − l + 1 … i, are
evaluated and pooled into one confusion matrix: the result of frame i is N_task(f_k) for k = i
and N_task(propagated f_k) for k < i. Key frames before a sequence's first frame are left out
(k ≥ 0). Mode ``frame`` is the per-frame network, i.e. only the pair (i, i).

Predictions are the score maps bilinearly upsampled to the label's own size (before any
``resize`` of the frames), then argmax; mIoU is :func:`dff.metrics.mean_iou`.

Speed: the mean time of a key frame (N_feat and N_task) and of a non-key frame (propagation and
N_task), both from the normalised frames to the score maps (the frames are read, resized and
normalised before the clock starts), give Algorithm 1's throughput with one key frame in every
l: l / (t_key + (l − 1) · t_non_key) frames per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from dff.config import ModelConfig
from dff.data.pairs import Size, image_tensor
from dff.data.sequence import LabelledSequence
from dff.errors import ConfigError
from dff.eval.propagation import CopyPropagation, DISPreset, FlowNetPropagation, FrameInputs, OpticalFlowPropagation
from dff.frames import check_frame_size
from dff.metrics import SegmentationScore, class_iou
from dff.models import DeepFeatureFlow
from dff.models.preprocess import FrameNormalizer
from dff.train.data import VideoConfig

Mode = Literal["frame", "dff", "copy", "sff"]
MODES: tuple[str, ...] = ("frame", "dff", "copy", "sff")

T = TypeVar("T")
Propagation = Callable[[torch.Tensor, FrameInputs, FrameInputs], torch.Tensor]


@dataclass(frozen=True, kw_only=True)
class ModeResult:
    """One row of Table 4."""

    mode: str
    key_interval: int
    miou: float
    class_iou: tuple[float | None, ...]
    labelled_frames: int
    pairs: int
    key_ms: float
    non_key_ms: float | None
    fps: float


def mode_propagation(mode: str, model: DeepFeatureFlow, sff_preset: DISPreset) -> Propagation | None:
    """How ``mode`` gets a non-key frame's features from f_k; None for ``frame`` (every frame a key frame)."""
    if mode == "dff":
        return FlowNetPropagation(model)
    if mode == "copy":
        return CopyPropagation()
    if mode == "sff":
        return OpticalFlowPropagation(preset=sff_preset)
    if mode == "frame":
        return None
    raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")


class CallClock:
    """Wall time of calls, made exact on GPUs by synchronising before reading the clock.

    The first call is not counted when there are others: it pays one-off costs (allocations, kernel selection).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: list[float] = []

    def time(self, fn: Callable[[], T]) -> T:
        self._sync()
        start = time.perf_counter()
        out = fn()
        self._sync()
        self.seconds.append(time.perf_counter() - start)
        return out

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def mean_ms(self) -> float | None:
        counted = self.seconds[1:] or self.seconds
        return 1000 * float(np.mean(counted)) if counted else None


@torch.inference_mode()
def evaluate(
    model: DeepFeatureFlow,
    sequences: Sequence[LabelledSequence],
    *,
    mode: Mode,
    key_interval: int = 5,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    resize: Size | None = None,
    sff_preset: DISPreset = "medium",
    device: torch.device | str = "cpu",
) -> ModeResult:
    """Evaluate ``mode`` with key frame duration ``key_interval`` (ignored by ``frame``) on the labelled frames of ``sequences``."""
    if not (key_interval >= 1):
        raise ValueError(f"key_interval must be >= 1, got {key_interval}")
    device = torch.device(device)
    propagation = mode_propagation(mode, model, sff_preset)
    interval = 1 if propagation is None else key_interval
    model = model.eval().to(device)
    normalizer = FrameNormalizer(mean=mean, std=std).to(device)
    score = SegmentationScore(num_classes=num_classes)
    key_clock, non_key_clock = CallClock(device), CallClock(device)
    labelled = pairs = 0

    def key_frame(frame: FrameInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 1, lines 8-9: f_k and y_k."""
        feat = model.key(frame.tensor)
        return feat, model.task(feat)

    for sequence in sequences:
        frames: dict[int, FrameInputs] = {}
        keys: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def inputs(t: int) -> FrameInputs:
            if t not in frames:
                image = resized_frame(sequence.image(t), resize)
                check_frame_size(*image.shape[:2])
                frames[t] = FrameInputs(tensor=normalizer(image_tensor(image)[None].to(device)), image=image)
            return frames[t]

        for i in sorted(sequence.labelled_frames):
            first = max(0, i - interval + 1)
            # Labelled frames come in order: frames and features before ``first`` are no longer needed.
            for cache in (frames, keys):
                for t in [t for t in cache if t < first]:
                    del cache[t]
            _, label = sequence.image_and_label(i)
            labelled += 1
            for k in range(first, i + 1):
                if k not in keys:
                    frame = inputs(k)
                    keys[k] = key_clock.time(lambda: key_frame(frame))
                key_feat, key_scores = keys[k]
                if k == i:
                    scores = key_scores
                else:
                    key, current = inputs(k), inputs(i)
                    scores = non_key_clock.time(lambda: model.task(propagation(key_feat, key, current)))  # type: ignore[misc]
                score.update(_predict(scores, label.shape), label)
                pairs += 1

    if not labelled:
        raise ValueError("the sequences have no labelled frame to evaluate")
    key_ms = key_clock.mean_ms
    non_key_ms = non_key_clock.mean_ms
    seconds = (key_ms + (interval - 1) * (non_key_ms or 0.0)) / 1000  # type: ignore[operator]
    return ModeResult(
        mode=mode,
        key_interval=interval,
        miou=score.miou,
        class_iou=tuple(None if np.isnan(v) else float(v) for v in class_iou(score.confusion)),
        labelled_frames=labelled,
        pairs=pairs,
        key_ms=key_ms,  # type: ignore[arg-type]
        non_key_ms=non_key_ms,
        fps=interval / seconds,
    )


def check_class_count(config: ModelConfig, video: VideoConfig, class_names: Sequence[str]) -> None:
    """ConfigError unless the model has as many classes as the data it is scored on."""
    if len(class_names) != config.num_classes:
        raise ConfigError(
            f"the model has {config.num_classes} classes but the {video.dataset} data has {len(class_names)}: {list(class_names)}"
        )


def resized_frame(image: np.ndarray, size: Size | None) -> np.ndarray:
    """``image`` at ``size`` (H, W): area averaging to shrink, bilinear to grow; unchanged for None."""
    if size is None or image.shape[:2] == tuple(size):
        return image
    shrink = size[0] * size[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _predict(scores: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Class ids at the label's size: score maps (1, C, h, w) upsampled bilinearly, then argmax."""
    upsampled = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
    return upsampled[0].argmax(dim=0).cpu().numpy()


def evaluate_modes(
    model: DeepFeatureFlow,
    config: ModelConfig,
    video: VideoConfig,
    *,
    modes: Sequence[Mode] = MODES,  # type: ignore[assignment]
    key_interval: int = 5,
    sff_preset: DISPreset = "medium",
    device: torch.device | str = "cpu",
) -> list[ModeResult]:
    """:func:`evaluate` for each of ``modes`` on the labelled frames ``video`` selects (a model of configuration ``config``)."""
    sequences = video.sequences()
    check_class_count(config, video, sequences[0].class_names)
    return [
        evaluate(
            model,
            sequences,
            mode=mode,
            key_interval=key_interval,
            num_classes=config.num_classes,
            mean=config.mean,
            std=config.std,
            resize=video.resize,
            sff_preset=sff_preset,
            device=device,
        )
        for mode in modes
    ]
