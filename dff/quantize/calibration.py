"""Calibration inputs for the feature and flow networks, taken from real frames the way inference takes them.

The frames go through :class:`~dff.runtime.DeepFeatureFlowRuntime` itself, with a backend that
records what the runtime hands it instead of running networks: every frame as ``upload``
receives it (read by :func:`dff.sources.open_source`, resized to the export's allowed size by the
runtime) is an input of N_feat, and every (key frame, current frame) pair that Algorithm 1 asks
F for, with key frames every ``key_interval`` frames, is an input of F. So calibration sees the
sizes, the resizing and the key-frame distances that inference will see, and nothing is
re-implemented here. Torch-free.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dff import manifest as names
from dff.errors import ConfigError, VideoError
from dff.manifest import SizeRange
from dff.runtime.backend import Backend
from dff.runtime.runtime import DeepFeatureFlowRuntime
from dff.runtime.scheduler import FixedInterval
from dff.sources import open_source

Feeds = dict[str, np.ndarray]


class _RecordingBackend(Backend):
    """Keeps the frames and frame pairs the runtime passes to N_feat's and F's inputs; computes nothing."""

    name = "calibration"

    def __init__(self, sizes: SizeRange, class_names: tuple[str, ...]) -> None:
        self.sizes = sizes
        self.class_names = class_names
        self.frames: list[np.ndarray] = []
        self.pairs: list[tuple[np.ndarray, np.ndarray]] = []

    def upload(self, image: np.ndarray) -> np.ndarray:
        frame = image[None].copy()  # (1, H, W, 3) uint8 BGR, as the graphs take it
        self.frames.append(frame)
        return frame

    def feature(self, frame: np.ndarray) -> np.ndarray:
        return frame

    def flow(self, key_frame: np.ndarray, frame: np.ndarray) -> np.ndarray:
        self.pairs.append((key_frame, frame))
        return frame

    def warp(self, key_feat: np.ndarray, flow: np.ndarray) -> np.ndarray:
        return flow

    def task(self, feat: np.ndarray) -> np.ndarray:
        return feat

    def download(self, labels: np.ndarray) -> np.ndarray:
        return np.zeros(labels.shape[1:3], np.uint8)


@dataclass(frozen=True)
class CalibrationSet:
    """Inputs of N_feat (every frame) and of F (Algorithm 1's key/current pairs), uint8 (1, H, W, 3) BGR."""

    frames: tuple[np.ndarray, ...]
    pairs: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.frames[0].shape[1], self.frames[0].shape[2]

    def feeds(self, role: str) -> list[Feeds]:
        """The feeds of network ``role`` (``feature`` or ``flow``), one dict per calibration run."""
        if role == "feature":
            return [{names.FRAME: frame} for frame in self.frames]
        if role == "flow":
            return [{names.KEY_FRAME: key, names.FRAME: frame} for key, frame in self.pairs]
        raise ConfigError(f"only the feature and flow networks are calibrated, not {role!r}")


def calibration_set(
    source: str | Path | Sequence[np.ndarray],
    *,
    sizes: SizeRange,
    class_names: tuple[str, ...],
    count: int,
    key_interval: int,
    size: tuple[int, int] | None = None,
) -> CalibrationSet:
    """The first ``count`` frames of ``source`` (video, folder of frames, images) as the runtime would feed them.

    ``size``: resize every frame to this (H, W) first (it must be allowed by ``sizes``); otherwise
    frames keep their own size and the runtime resizes them to the nearest allowed one.
    """
    if not (count >= 2 and key_interval >= 2):
        raise ConfigError(f"calibration needs --frames >= 2 and --key-interval >= 2, got {count} and {key_interval}")
    if size is not None:
        sizes.check(*size)
    recorder = _RecordingBackend(sizes, class_names)
    runtime = DeepFeatureFlowRuntime(backend=recorder, scheduler=FixedInterval(key_interval))
    for frame in open_source(source):
        image = frame.image if size is None else _resized(frame.image, size)
        runtime(image)
        if runtime.frames >= count:
            break
    name = f"--calibrate {source}" if isinstance(source, (str, os.PathLike)) else "the calibration frames"
    if not recorder.pairs:
        raise VideoError(
            f"{name} gave {len(recorder.frames)} frame(s): give a video or folder of at least 2 frames "
            "(a few dozen calibrate better)"
        )
    sizes_seen = {frame.shape[1:3] for frame in recorder.frames}
    if len(sizes_seen) > 1:
        raise VideoError(f"{name} has frames of several sizes {sorted(sizes_seen)}: pass --size HxW")
    return CalibrationSet(frames=tuple(recorder.frames), pairs=tuple(recorder.pairs))


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
