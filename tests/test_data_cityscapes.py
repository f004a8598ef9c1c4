"""Cityscapes sequence layout on a small tree built from real Cityscapes frames, and bad input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from dff.data import IGNORE_INDEX, DatasetError
from dff.data.cityscapes import CITYSCAPES_CLASSES, cityscapes_sequences
from dff.data.pairs import PairConfig, PairDataset

DATA = Path(__file__).parents[1].parent / "shared" / "data"
STUTTGART = DATA / "cityscapes_stuttgart_00"
SIZE = (64, 128)  # (H, W): Cityscapes' 1:2 aspect, small


def real_frames() -> list[np.ndarray]:
    if not STUTTGART.is_dir():
        pytest.skip(f"Cityscapes frames not found at {STUTTGART}")
    return [cv2.resize(cv2.imread(str(p)), SIZE[::-1], interpolation=cv2.INTER_AREA) for p in sorted(STUTTGART.glob("*.jpg"))]


def train_ids_label() -> np.ndarray:
    label = (np.arange(SIZE[0] * SIZE[1]) % len(CITYSCAPES_CLASSES)).reshape(SIZE).astype(np.uint8)
    label[:8] = IGNORE_INDEX
    return label


def add_snippet(root: Path, frames: list[np.ndarray], *, city: str, seq: int, numbers: range, labelled: int, split="train"):
    image_dir = root / "leftImg8bit_sequence" / split / city
    label_dir = root / "gtFine" / split / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        cv2.imwrite(str(image_dir / f"{city}_{seq:06d}_{n:06d}_leftImg8bit.png"), frames[n % len(frames)])
    cv2.imwrite(str(label_dir / f"{city}_{seq:06d}_{labelled:06d}_gtFine_labelTrainIds.png"), train_ids_label())
    return label_dir / f"{city}_{seq:06d}_{labelled:06d}_gtFine_labelTrainIds.png"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """aachen_000000: a full 30-frame snippet (label on its 20th frame) and a second, short one;
    bochum_000001: a short snippet."""
    frames = real_frames()
    root = tmp_path_factory.mktemp("cityscapes")
    add_snippet(root, frames, city="aachen", seq=0, numbers=range(0, 30), labelled=19)
    add_snippet(root, frames, city="aachen", seq=0, numbers=range(100, 105), labelled=102)
    add_snippet(root, frames, city="bochum", seq=1, numbers=range(10, 15), labelled=12)
    return root


class TestLayout:
    def test_snippets(self, tree):
        sequences = cityscapes_sequences(tree, split="train")
        assert [(len(s), s.labelled_frames) for s in sequences] == [(30, [19]), (5, [2]), (5, [2])]
        assert [s.images[0].name for s in sequences] == [
            "aachen_000000_000000_leftImg8bit.png",
            "aachen_000000_000100_leftImg8bit.png",
            "bochum_000001_000010_leftImg8bit.png",
        ]
        assert all(s.class_names == CITYSCAPES_CLASSES for s in sequences)

    def test_frames_and_labels(self, tree):
        sequence = cityscapes_sequences(tree)[0]
        image, label = sequence.image_and_label(19)
        assert image.shape == SIZE + (3,) and label.shape == SIZE and label.dtype == np.uint8
        np.testing.assert_array_equal(label, train_ids_label())

    def test_pairs_stay_inside_a_snippet(self, tree):
        dataset = PairDataset(cityscapes_sequences(tree), config=PairConfig(max_offset=9))
        assert len(dataset) == 3  # one label per snippet
        torch.manual_seed(0)
        for n, (first, last) in enumerate([(10, 19), (0, 2), (0, 2)]):
            offsets = {dataset[n]["offset"] for _ in range(60)}
            assert offsets == set(range(0, last - first + 1)), (n, offsets)


class TestBadInput:
    def test_label_out_of_range(self, tmp_path):
        frames = [np.zeros(SIZE + (3,), np.uint8)]
        label_path = add_snippet(tmp_path, frames, city="ulm", seq=0, numbers=range(3), labelled=1)
        cv2.imwrite(str(label_path), np.full(SIZE, 19, np.uint8))
        message = r"ulm_000000_000001_gtFine_labelTrainIds\.png holds values \[19\]; expected class ids 0\.\.18"
        with pytest.raises(DatasetError, match=message):
            cityscapes_sequences(tmp_path)[0].image_and_label(1)

    def test_label_of_other_size(self, tmp_path):
        label_path = add_snippet(tmp_path, [np.zeros(SIZE + (3,), np.uint8)], city="ulm", seq=0, numbers=range(3), labelled=1)
        cv2.imwrite(str(label_path), np.zeros((32, 64), np.uint8))
        with pytest.raises(DatasetError, match=r"is 32x64 \(HxW\) but its image is 64x128"):
            cityscapes_sequences(tmp_path)[0].image_and_label(1)

    def test_unreadable_frame(self, tmp_path):
        add_snippet(tmp_path, [np.zeros(SIZE + (3,), np.uint8)], city="ulm", seq=0, numbers=range(3), labelled=1)
        broken = tmp_path / "leftImg8bit_sequence" / "train" / "ulm" / "ulm_000000_000000_leftImg8bit.png"
        broken.write_bytes(b"\x89PNG broken")
        with pytest.raises(DatasetError, match=r"cannot read image .*ulm_000000_000000_leftImg8bit\.png"):
            cityscapes_sequences(tmp_path)[0].image(0)

    def test_label_without_frame(self, tmp_path):
        add_snippet(tmp_path, [np.zeros(SIZE + (3,), np.uint8)], city="ulm", seq=0, numbers=range(3), labelled=7)
        with pytest.raises(DatasetError, match=r"ulm_000000_000007_gtFine_labelTrainIds\.png has no frame"):
            cityscapes_sequences(tmp_path)

    def test_empty_split(self, tmp_path):
        (tmp_path / "leftImg8bit_sequence" / "val" / "ulm").mkdir(parents=True)
        (tmp_path / "gtFine" / "val").mkdir(parents=True)
        with pytest.raises(DatasetError, match=r"leftImg8bit_sequence/val holds no"):
            cityscapes_sequences(tmp_path, split="val")

    def test_missing_ground_truth_folder(self, tmp_path):
        (tmp_path / "leftImg8bit_sequence" / "train").mkdir(parents=True)
        with pytest.raises(DatasetError, match=r"gtFine/train does not exist"):
            cityscapes_sequences(tmp_path)
