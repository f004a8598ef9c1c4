"""Evaluating a key-frame scheduler as deployed: each video through the runtime in order (issue 16). Torch-free.

The paper's protocol (:mod:`dff.eval.protocol`) pools the l pairs (k, i) of every labelled frame i,
which assumes a fixed l. A scheduler that decides frame by frame can only be judged by running the
video in order: here every frame from a sequence's first labelled frame to its last goes through
:class:`~dff.runtime.DeepFeatureFlowRuntime`, and the labelled ones are scored. Besides the mIoU over
all scored frames, :class:`ScheduleScore` keeps each frame's own mIoU, since a scheduler exists to
remove the bad stretches (the 5th percentile), and the measured key-frame share: its cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dff.metrics import confusion_matrix, mean_iou
from dff.runtime.runtime import DeepFeatureFlowRuntime, FrameResult
from dff.runtime.scheduler import KeyFrameScheduler


@dataclass
class ScheduleScore:
    """Running totals over frames run in order: confusion, per-frame mIoU, key frames, frames that ran F, time."""

    num_classes: int
    confusion: np.ndarray = field(init=False)
    frame_mious: list[float] = field(default_factory=list)
    keys: int = 0
    flows: int = 0
    frames: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), np.int64)

    def add(self, result: FrameResult, label: np.ndarray | None, seconds: float) -> None:
        """One frame's result; ``label`` None for a frame without a label (run, timed, not scored)."""
        self.frames += 1
        self.keys += result.key
        self.flows += result.timing.ran_flow
        self.seconds += seconds
        if label is not None:
            frame = confusion_matrix(result.labels, label, self.num_classes)
            self.confusion += frame
            self.frame_mious.append(mean_iou(frame))

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)

    @property
    def p5_frame_miou(self) -> float:
        """The 5th percentile of the scored frames' own mIoU (NaN-free: a frame always has a class)."""
        return float(np.percentile(self.frame_mious, 5))

    @property
    def key_share(self) -> float:
        return self.keys / self.frames

    @property
    def flow_share(self) -> float:
        return self.flows / self.frames

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.seconds / self.frames


def run_in_order(
    runtime: DeepFeatureFlowRuntime, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | None], score: ScheduleScore
) -> list[bool]:
    """Run ``images`` through ``runtime`` in order (from a fresh stream), scoring into ``score``; which were key frames."""
    runtime.reset()
    keys = []
    for image, label in zip(images, labels, strict=True):
        start = time.perf_counter()
        result = runtime(image)
        score.add(result, label, time.perf_counter() - start)
        keys.append(result.key)
    return keys


@dataclass(frozen=True)
class ScheduledResult:
    """``dff eval --scheduler`` for one schedule, as its ``--json`` gives it."""

    scheduler: str
    miou: float
    key_share: float
    p5_frame_miou: float
    frames: int
    scored_frames: int
    fps: float


def evaluate_scheduled(
    backend, sequences: Sequence, make_scheduler: Callable[[], KeyFrameScheduler], *, resize: tuple[int, int] | None = None
) -> ScheduledResult:
    """Every sequence from its first labelled frame to its last through a runtime on ``backend`` with a new
    ``make_scheduler()``; frames resized to ``resize`` (H, W) first where given."""
    import cv2

    score = ScheduleScore(num_classes=len(backend.class_names))
    scheduler = make_scheduler()
    runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=scheduler)
    for sequence in sequences:
        labelled = set(sequence.labelled_frames)
        images, labels = [], []
        for t in range(min(labelled), max(labelled) + 1):
            image, label = sequence.image_and_label(t) if t in labelled else (sequence.image(t), None)
            if resize is not None and image.shape[:2] != tuple(resize):
                image = cv2.resize(image, (resize[1], resize[0]), interpolation=cv2.INTER_AREA)
                if label is not None:
                    label = cv2.resize(label, (resize[1], resize[0]), interpolation=cv2.INTER_NEAREST)
            images.append(image)
            labels.append(label)
        run_in_order(runtime, images, labels, score)
    return ScheduledResult(
        scheduler=repr(scheduler),
        miou=score.miou,
        key_share=score.key_share,
        p5_frame_miou=score.p5_frame_miou,
        frames=score.frames,
        scored_frames=len(score.frame_mious),
        fps=score.frames / score.seconds,
    )
