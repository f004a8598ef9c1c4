"""What a labelled video offers the pair sampler, and its on-disk form shared by CamVid and Cityscapes.

A labelled sequence has ``len()`` frames, ``image(t)`` (uint8 H×W×3 BGR), ``image_and_label(t)``
for the frames in ``labelled_frames`` (the label uint8 H×W, :data:`~dff.data.IGNORE_INDEX` where
no class applies) and ``class_names``. A sequence that also has ``flow(current=i, key=k)``
gives the exact M_{i→k} (only the synthetic video does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from dff.data import IGNORE_INDEX, DatasetError

_INVALID = -1


class LabelledSequence(Protocol):
    class_names: tuple[str, ...]
    labelled_frames: Sequence[int]

    def __len__(self) -> int: ...

    def image(self, t: int) -> np.ndarray: ...

    def image_and_label(self, t: int) -> tuple[np.ndarray, np.ndarray]: ...


def label_lookup(num_classes: int, ignored: Iterable[int]) -> np.ndarray:
    """Table from stored label values to class ids: 0..num_classes-1 stay, ``ignored`` values become
    IGNORE_INDEX, anything else is invalid."""
    if not (1 <= num_classes < IGNORE_INDEX):
        raise ValueError(f"num_classes must be 1..{IGNORE_INDEX - 1} (class ids below the ignore index), got {num_classes}")
    table = np.full(256, _INVALID, np.int16)
    table[:num_classes] = np.arange(num_classes)
    table[list(ignored)] = IGNORE_INDEX
    return table


def read_image(path: Path) -> np.ndarray:
    """uint8 H×W×3 BGR; DatasetError if the file is missing or not a readable image."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"cannot read image {path}: missing, truncated or not an image")
    return image


def read_label(path: Path, lookup: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 H×W class ids from a single-channel 8-bit PNG, checked against ``lookup`` and the image ``size``."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"cannot read label {path}: missing, truncated or not an image")
    if not (raw.ndim == 2 and raw.dtype == np.uint8):
        raise DatasetError(
            f"label {path} must be a single-channel 8-bit image of class ids, got {raw.dtype} of shape {raw.shape}"
        )
    if raw.shape != size:
        raise DatasetError(
            f"label {path} is {raw.shape[0]}x{raw.shape[1]} (HxW) but its image is {size[0]}x{size[1]}; they must match"
        )
    label = lookup[raw]
    if (label == _INVALID).any():
        classes = int(((lookup >= 0) & (lookup != IGNORE_INDEX)).sum())
        ignored = np.flatnonzero(lookup == IGNORE_INDEX).tolist()
        bad = np.unique(raw[label == _INVALID]).tolist()
        raise DatasetError(
            f"label {path} holds values {bad}; expected class ids 0..{classes - 1} or the ignore value(s) {ignored}: "
            "check the dataset's number of classes"
        )
    return label.astype(np.uint8)


class FrameSubset:
    """A video sequence whose labelled frames are only those of ``sequence`` that lie in ``frames`` (a sparse
    annotation protocol); its frames are the sequence's own. Subclasses add the sequence's kind of labels."""

    def __init__(self, sequence, frames: Sequence[int]) -> None:
        self.sequence = sequence
        self.class_names = sequence.class_names
        self.labelled_frames = [t for t in sequence.labelled_frames if t in frames]

    def __len__(self) -> int:
        return len(self.sequence)

    def __str__(self) -> str:
        return str(self.sequence)

    def image(self, t: int) -> np.ndarray:
        return self.sequence.image(t)


class FileSequence:
    """Frames stored as image files in order, with label files for some of them."""

    def __init__(
        self,
        *,
        name: str,
        images: Sequence[Path],
        labels: Mapping[int, Path],
        class_names: tuple[str, ...],
        lookup: np.ndarray,
    ) -> None:
        if not images:
            raise DatasetError(f"{name} has no frames")
        if not all(0 <= t < len(images) for t in labels):
            raise ValueError(f"label frame indices must be within 0..{len(images) - 1}, got {sorted(labels)}")
        self.name = name
        self.images = list(images)
        self.labels = dict(labels)
        self.labelled_frames = sorted(labels)
        self.class_names = class_names
        self.lookup = lookup

    def __len__(self) -> int:
        return len(self.images)

    def __str__(self) -> str:
        return self.name

    def image(self, t: int) -> np.ndarray:
        return read_image(self.images[t])

    def image_and_label(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if t not in self.labels:
            raise KeyError(f"frame {t} ({self.images[t]}) of {self.name} has no label")
        image = self.image(t)
        return image, read_label(self.labels[t], self.lookup, image.shape[:2])
