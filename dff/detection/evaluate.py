"""The paper's evaluation protocol (Section 5.2) for detection: mAP@0.5 and speed per mode.

As :mod:`dff.eval.protocol` does for segmentation: for each labelled frame i and key frame
duration l, the l pairs (k, i), k = i − l + 1 … i (k ≥ 0), are evaluated, and every pair's
detections count as one frame of the mAP. Frame i's detections come from R-FCN on f_k for
k = i and on propagated features for k < i. Modes: ``frame`` is the per-frame network (l = 1),
``dff`` propagates with the model's F and W, ``copy`` reuses f_k unchanged, ``sff`` warps with
DIS optical flow (:mod:`dff.eval.propagation`). Frames resized for the network give boxes that
are scaled back to the frame's own size before they are scored.

:func:`evaluate_detection_modes` is ``dff eval``'s entry for a detector: the modes on the
labelled frames a :class:`~dff.train.data.VideoConfig` selects (synthetic video: its boxes).

Speed: mean times of a key frame (N_feat, N_task and R-FCN's per-region stage, proposals to
final NMS) and of a non-key frame (propagation instead of N_feat) from the normalised frame to
the detections give Algorithm 1's throughput l / (t_key + (l − 1) · t_non_key). The first call
of each is not counted (one-off allocations).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dff.config import ModelConfig
from dff.data.pairs import Size, image_tensor
from dff.detection.ground_truth import AnnotatedFrames, BoxedSequence, SyntheticBoxes
from dff.detection.head import Detections, RFCNTaskNet
from dff.detection.metrics import DetectionScore
from dff.errors import ConfigError
from dff.eval.propagation import DISPreset, FrameInputs
from dff.eval.protocol import MODES, CallClock, Mode, check_class_count, mode_propagation, resized_frame
from dff.frames import check_frame_size
from dff.models import DeepFeatureFlow
from dff.models.preprocess import FrameNormalizer
from dff.train.data import LabelledFrames, VideoConfig


@dataclass(frozen=True, kw_only=True)
class DetectionResult:
    """One row of Table 4 for detection."""

    mode: str
    key_interval: int
    mean_ap: float
    class_ap: tuple[float | None, ...]
    labelled_frames: int
    pairs: int
    key_ms: float
    non_key_ms: float | None
    fps: float


@torch.inference_mode()
def evaluate_detection(
    model: DeepFeatureFlow,
    sequences: Sequence[BoxedSequence],
    *,
    mode: Mode,
    key_interval: int = 10,
    mean: Sequence[float],
    std: Sequence[float],
    resize: Size | None = None,
    sff_preset: DISPreset = "medium",
    device: torch.device | str = "cpu",
) -> DetectionResult:
    """Evaluate ``mode`` with key frame duration ``key_interval`` (ignored by ``frame``) on the labelled frames of ``sequences``.

    The paper's default l for ImageNet VID is 10.
    """
    head = model.task_net
    if not isinstance(head, RFCNTaskNet):
        raise ValueError(f"evaluate_detection needs a model whose task_net is an RFCNTaskNet, got {type(head).__name__}")
    if not (key_interval >= 1):
        raise ValueError(f"key_interval must be >= 1, got {key_interval}")
    device = torch.device(device)
    propagation = mode_propagation(mode, model, sff_preset)
    interval = 1 if propagation is None else key_interval
    model = model.eval().to(device)
    normalizer = FrameNormalizer(mean=mean, std=std).to(device)
    score = DetectionScore(num_classes=head.num_classes)
    key_timer, non_key_timer = CallClock(device), CallClock(device)
    labelled = pairs = 0

    def key_frame(frame: FrameInputs) -> tuple[torch.Tensor, Detections]:
        """Algorithm 1, lines 8-9: f_k and y_k."""
        feat = model.key(frame.tensor)
        return feat, head.detect(model.task(feat))[0]

    for sequence in sequences:
        frames: dict[int, FrameInputs] = {}
        keys: dict[int, tuple[torch.Tensor, Detections]] = {}
        to_frame = np.ones(4, np.float32)  # (x, y, x, y) from the network's pixels to the frame's (one size per sequence)

        def inputs(t: int) -> FrameInputs:
            if t not in frames:
                original = sequence.image(t)
                image = resized_frame(original, resize)
                check_frame_size(*image.shape[:2])
                to_frame[:] = np.tile(np.divide(original.shape[1::-1], image.shape[1::-1]), 2)
                frames[t] = FrameInputs(tensor=normalizer(image_tensor(image)[None].to(device)), image=image)
            return frames[t]

        for i in sorted(sequence.labelled_frames):
            first = max(0, i - interval + 1)
            for cache in (frames, keys):
                for t in [t for t in cache if t < first]:
                    del cache[t]
            truth = sequence.boxes(i)
            labelled += 1
            for k in range(first, i + 1):
                if k not in keys:
                    frame = inputs(k)
                    keys[k] = key_timer.time(lambda: key_frame(frame))
                key_feat, found = keys[k]
                if k < i:
                    key, current = inputs(k), inputs(i)
                    found = non_key_timer.time(lambda: head.detect(model.task(propagation(key_feat, key, current)))[0])  # type: ignore[misc]
                score.update(
                    boxes=found.boxes.cpu().numpy() * to_frame,
                    scores=found.scores.cpu().numpy(),
                    classes=found.classes.cpu().numpy(),
                    gt_boxes=truth.boxes,
                    gt_classes=truth.classes,
                )
                pairs += 1

    if not labelled:
        raise ValueError("the sequences have no labelled frame to evaluate")
    key_ms, non_key_ms = key_timer.mean_ms, non_key_timer.mean_ms
    seconds = (key_ms + (interval - 1) * (non_key_ms or 0.0)) / 1000  # type: ignore[operator]
    return DetectionResult(
        mode=mode,
        key_interval=interval,
        mean_ap=score.mean_ap,
        class_ap=tuple(None if np.isnan(v) else float(v) for v in score.class_ap[1:]),
        labelled_frames=labelled,
        pairs=pairs,
        key_ms=key_ms,  # type: ignore[arg-type]
        non_key_ms=non_key_ms,
        fps=interval / seconds,
    )


def detection_sequences(video: VideoConfig) -> list[BoxedSequence]:
    """The boxed sequences of ``video``, annotated on the labelled frames it selects (``frames``, ``frame_step``)."""
    if video.dataset != "synthetic":
        raise ConfigError(
            f"data.dataset {video.dataset} has per-pixel labels, not boxes: a detector is evaluated on the synthetic "
            "video's boxes (data.dataset: synthetic)"
        )
    found = []
    for sequence in video.sequences():
        whole = sequence.sequence if isinstance(sequence, LabelledFrames) else sequence
        found.append(AnnotatedFrames(SyntheticBoxes(whole), sequence.labelled_frames))  # type: ignore[arg-type]
    return found


def evaluate_detection_modes(
    model: DeepFeatureFlow,
    config: ModelConfig,
    video: VideoConfig,
    *,
    modes: Sequence[Mode] = MODES,  # type: ignore[assignment]
    key_interval: int = 10,
    sff_preset: DISPreset = "medium",
    device: torch.device | str = "cpu",
) -> list[DetectionResult]:
    """:func:`evaluate_detection` for each of ``modes`` on the labelled frames ``video`` selects (a detector of configuration ``config``)."""
    sequences = detection_sequences(video)
    check_class_count(config, video, sequences[0].class_names)
    return [
        evaluate_detection(
            model,
            sequences,
            mode=mode,
            key_interval=key_interval,
            mean=config.mean,
            std=config.std,
            resize=video.resize,
            sff_preset=sff_preset,
            device=device,
        )
        for mode in modes
    ]
