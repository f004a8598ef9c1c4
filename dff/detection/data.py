"""Detection training pairs (I_k, I_i) with the boxes of frame i, and their batches.

As :class:`~dff.data.pairs.PairDataset` for segmentation (Section 3): one sample per labelled
frame i, with key frame k = i − d, d uniform in 0 … ``max_offset`` and clipped to the sequence's
start, drawn from torch's generator (so the training loop's seeded draws apply). Frames are used
at their own size, which must be a multiple of 16.

A batch must be a tuple of tensors (:func:`dff.train.loop.run_training` moves each to the device),
so the frames' differing numbers of boxes are padded: ``targets`` (N, G_max, 5) rows are
(x1, y1, x2, y2, class), and rows of class 0 (background, never an object) are padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import torch
from torch.utils.data import Dataset

from dff.data.pairs import check_same_size, draw_key_frame, image_tensor, labelled_index
from dff.detection.ground_truth import BoxedSequence
from dff.detection.losses import GroundTruth
from dff.errors import ConfigError
from dff.frames import check_frame_size

#: Class of the padding rows of a batch's ``targets``.
PADDING_CLASS = 0


class DetectionPairSample(TypedDict):
    key: torch.Tensor  # uint8 3×H×W RGB, frame k
    current: torch.Tensor  # uint8 3×H×W RGB, frame i
    boxes: torch.Tensor  # float32 (G, 4), frame i
    classes: torch.Tensor  # int64 (G,), frame i
    offset: int  # i − k


class DetectionPairDataset(Dataset):
    """One sample per labelled frame of ``sequences``."""

    def __init__(self, sequences: Sequence[BoxedSequence], *, max_offset: int = 9) -> None:
        if not (max_offset >= 0):
            raise ConfigError(f"max_offset must be >= 0 frames, got {max_offset}")
        self.sequences = list(sequences)
        self.max_offset = max_offset
        self.index, self.class_names = labelled_index(self.sequences)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, n: int) -> DetectionPairSample:
        s, i = self.index[n]
        sequence = self.sequences[s]
        k = draw_key_frame(i, self.max_offset)
        key, current = sequence.image(k), sequence.image(i)
        check_frame_size(*current.shape[:2])
        check_same_size(sequence, k, key, i, current)
        truth = sequence.boxes(i)
        return {
            "key": image_tensor(key),
            "current": image_tensor(current),
            "boxes": torch.from_numpy(truth.boxes),
            "classes": torch.from_numpy(truth.classes),
            "offset": i - k,
        }


def pad_targets(truth: Sequence[GroundTruth]) -> torch.Tensor:
    """Frames' boxes and classes → (N, G_max, 5) rows (x1, y1, x2, y2, class), padded with class 0 rows."""
    most = max((len(t.boxes) for t in truth), default=0)
    targets = torch.zeros(len(truth), most, 5)
    for row, t in zip(targets, truth):
        row[: len(t.boxes), :4] = t.boxes
        row[: len(t.boxes), 4] = t.classes.to(targets.dtype)
    return targets


def unpad_targets(targets: torch.Tensor) -> list[GroundTruth]:
    """The inverse of :func:`pad_targets`."""
    if not (targets.dim() == 3 and targets.shape[2] == 5):
        raise ValueError(f"targets must be (N, G, 5) rows (x1, y1, x2, y2, class), got {tuple(targets.shape)}")
    out = []
    for rows in targets:
        rows = rows[rows[:, 4] != PADDING_CLASS]
        out.append(GroundTruth(boxes=rows[:, :4], classes=rows[:, 4].long()))
    return out


def collate_detection_pairs(samples: list[DetectionPairSample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Samples → (key frames, current frames, padded targets, same), the arguments of DetectionObjective."""
    return (
        torch.stack([s["key"] for s in samples]),
        torch.stack([s["current"] for s in samples]),
        pad_targets([GroundTruth(boxes=s["boxes"], classes=s["classes"]) for s in samples]),
        torch.tensor([s["offset"] == 0 for s in samples]),
    )
