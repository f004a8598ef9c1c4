"""Synthetic video and flying shapes: determinism, and exact flow checked by warping real renderings."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dff.data.flying_shapes import FlyingShapes, FlyingShapesConfig
from dff.data.synthetic import OBJECT_CLASSES, SyntheticVideo, SyntheticVideoConfig
from dff.errors import ConfigError


def warp_by_flow(key: np.ndarray, flow: np.ndarray, interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Frame k sampled at p + M(p): frame i as the flow M_{i→k} predicts it."""
    height, width = flow.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return cv2.remap(key, x + flow[..., 0], y + flow[..., 1], interpolation)


def interior(mask: np.ndarray) -> np.ndarray:
    """``mask`` less a one-pixel rim: at layer edges anti-aliased colours mix two motions."""
    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def photometric_errors(key: np.ndarray, current: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Mean absolute error on ``mask`` of the flow-warped key frame, and of the key frame unwarped."""
    warped = warp_by_flow(key, flow).astype(np.float64)
    return float(np.abs(warped - current)[mask].mean()), float(np.abs(key.astype(np.float64) - current)[mask].mean())


class TestSyntheticVideo:
    config = SyntheticVideoConfig(height=96, width=128, length=40, num_objects=6, num_classes=6, max_speed=3.0, seed=7)

    def test_same_seed_same_video(self):
        a, b = SyntheticVideo(self.config), SyntheticVideo(self.config)
        for t in (0, 13, 39):
            np.testing.assert_array_equal(a.image(t), b.image(t))
            np.testing.assert_array_equal(a.label(t), b.label(t))
        np.testing.assert_array_equal(a.flow(current=20, key=12), b.flow(current=20, key=12))

    def test_other_seed_other_video(self):
        a = SyntheticVideo(self.config)
        b = SyntheticVideo(SyntheticVideoConfig(**{**self.config.__dict__, "seed": 8}))
        assert np.abs(a.image(0).astype(int) - b.image(0)).mean() > 10

    def test_shapes_and_classes(self):
        video = SyntheticVideo(self.config)
        assert len(video) == 40 and list(video.labelled_frames) == list(range(40))
        assert video.class_names == ("background",) + tuple(c.name for c in OBJECT_CLASSES[:5])
        image, label = video.image_and_label(5)
        assert image.shape == (96, 128, 3) and image.dtype == np.uint8
        assert label.shape == (96, 128) and label.dtype == np.uint8
        seen = set(np.unique(np.concatenate([video.label(t) for t in range(0, 40, 4)])))
        assert seen == set(range(6)), "every class (6 objects, 5 object classes) should show up"

    def test_classes_look_different(self):
        video = SyntheticVideo(self.config)
        pixels = {c: [] for c in range(6)}
        for t in range(0, 40, 5):
            image, label = video.image_and_label(t)
            for c in range(6):
                pixels[c].append(image[label == c])
        means = np.array([np.concatenate(pixels[c]).mean(axis=0) for c in range(6)])
        distances = np.linalg.norm(means[:, None] - means[None], axis=2)[np.triu_indices(6, 1)]
        assert distances.min() > 25, f"class mean colours too close: {means.round()}"

    def test_flow_warps_key_frame_onto_current_frame(self):
        video = SyntheticVideo(self.config)
        for current, key in [(9, 0), (20, 14), (35, 26), (10, 19)]:  # the last one forward in time
            flow = video.flow(current=current, key=key)
            assert flow.shape == (96, 128, 2) and flow.dtype == np.float32
            visible = video.visible(current=current, key=key)
            assert visible.mean() > 0.4, "most of the frame should be seen in both"
            error, unwarped = photometric_errors(video.image(key), video.image(current), flow, interior(visible))
            assert error < 3 and error < 0.15 * unwarped, (current, key, error, unwarped)
            labels = warp_by_flow(video.label(key), flow, cv2.INTER_NEAREST)
            agreement = (labels == video.label(current))[interior(visible)].mean()
            assert agreement > 0.99, (current, key, agreement)

    def test_hidden_pixels_do_not_match(self):
        video = SyntheticVideo(self.config)
        flow, visible = video.flow(current=30, key=21), video.visible(current=30, key=21)
        height, width = flow.shape[:2]
        y, x = np.mgrid[0:height, 0:width]
        tx, ty = x + flow[..., 0], y + flow[..., 1]
        inside = (tx >= 0) & (tx <= width - 1) & (ty >= 0) & (ty <= height - 1)
        hidden = interior(inside & ~visible)
        assert hidden.sum() > 50, "this pair should have occlusions"
        # Where another object covers p's point in frame k, the warped key frame shows that object instead.
        on_hidden, _ = photometric_errors(video.image(21), video.image(30), flow, hidden)
        on_visible, _ = photometric_errors(video.image(21), video.image(30), flow, interior(visible))
        assert on_hidden > 5 * on_visible, (on_hidden, on_visible)

    def test_flow_to_itself_is_zero(self):
        video = SyntheticVideo(self.config)
        np.testing.assert_allclose(video.flow(current=11, key=11), 0, atol=1e-3)

    def test_motion_respects_max_speed(self):
        config = SyntheticVideoConfig(length=20, max_speed=1.0, seed=3)
        video = SyntheticVideo(config)
        step = np.linalg.norm(video.flow(current=10, key=9), axis=2).max()
        # Centres move at most max_speed; rotation and zoom add up to max_speed at the rims.
        assert 0.1 < step <= 2.0 * config.max_speed + 0.1

    def test_object_scale_keeps_objects_their_size_on_larger_frames(self):
        def object_pixels(height: int, width: int, scale: int | None) -> float:
            """Mean pixels of one object over 8 videos (the draws differ by frame size: a mean compares sizes)."""
            configs = [
                SyntheticVideoConfig(height=height, width=width, length=1, num_objects=1, seed=seed, object_scale=scale)
                for seed in range(8)
            ]
            return float(np.mean([(SyntheticVideo(config).label(0) != 0).sum() for config in configs]))

        small = object_pixels(128, 128, None)
        assert 0.6 * small < object_pixels(320, 400, 128) < 1.6 * small  # the size in pixels of 128x128's objects
        assert object_pixels(320, 400, None) > 4 * small  # by default they grow with the shorter side (2.5x: area 6.25x)

    def test_frame_out_of_range(self):
        with pytest.raises(IndexError, match="frame 40 is outside"):
            SyntheticVideo(self.config).image(40)

    @pytest.mark.parametrize(
        "change, message",
        [
            ({"num_classes": len(OBJECT_CLASSES) + 2}, "num_classes must be 2"),
            ({"num_classes": 1}, "num_classes must be 2"),
            ({"length": 0}, "length must be >= 1"),
            ({"height": 16}, "at least 32x32"),
            ({"num_objects": -1}, "num_objects must be >= 0"),
            ({"max_speed": -1.0}, "max_speed must be >= 0"),
            ({"object_scale": 4}, "object_scale must be at least 8"),
        ],
    )
    def test_bad_config(self, change, message):
        with pytest.raises(ConfigError, match=message):
            SyntheticVideoConfig(**change)


class TestFlyingShapes:
    def test_same_seed_and_index_same_sample(self):
        a, b = FlyingShapes(FlyingShapesConfig(seed=4))[17], FlyingShapes(FlyingShapesConfig(seed=4))[17]
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)

    def test_other_index_other_sample(self):
        shapes = FlyingShapes()
        assert np.abs(shapes[0].key.astype(int) - shapes[1].key).mean() > 10

    def test_flow_warps_key_onto_current(self):
        config = FlyingShapesConfig(height=96, width=128, max_displacement=12.0, seed=1)
        shapes = FlyingShapes(config)
        errors, unwarped = [], []
        for index in range(8):
            sample = shapes[index]
            assert sample.key.shape == sample.current.shape == (96, 128, 3)
            assert sample.flow.shape == (96, 128, 2) and sample.flow.dtype == np.float32
            # Translation up to max_displacement; rotation and zoom add up to half as much at the rims.
            assert np.abs(sample.flow).max() <= 1.5 * config.max_displacement + 0.1
            assert sample.visible.mean() > 0.5
            e, u = photometric_errors(sample.key, sample.current, sample.flow, interior(sample.visible))
            errors.append(e)
            unwarped.append(u)
        assert max(errors) < 3 and np.mean(errors) < 0.15 * np.mean(unwarped), (errors, unwarped)

    def test_index_out_of_range(self):
        with pytest.raises(IndexError, match="sample 5 is outside"):
            FlyingShapes(FlyingShapesConfig(length=5))[5]

    def test_bad_config(self):
        with pytest.raises(ConfigError, match="max_displacement must be >= 0"):
            FlyingShapesConfig(max_displacement=-1)
        with pytest.raises(ConfigError, match="max_shapes must be >= 1"):
            FlyingShapesConfig(max_shapes=0)
