"""Training pairs (key frame k, current frame i) for Deep Feature Flow, as torch Datasets.

Training in the paper (Section 4) takes a labelled frame i and a key frame k = i − d with d drawn
uniformly from 0..9, so only frame i needs a label: every labelled frame of a sparsely annotated
video (one in 30 for Cityscapes) is used. Here d is drawn from 0..``max_offset``, and k is clipped
to the start of the sequence.

Each sample is a :class:`PairSample`: frames as uint8 3×H×W **RGB** tensors (normalising them is
the model's job), the label of frame i as int64 H×W with IGNORE_INDEX (255) where no class applies
(CamVid's void 11 is mapped to it), the offset d, and, when every sequence has exact flow (the
synthetic video), M_{i→k} as float32 2×H×W. The random draws use torch's generator, which the
DataLoader seeds per worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, Protocol, TypedDict

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from dff.data import DatasetError
from dff.data.flying_shapes import FlyingShapes
from dff.data.sequence import LabelledSequence
from dff.errors import ConfigError
from dff.frames import FEATURE_STRIDE, MIN_SIDE

Size = tuple[int, int]  # (H, W)


@dataclass(frozen=True)
class PairConfig:
    """``resize`` scales every frame to (H, W) first, then ``crop`` takes a random (H, W) window;
    both must be multiples of 16 (the networks' stride) and at least 64."""

    max_offset: int = 9
    resize: Size | None = None
    crop: Size | None = None

    def __post_init__(self) -> None:
        if not (self.max_offset >= 0):
            raise ConfigError(f"max_offset must be >= 0 frames, got {self.max_offset}")
        for name in ("resize", "crop"):
            size = getattr(self, name)
            if size is not None and not (
                len(size) == 2 and all(side % FEATURE_STRIDE == 0 and side >= MIN_SIDE for side in size)
            ):
                raise ConfigError(f"{name} must be (H, W), multiples of {FEATURE_STRIDE} and >= {MIN_SIDE}; got {size}")
        if self.resize is not None and self.crop is not None and not (
            self.crop[0] <= self.resize[0] and self.crop[1] <= self.resize[1]
        ):
            raise ConfigError(f"crop {self.crop} must fit inside resize {self.resize}")


class PairSample(TypedDict):
    key: torch.Tensor  # uint8 3×H×W RGB, frame k
    current: torch.Tensor  # uint8 3×H×W RGB, frame i
    label: torch.Tensor  # int64 H×W, frame i
    offset: int  # i − k
    flow: NotRequired[torch.Tensor]  # float32 2×H×W, M_{i→k}


def image_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 H×W×3 BGR array → uint8 3×H×W RGB tensor."""
    return torch.from_numpy(np.ascontiguousarray(image[..., ::-1].transpose(2, 0, 1)))


def flow_tensor(flow: np.ndarray) -> torch.Tensor:
    """float32 H×W×2 array → float32 2×H×W tensor."""
    return torch.from_numpy(np.ascontiguousarray(flow.transpose(2, 0, 1)))


def _resize(arrays: dict[str, np.ndarray], size: Size) -> dict[str, np.ndarray]:
    height, width = arrays["current"].shape[:2]
    target = (size[1], size[0])
    shrink = size[0] * size[1] < height * width
    out = {}
    for name, array in arrays.items():
        if name == "label":
            out[name] = cv2.resize(array, target, interpolation=cv2.INTER_NEAREST)
        elif name == "flow":
            # Displacements scale with the image (OpenCV maps pixel centres, x' + ½ = (x + ½)·W'/W).
            ratio = np.float32([size[1] / width, size[0] / height])
            out[name] = cv2.resize(array, target, interpolation=cv2.INTER_LINEAR) * ratio
        else:
            out[name] = cv2.resize(array, target, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out


class HasLabelledFrames(Protocol):
    """What :func:`labelled_index` reads: a segmentation :class:`~dff.data.sequence.LabelledSequence` or a detection one."""

    class_names: tuple[str, ...]
    labelled_frames: Sequence[int]


def labelled_index(sequences: Sequence[HasLabelledFrames]) -> tuple[list[tuple[int, int]], tuple[str, ...]]:
    """(sequence, frame) of every labelled frame of ``sequences``, and the class names they all share."""
    index = [(s, t) for s, sequence in enumerate(sequences) for t in sequence.labelled_frames]
    if not index:
        raise DatasetError(f"none of the {len(sequences)} sequence(s) has a labelled frame: nothing to train on")
    names = {tuple(sequence.class_names) for sequence in sequences}
    if len(names) != 1:
        raise DatasetError(f"sequences disagree on their classes: {sorted(names)}")
    return index, names.pop()


def draw_key_frame(i: int, max_offset: int) -> int:
    """Key frame k = i − d for frame i, d uniform in 0 … ``max_offset`` from torch's generator, clipped to frame 0."""
    first = max(0, i - max_offset)
    return first + int(torch.randint(i - first + 1, ()))


def check_same_size(sequence: object, k: int, key: np.ndarray, i: int, current: np.ndarray) -> None:
    """Frames k and i of ``sequence`` must have one size to be paired."""
    if key.shape != current.shape:
        raise DatasetError(
            f"{sequence}: frame {k} is {key.shape[:2]} but frame {i} is {current.shape[:2]} (HxW); "
            "a sequence needs one frame size"
        )


class PairDataset(Dataset):
    """One sample per labelled frame of ``sequences`` (any :class:`~dff.data.sequence.LabelledSequence`)."""

    def __init__(self, sequences: Sequence[LabelledSequence], *, config: PairConfig = PairConfig()) -> None:
        self.sequences = list(sequences)
        self.config = config
        self.index, self.class_names = labelled_index(self.sequences)
        self.has_flow = all(hasattr(sequence, "flow") for sequence in self.sequences)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, n: int) -> PairSample:
        s, i = self.index[n]
        sequence = self.sequences[s]
        k = draw_key_frame(i, self.config.max_offset)
        current, label = sequence.image_and_label(i)
        arrays = {"key": sequence.image(k), "current": current, "label": label}
        check_same_size(sequence, k, arrays["key"], i, current)
        if self.has_flow:
            arrays["flow"] = sequence.flow(current=i, key=k)  # type: ignore[attr-defined]
        if self.config.resize is not None:
            arrays = _resize(arrays, self.config.resize)
        if self.config.crop is not None:
            arrays = self._crop(arrays, sequence, i)
        sample: PairSample = {
            "key": image_tensor(arrays["key"]),
            "current": image_tensor(arrays["current"]),
            "label": torch.from_numpy(arrays["label"].astype(np.int64)),
            "offset": i - k,
        }
        if self.has_flow:
            sample["flow"] = flow_tensor(arrays["flow"])
        return sample

    def _crop(self, arrays: dict[str, np.ndarray], sequence: LabelledSequence, i: int) -> dict[str, np.ndarray]:
        height, width = arrays["current"].shape[:2]
        crop_h, crop_w = self.config.crop  # type: ignore[misc]
        if not (crop_h <= height and crop_w <= width):
            raise DatasetError(
                f"{sequence}: frame {i} is {height}x{width} (HxW), smaller than the crop {crop_h}x{crop_w}; "
                "set a smaller crop or a resize"
            )
        # Cropping both frames by the same window leaves displacements unchanged.
        y = int(torch.randint(height - crop_h + 1, ()))
        x = int(torch.randint(width - crop_w + 1, ()))
        return {name: array[y : y + crop_h, x : x + crop_w] for name, array in arrays.items()}


class FlowPairDataset(Dataset):
    """:class:`~dff.data.flying_shapes.FlyingShapes` samples as tensors: ``key``, ``current`` (uint8
    3×H×W RGB), ``flow`` (float32 2×H×W, M_{current→key}) and ``visible`` (bool H×W)."""

    def __init__(self, shapes: FlyingShapes) -> None:
        self.shapes = shapes

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        sample = self.shapes[n]
        return {
            "key": image_tensor(sample.key),
            "current": image_tensor(sample.current),
            "flow": flow_tensor(sample.flow),
            "visible": torch.from_numpy(sample.visible),
        }
