"""Boxes from masks (real DAVIS car masks, a hand-made mask) and frames with boxes as detection training data."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dff.detection.data import DetectionPairDataset
from dff.detection.ground_truth import FrameBoxes
from dff.detection.mask_boxes import BoxedFrames, mask_boxes


class TestMaskBoxes:
    def test_one_box_per_region_and_small_regions_dropped(self):
        mask = np.zeros((40, 60), np.uint8)
        mask[5:15, 10:20] = 255  # box (10, 5, 20, 15)
        mask[20:35, 40:45] = 1  # box (40, 20, 45, 35)
        mask[35:36, 45:46] = 1  # touches the second diagonally: 8-connected, so it widens that box to (40, 20, 46, 36)
        mask[2, 50] = 1  # one pixel: dropped by min_pixels
        found = mask_boxes(mask, 3, min_pixels=10, min_side=3)
        assert sorted(found.boxes.tolist()) == [[10.0, 5.0, 20.0, 15.0], [40.0, 20.0, 46.0, 36.0]]
        assert found.classes.tolist() == [3, 3] and found.boxes.dtype == np.float32

    def test_empty_mask_gives_no_box(self):
        found = mask_boxes(np.zeros((16, 16), bool), 1)
        assert found.boxes.shape == (0, 4) and found.classes.shape == (0,)

    def test_davis_car_mask_box_bounds_the_car(self, shared_data):
        mask = cv2.imread(str(shared_data / "davis_car_shadow" / "masks" / "00000.png"), cv2.IMREAD_GRAYSCALE)
        found = mask_boxes(mask, 1)
        ys, xs = np.nonzero(mask)
        # The car is one region (small specks, if any, fall under the limits); its box is the mask's extent.
        assert found.boxes.tolist() == [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]

    @pytest.mark.parametrize(("mask", "class_id", "words"), [(np.zeros((2, 3, 3)), 1, "H×W"), (np.zeros((4, 4)), 0, "class_id")])
    def test_bad_arguments_are_named(self, mask, class_id, words):
        with pytest.raises(ValueError, match=words):
            mask_boxes(mask, class_id)


class TestBoxedFrames:
    def frames(self, n: int = 3) -> list[np.ndarray]:
        return [np.full((64, 80, 3), 10 * t, np.uint8) for t in range(n)]

    def test_pairs_carry_the_boxes_of_frame_i(self):
        boxes = [FrameBoxes(boxes=np.float32([[t, 2, t + 8, 10]]), classes=np.int64([1])) for t in range(3)]
        sequence = BoxedFrames("three frames", self.frames(), boxes, ("background", "mover"))
        dataset = DetectionPairDataset([sequence], max_offset=2)
        assert len(dataset) == 3 and dataset.class_names == ("background", "mover")
        sample = dataset[2]
        assert sample["boxes"].tolist() == [[2.0, 2.0, 10.0, 10.0]] and sample["classes"].tolist() == [1]
        assert int(sample["current"][0, 0, 0]) == 20 and 0 <= sample["offset"] <= 2

    def test_mismatches_are_named(self):
        one = FrameBoxes(boxes=np.float32([[0, 0, 4, 4]]), classes=np.int64([2]))
        with pytest.raises(ValueError, match="one FrameBoxes per frame"):
            BoxedFrames("short", self.frames(), [one], ("background", "a", "b"))
        with pytest.raises(ValueError, match="class 2 but class_names has 2"):
            BoxedFrames("classes", self.frames(1), [one], ("background", "a"))
