"""Which labelled video to train or evaluate on, and the thin adapters from :mod:`dff.data` to the loop.

A :class:`VideoConfig` names the sequences (the synthetic video, CamVid or Cityscapes folders),
which of their labelled frames count (``frames``: a half-open range [start, stop) of frame
indices in every sequence, e.g. CamVid 0016E5's first 70 frames for training and the last 31
for evaluation) and the size frames are resized to. Frames outside ``frames`` can still serve
as key frames of the ones inside: only labels are held out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch

from dff.data.pairs import PairConfig, PairDataset, PairSample, Size
from dff.data.sequence import FrameSubset, LabelledSequence
from dff.data.synthetic import SyntheticVideoConfig
from dff.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class VideoConfig:
    """Labelled sequences: ``dataset`` with ``synthetic`` (its video) or ``root`` (its folder, and ``split`` for Cityscapes)."""

    dataset: Literal["synthetic", "camvid", "cityscapes"] = "synthetic"
    synthetic: SyntheticVideoConfig = SyntheticVideoConfig()
    #: Number of synthetic videos, with seeds synthetic.seed, synthetic.seed + 1, …: each draws its own
    #: objects, textures and background, so a model cannot just learn one video's look by heart.
    videos: int = 1
    root: str | None = None
    split: str = "train"
    #: Labelled frames used, [start, stop) within every sequence; None: all of them.
    frames: tuple[int, int] | None = None
    #: Only every frame_step-th of those, counted from the start of ``frames`` (0 when None): sparse
    #: annotation, as ImageNet VID's (the paper's protocol then takes l pairs per annotated frame).
    frame_step: int = 1
    #: (H, W) every frame is resized to, multiples of 16; None keeps the size (it must then be a multiple of 16).
    resize: Size | None = None

    def __post_init__(self) -> None:
        if self.dataset != "synthetic" and self.root is None:
            raise ConfigError(f"data.root must name the {self.dataset} folder")
        if not (self.videos >= 1 and (self.videos == 1 or self.dataset == "synthetic")):
            raise ConfigError(f"data.videos must be >= 1, and only the synthetic dataset has more than one; got {self.videos}")
        if self.frames is not None and not (0 <= self.frames[0] < self.frames[1]):
            raise ConfigError(f"data.frames must be [start, stop) with 0 <= start < stop, got {list(self.frames)}")
        if not (self.frame_step >= 1):
            raise ConfigError(f"data.frame_step must be >= 1, got {self.frame_step}")

    def sequences(self) -> list[LabelledSequence]:
        """The sequences, their labelled frames restricted to ``frames``."""
        if self.dataset == "synthetic":
            from dff.data.synthetic import SyntheticVideo

            found: list[LabelledSequence] = [
                SyntheticVideo(replace(self.synthetic, seed=self.synthetic.seed + n)) for n in range(self.videos)
            ]
        elif self.dataset == "camvid":
            from dff.data.camvid import camvid_sequences

            found = list(camvid_sequences(self.root))
        else:
            from dff.data.cityscapes import cityscapes_sequences

            found = list(cityscapes_sequences(self.root, split=self.split))
        if self.frames is None and self.frame_step == 1:
            return found
        start, stop = self.frames or (0, max(len(sequence) for sequence in found))
        kept = [LabelledFrames(sequence, range(start, stop, self.frame_step)) for sequence in found]
        if not any(s.labelled_frames for s in kept):
            raise ConfigError(
                f"no labelled frame of {self.dataset} lies in data.frames {[start, stop]} with data.frame_step {self.frame_step}"
            )
        return kept


@dataclass(frozen=True, kw_only=True)
class TrainDataConfig(VideoConfig):
    """Training samples: pairs (I_k, I_i) with 0 ≤ i − k ≤ ``max_offset`` (Section 3: 9), randomly cropped to ``crop``."""

    max_offset: int = 9
    crop: Size | None = None

    def pairs(self, *, single_frames: bool) -> PairDataset:
        """The pair dataset; ``single_frames`` draws k = i only (the *Frame* variant, Fig. 2a)."""
        config = PairConfig(max_offset=0 if single_frames else self.max_offset, resize=self.resize, crop=self.crop)
        return PairDataset(self.sequences(), config=config)


class LabelledFrames(FrameSubset):
    """A labelled sequence whose labelled frames are only those of ``sequence`` that lie in ``frames``."""

    def __init__(self, sequence: LabelledSequence, frames: Sequence[int]) -> None:
        super().__init__(sequence, frames)
        if hasattr(sequence, "flow"):
            self.flow = sequence.flow

    def image_and_label(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sequence.image_and_label(t)


@dataclass(frozen=True, kw_only=True)
class Draw:
    """One sample of one iteration: which dataset item, and the seed of its random choices (offset, crop)."""

    index: int
    seed: int


class IterationDraws(torch.utils.data.Sampler[list[Draw]]):
    """The draws of iterations ``start`` … ``stop`` − 1: ``batch_size`` items each, uniformly with replacement.

    Iteration t of rank r is a function of (seed, r, t) alone: a resumed run draws exactly what the
    uninterrupted run would have, and ranks draw different batches.
    """

    def __init__(self, *, size: int, batch_size: int, seed: int, rank: int, start: int, stop: int) -> None:
        if not (size >= 1 and batch_size >= 1 and seed >= 0 and 0 <= start <= stop):
            raise ValueError(
                f"need size >= 1, batch_size >= 1, seed >= 0, 0 <= start <= stop; got {size}, {batch_size}, {seed}, {start}, {stop}"
            )
        self.size, self.batch_size, self.seed, self.rank = size, batch_size, seed, rank
        self.start, self.stop = start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self) -> Iterator[list[Draw]]:
        for iteration in range(self.start, self.stop):
            rng = np.random.default_rng([self.seed, self.rank, iteration])
            indices = rng.integers(self.size, size=self.batch_size)
            seeds = rng.integers(2**63 - 1, size=self.batch_size)
            yield [Draw(index=int(i), seed=int(s)) for i, s in zip(indices, seeds)]


class SeededDraws(torch.utils.data.Dataset):
    """``dataset[draw.index]`` with torch's generator seeded by ``draw.seed`` for that call only.

    :class:`~dff.data.pairs.PairDataset` draws the key frame and the crop from torch's generator;
    seeding it per draw makes a batch a function of the iteration alone, in any worker, so a
    resumed run sees the very batches the uninterrupted one would have.
    """

    def __init__(self, dataset: torch.utils.data.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, draw: Draw) -> Any:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(draw.seed)
            return self.dataset[draw.index]


def collate_pairs(samples: list[PairSample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """PairDataset samples → (key frames, current frames, labels, same), the arguments of SegmentationObjective."""
    return (
        torch.stack([s["key"] for s in samples]),
        torch.stack([s["current"] for s in samples]),
        torch.stack([s["label"] for s in samples]),
        torch.tensor([s["offset"] == 0 for s in samples]),
    )


def collate_flow(samples: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """FlowPairDataset samples → (key frames, current frames, flow), the arguments of FlowObjective."""
    return tuple(torch.stack([s[name] for s in samples]) for name in ("key", "current", "flow"))  # type: ignore[return-value]
