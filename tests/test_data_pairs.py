"""Training pairs: sampling bounds, tensors and their layout, flow under resize and crop, bad configs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from dff.data import IGNORE_INDEX, DatasetError
from dff.data.camvid import camvid_sequences
from dff.data.flying_shapes import FlyingShapes, FlyingShapesConfig
from dff.data.pairs import FlowPairDataset, PairConfig, PairDataset
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.errors import ConfigError

DATA = Path(__file__).parents[1].parent / "shared" / "data"
CAMVID = DATA / "camvid_0016E5"


def video(seed: int = 0, **changes) -> SyntheticVideo:
    return SyntheticVideo(SyntheticVideoConfig(**{"length": 30, "max_speed": 2.5, "seed": seed, **changes}))


def bgr(tensor: torch.Tensor) -> np.ndarray:
    """uint8 3×H×W RGB tensor → H×W×3 BGR array."""
    return np.ascontiguousarray(tensor.numpy().transpose(1, 2, 0)[..., ::-1])


class TestSampling:
    def test_offsets_cover_the_allowed_range_and_no_more(self):
        dataset = PairDataset([video()], config=PairConfig(max_offset=4))
        assert len(dataset) == 30
        torch.manual_seed(0)
        for n in (0, 2, 4, 17, 29):
            _, i = dataset.index[n]
            offsets = {dataset[n]["offset"] for _ in range(80)}
            assert offsets == set(range(min(4, i) + 1)), (i, offsets)

    def test_key_is_the_frame_offset_before(self):
        sequence = video()
        dataset = PairDataset([sequence])
        torch.manual_seed(1)
        for n in (3, 12, 25):
            sample = dataset[n]
            i = n
            k = i - sample["offset"]
            np.testing.assert_array_equal(bgr(sample["key"]), sequence.image(k))
            np.testing.assert_array_equal(bgr(sample["current"]), sequence.image(i))
            np.testing.assert_array_equal(sample["label"].numpy(), sequence.label(i))
            np.testing.assert_array_equal(sample["flow"].numpy().transpose(1, 2, 0), sequence.flow(current=i, key=k))

    def test_tensor_types(self):
        sample = PairDataset([video()])[5]
        assert sample["key"].dtype == torch.uint8 and sample["key"].shape == (3, 128, 128)
        assert sample["label"].dtype == torch.int64 and sample["label"].shape == (128, 128)
        assert sample["flow"].dtype == torch.float32 and sample["flow"].shape == (2, 128, 128)

    def test_batches(self):
        loader = DataLoader(PairDataset([video(0), video(1)], config=PairConfig(crop=(64, 96))), batch_size=4, shuffle=True)
        batch = next(iter(loader))
        assert batch["key"].shape == (4, 3, 64, 96) and batch["flow"].shape == (4, 2, 64, 96)
        assert batch["offset"].shape == (4,) and batch["label"].shape == (4, 64, 96)


class TestResizeAndCrop:
    @staticmethod
    def warp_error(sample) -> tuple[float, float]:
        """Mean error of the key frame warped by the flow onto the current one, and without warping."""
        key, current = (bgr(sample[name]).astype(np.float32) for name in ("key", "current"))
        flow = sample["flow"].numpy()
        height, width = flow.shape[1:]
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        warped = cv2.remap(key, x + flow[0], y + flow[1], cv2.INTER_LINEAR, borderValue=np.nan)
        keep = ~np.isnan(warped).any(axis=2)
        return float(np.median(np.abs(warped - current)[keep])), float(np.median(np.abs(key - current)[keep]))

    @pytest.mark.parametrize(
        "config", [PairConfig(resize=(64, 192)), PairConfig(crop=(64, 80)), PairConfig(resize=(96, 192), crop=(64, 128))]
    )
    def test_flow_still_matches_the_frames(self, config):
        dataset = PairDataset([video(3, height=96, width=128, length=12, num_objects=2)], config=config)
        torch.manual_seed(2)
        size = config.crop or config.resize
        sample = dataset[10]
        assert sample["current"].shape[1:] == size and sample["flow"].shape[1:] == size and sample["label"].shape == size
        assert sample["offset"] > 0
        error, unwarped = self.warp_error(sample)
        assert error < 0.3 * unwarped, (error, unwarped)

    def test_crop_larger_than_frame(self):
        dataset = PairDataset([video(height=64, width=64)], config=PairConfig(crop=(128, 64)))
        with pytest.raises(DatasetError, match=r"is 64x64 \(HxW\), smaller than the crop 128x64"):
            dataset[0]

    @pytest.mark.skipif(not CAMVID.is_dir(), reason=f"CamVid data not found at {CAMVID}")
    def test_camvid_pairs(self):
        dataset = PairDataset(camvid_sequences(CAMVID), config=PairConfig(resize=(352, 480), crop=(256, 320)))
        assert dataset.class_names[0] == "sky" and "flow" not in dataset[0]
        sample = dataset[40]
        assert sample["current"].shape == (3, 256, 320) and sample["label"].shape == (256, 320)
        values = set(sample["label"].unique().tolist())
        assert values <= set(range(11)) | {IGNORE_INDEX}


class TestBadInput:
    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"crop": (100, 128)}, "crop must be .* multiples of 16"),
            ({"resize": (48, 128)}, ">= 64"),
            ({"resize": (64, 64), "crop": (128, 64)}, "must fit inside resize"),
            ({"max_offset": -1}, "max_offset must be >= 0"),
        ],
    )
    def test_bad_config(self, kwargs, message):
        with pytest.raises(ConfigError, match=message):
            PairConfig(**kwargs)

    def test_no_labelled_frames(self, tmp_path):
        (tmp_path / "images").mkdir()
        (tmp_path / "labels").mkdir()
        cv2.imwrite(str(tmp_path / "images" / "a_1.png"), np.zeros((64, 64, 3), np.uint8))
        with pytest.raises(DatasetError, match="nothing to train on"):
            PairDataset(camvid_sequences(tmp_path))

    def test_sequences_with_other_classes(self):
        with pytest.raises(DatasetError, match="disagree on their classes"):
            PairDataset([video(num_classes=3), video(num_classes=4)])


def test_flow_pairs_from_flying_shapes():
    shapes = FlyingShapes(FlyingShapesConfig(length=4, seed=5))
    dataset = FlowPairDataset(shapes)
    assert len(dataset) == 4
    sample, raw = dataset[2], shapes[2]
    np.testing.assert_array_equal(bgr(sample["key"]), raw.key)
    np.testing.assert_array_equal(bgr(sample["current"]), raw.current)
    np.testing.assert_array_equal(sample["flow"].numpy().transpose(1, 2, 0), raw.flow)
    assert sample["visible"].dtype == torch.bool and sample["visible"].shape == (128, 128)
