"""F's motion on the synthetic video's objects against the exact flow (dff.detection.flow_check)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from dff.config import ModelConfig
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.detection import build_detection_model
from dff.detection.flow_check import ExactFlow, flow_on_objects, stale_box_share, true_cell_flow
from dff.models.preprocess import FrameNormalizer

MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
#: Fast objects, so object cells move by a sizeable fraction of a cell in 4 frames.
VIDEO = SyntheticVideoConfig(height=96, width=96, length=12, num_objects=4, max_speed=5.0, seed=3)
FRAMES = (5, 8, 11)
OFFSET = 4


@pytest.fixture(scope="module")
def video() -> SyntheticVideo:
    return SyntheticVideo(VIDEO)


def normalizer() -> FrameNormalizer:
    return FrameNormalizer(mean=MODEL.mean, std=MODEL.std)


def test_cell_flow_is_the_mean_pixel_flow_in_cells(video):
    flow, objects = true_cell_flow(video, current=8, key=4, stride=16)
    pixels = video.flow(current=8, key=4)
    assert flow.shape == (2, 6, 6) and objects.shape == (6, 6) and objects.any()
    np.testing.assert_allclose(flow[:, 1, 2], pixels[16:32, 32:48].reshape(-1, 2).mean(axis=0) / 16, rtol=1e-5)
    fine, _ = true_cell_flow(video, current=8, key=4, stride=8)  # a stride-8 grid: 8-pixel cells, in those cells
    assert fine.shape == (2, 12, 12)
    np.testing.assert_allclose(fine[:, 3, 5], pixels[24:32, 40:48].reshape(-1, 2).mean(axis=0) / 8, rtol=1e-5)


def test_untrained_flow_is_copying(video):
    """F starts at M = 0, S = 1: no motion predicted, the error is the objects' whole motion."""
    torch.manual_seed(0)
    found = flow_on_objects(build_detection_model(MODEL), [video], offset=OFFSET, frames=FRAMES, normalizer=normalizer())
    assert found.cells > 0 and found.true_motion > 0.2  # a fifth of a cell at least: the video moves
    assert found.predicted_motion == 0 and found.scale_deviation == 0
    assert found.end_point_error == pytest.approx(found.true_motion)


def test_exact_flow_has_no_error(video):
    torch.manual_seed(0)
    model = build_detection_model(MODEL)
    model.flow_net = ExactFlow([video], normalizer=normalizer(), channels=MODEL.channels, feature_stride=MODEL.output_stride)
    found = flow_on_objects(model, [video], offset=OFFSET, frames=FRAMES, normalizer=normalizer())
    assert found.end_point_error == pytest.approx(0, abs=1e-6)
    assert found.predicted_motion == pytest.approx(found.true_motion)


def test_pairs_before_the_first_frame_are_refused(video):
    model = build_detection_model(MODEL)
    with pytest.raises(ValueError, match="no pair"):
        flow_on_objects(model, [video], offset=OFFSET, frames=(0, 2), normalizer=normalizer())
    with pytest.raises(ValueError, match="offset must be"):
        flow_on_objects(model, [video], offset=0, frames=FRAMES, normalizer=normalizer())


def test_stale_boxes_measure_how_far_objects_move(video):
    """A still video leaves no box stale; the fast one leaves more stale boxes the longer the key frame is kept."""
    still = SyntheticVideo(SyntheticVideoConfig(height=96, width=96, length=12, num_objects=4, max_speed=0.0, seed=3))
    assert stale_box_share(still, offset=OFFSET, frames=FRAMES) == 0
    near, far = (stale_box_share(video, offset=d, frames=FRAMES) for d in (1, OFFSET))
    assert 0 <= near < far <= 1 and far > 0


def test_boxes_moved_by_the_exact_motion_are_stale_only_where_objects_occlude():
    """One object alone (no occlusion) moved by its mean flow is never stale; among six, occlusion leaves some stale."""
    pairs = dict(offset=9, frames=(9, 11))  # l = 10's farthest pairs
    alone = SyntheticVideo(SyntheticVideoConfig(height=96, width=96, length=12, num_objects=1, max_speed=5.0, seed=3))
    assert stale_box_share(alone, **pairs) == 1
    assert stale_box_share(alone, **pairs, follow_motion=True) == 0
    crowd = SyntheticVideo(SyntheticVideoConfig(height=96, width=96, length=12, num_objects=6, max_speed=5.0, seed=3))
    assert 0 < stale_box_share(crowd, **pairs, follow_motion=True) < stale_box_share(crowd, **pairs)


def test_warping_features_or_rfcn_maps_is_the_same_inside_the_frame():
    """Table 5's split for R-FCN: N_task is 1×1 convolutions only, and bilinear weights sum to 1, so with S = 1 warping f
    then running N_task equals warping the maps, wherever the samples land inside the feature grid."""
    from dff.ops.warp import warp

    torch.manual_seed(0)
    head = build_detection_model(MODEL).task_net
    for conv in (head.rpn_objectness, head.rpn_deltas, head.rfcn_classes, head.rfcn_boxes):
        nn.init.normal_(conv.bias)  # biases are where the two could differ (out-of-grid samples are zeros)
    feat = torch.randn(1, MODEL.channels, 6, 6)
    flow = torch.rand(1, 2, 6, 6) * 0.8  # right and down by < 1 cell: every sample inside but the last row and column
    inside = (slice(None), slice(None), slice(0, 5), slice(0, 5))
    for warped_feat, warped_map in zip(head(warp(feat, flow)), [warp(m, flow) for m in head(feat)]):
        torch.testing.assert_close(warped_feat[inside], warped_map[inside], atol=1e-5, rtol=1e-5)
