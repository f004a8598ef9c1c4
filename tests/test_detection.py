"""R-FCN's parts against direct computations: box code, anchors, IoU, NMS, PS-RoI pooling, targets, mAP, detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dff.detection.anchors import AnchorGrid
from dff.detection.boxes import BoxCoder, box_iou, clip_boxes
from dff.detection.head import DetectionConfig, ProposalConfig, RFCNMaps, RFCNTaskNet, rfcn_head, rfcn_head_tiny
from dff.detection.metrics import DetectionScore, average_precision
from dff.detection.metrics import box_iou as box_iou_numpy
from dff.detection.nms import batched_nms, nms
from dff.detection.psroi_pool import MIN_REGION_CELLS, psroi_pool
from dff.detection.targets import (
    IGNORED,
    NEGATIVE,
    POSITIVE,
    AnchorTargetConfig,
    RegionTargetConfig,
    label_anchors,
    region_targets,
    sample_labels,
)


def random_boxes(n: int, *, generator: torch.Generator, size: float = 100.0, dtype=torch.float32) -> torch.Tensor:
    corner = torch.rand(n, 2, generator=generator, dtype=dtype) * size
    sides = torch.rand(n, 2, generator=generator, dtype=dtype) * size / 3 + 1
    return torch.cat((corner, corner + sides), dim=1)


def iou_loop(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


class TestBoxes:
    def test_encode_decode_round_trip(self):
        g = torch.Generator().manual_seed(0)
        boxes, reference = random_boxes(50, generator=g, dtype=torch.float64), random_boxes(50, generator=g, dtype=torch.float64)
        for coder in (BoxCoder(), BoxCoder((10.0, 10.0, 5.0, 5.0))):
            deltas = coder.encode(boxes, reference)
            torch.testing.assert_close(coder.decode(deltas, reference), boxes)
        # A box relative to itself is the zero code; weights scale the code.
        assert BoxCoder((10.0, 10.0, 5.0, 5.0)).encode(boxes, boxes).abs().max() == 0
        torch.testing.assert_close(BoxCoder((10.0, 10.0, 5.0, 5.0)).encode(boxes, reference)[:, 2], 5 * BoxCoder().encode(boxes, reference)[:, 2])

    def test_iou_matches_a_direct_loop(self):
        g = torch.Generator().manual_seed(1)
        a, b = random_boxes(30, generator=g), random_boxes(20, generator=g)
        expected = torch.tensor([[iou_loop(x, y) for y in b.tolist()] for x in a.tolist()])
        torch.testing.assert_close(box_iou(a, b), expected)
        np.testing.assert_allclose(box_iou_numpy(a.numpy(), b.numpy()), expected.numpy(), rtol=1e-5, atol=1e-6)

    def test_clip(self):
        clipped = clip_boxes(torch.tensor([[-5.0, -3.0, 70.0, 20.0]]), (48, 64))
        assert clipped.tolist() == [[0.0, 0.0, 64.0, 20.0]]


class TestAnchors:
    def test_count_shape_and_order(self):
        grid = AnchorGrid(sizes=(32, 64, 128), aspect_ratios=(0.5, 1.0, 2.0), stride=16)
        anchors = grid(3, 5)
        assert grid.num_anchors == 9 and anchors.shape == (3 * 5 * 9, 4)
        # Anchor a of cell (y, x) is row (y·W + x)·n_a + a, centred on the cell's pixels.
        y, x, a = 2, 3, 4
        box = anchors[(y * 5 + x) * 9 + a]
        torch.testing.assert_close((box[:2] + box[2:]) / 2, torch.tensor([16 * x + 8.0, 16 * y + 8.0]))
        sides = anchors[:9, 2:] - anchors[:9, :2]
        torch.testing.assert_close(sides.prod(dim=1), torch.tensor([32.0, 64, 128] * 3) ** 2)  # area s²
        torch.testing.assert_close(sides[:, 1] / sides[:, 0], torch.tensor([0.5] * 3 + [1.0] * 3 + [2.0] * 3))  # h / w

    def test_bad_arguments_are_named(self):
        with pytest.raises(ValueError, match="positive"):
            AnchorGrid(sizes=(), aspect_ratios=(1.0,), stride=16)


class TestNMS:
    @staticmethod
    def nms_loop(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
        kept: list[int] = []
        for i in sorted(range(len(boxes)), key=lambda i: -float(scores[i])):
            if all(iou_loop(boxes[i].tolist(), boxes[j].tolist()) <= threshold for j in kept):
                kept.append(i)
        return kept

    @pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
    def test_matches_a_direct_loop(self, threshold):
        g = torch.Generator().manual_seed(2)
        boxes, scores = random_boxes(200, generator=g, size=60.0), torch.rand(200, generator=g)
        expected = self.nms_loop(boxes, scores, threshold)
        assert nms(boxes, scores, threshold).tolist() == expected
        assert nms(boxes, scores, threshold, max_kept=5).tolist() == expected[:5]

    def test_batched_keeps_groups_apart(self):
        g = torch.Generator().manual_seed(3)
        boxes, scores = random_boxes(120, generator=g, size=50.0), torch.rand(120, generator=g)
        groups = torch.randint(3, (120,), generator=g)
        kept = set(batched_nms(boxes, scores, groups, 0.3).tolist())
        expected = set()
        for c in range(3):
            index = torch.nonzero(groups == c).flatten()
            expected |= {int(index[i]) for i in self.nms_loop(boxes[index], scores[index], 0.3)}
        assert kept == expected

    def test_empty(self):
        assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def psroi_loop(maps: torch.Tensor, rois: torch.Tensor, k: int, scale: float) -> torch.Tensor:
    """Each bin of each region on its own: the cells it overlaps, their mean in its own channel bank."""
    _, channels, height, width = maps.shape
    depth = channels // (k * k)
    out = maps.new_zeros(len(rois), depth, k, k)
    for r, (b, x1, y1, x2, y2) in enumerate(rois.tolist()):
        bin_w = max((x2 - x1) * scale, MIN_REGION_CELLS) / k
        bin_h = max((y2 - y1) * scale, MIN_REGION_CELLS) / k
        for i in range(k):
            for j in range(k):
                ys = (min(max(math.floor(y1 * scale + i * bin_h), 0), height), min(max(math.ceil(y1 * scale + (i + 1) * bin_h), 0), height))
                xs = (min(max(math.floor(x1 * scale + j * bin_w), 0), width), min(max(math.ceil(x1 * scale + (j + 1) * bin_w), 0), width))
                if ys[1] <= ys[0] or xs[1] <= xs[0]:
                    continue
                for d in range(depth):
                    out[r, d, i, j] = maps[int(b), (d * k + i) * k + j, ys[0] : ys[1], xs[0] : xs[1]].mean()
    return out


class TestPSRoIPool:
    def test_matches_a_direct_loop(self):
        g = torch.Generator().manual_seed(4)
        maps = torch.randn(2, 3 * 3 * 3, 6, 7, generator=g, dtype=torch.float64)
        rois = torch.cat((torch.randint(2, (25, 1), generator=g).double(), random_boxes(25, generator=g, size=100.0, dtype=torch.float64)), dim=1)
        rois = torch.cat((rois, torch.tensor([[1.0, -20.0, -20.0, 130.0, 200.0], [0.0, 50.0, 40.0, 50.5, 40.2], [1.0, 200.0, 5.0, 260.0, 30.0]], dtype=torch.float64)))
        torch.testing.assert_close(psroi_pool(maps, rois, group_size=3, spatial_scale=1 / 16), psroi_loop(maps, rois, 3, 1 / 16))

    def test_float32_agrees_with_float64(self):
        g = torch.Generator().manual_seed(5)
        maps = torch.randn(1, 2 * 7 * 7, 12, 10, generator=g) + 3
        rois = torch.cat((torch.zeros(40, 1), random_boxes(40, generator=g, size=150.0)), dim=1)
        single = psroi_pool(maps, rois, group_size=7, spatial_scale=1 / 16)
        torch.testing.assert_close(single, psroi_pool(maps.double(), rois.double(), group_size=7, spatial_scale=1 / 16).float(), atol=1e-5, rtol=1e-5)

    def test_gradient(self):
        g = torch.Generator().manual_seed(6)
        maps = torch.randn(2, 2 * 2 * 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
        rois = torch.tensor([[0, 3.0, 5.0, 60.0, 50.0], [1, 10.0, 0.0, 80.0, 33.0], [1, 0.0, 0.0, 16.0, 16.0]], dtype=torch.float64)
        assert torch.autograd.gradcheck(lambda m: psroi_pool(m, rois, group_size=2, spatial_scale=1 / 16), (maps,))

    def test_bad_shapes_are_named(self):
        with pytest.raises(ValueError, match=r"D\*3\*3"):
            psroi_pool(torch.zeros(1, 10, 4, 4), torch.zeros(1, 5), group_size=3, spatial_scale=1 / 16)
        with pytest.raises(ValueError, match="rois"):
            psroi_pool(torch.zeros(1, 9, 4, 4), torch.zeros(1, 4), group_size=3, spatial_scale=1 / 16)


class TestTargets:
    def test_anchor_labels(self):
        gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
        anchors = torch.tensor(
            [
                [0.0, 0.0, 10.0, 10.0],  # IoU 1 with box 0 → positive
                [0.0, 0.0, 10.0, 20.0],  # IoU 0.5 → ignored
                [0.0, 0.0, 10.0, 50.0],  # IoU 0.2 → negative
                [52.0, 50.0, 66.0, 60.0],  # IoU 8/16 = 0.5 with box 1, its best anchor → positive
                [100.0, 100.0, 120.0, 120.0],  # no overlap → negative
            ]
        )
        labels, matched = label_anchors(anchors, gt, AnchorTargetConfig())
        assert labels.tolist() == [POSITIVE, IGNORED, NEGATIVE, POSITIVE, NEGATIVE]
        assert matched[[0, 3]].tolist() == [0, 1]
        assert label_anchors(anchors, torch.zeros(0, 4), AnchorTargetConfig())[0].tolist() == [NEGATIVE] * 5

    def test_sampling_caps_positives_and_the_batch(self):
        labels = torch.tensor([POSITIVE] * 10 + [NEGATIVE] * 100 + [IGNORED] * 5)
        sampled = sample_labels(labels, batch_size=16, positive_fraction=0.5, generator=torch.Generator().manual_seed(0))
        assert (sampled == POSITIVE).sum() == 8 and (sampled == NEGATIVE).sum() == 8
        assert (labels[sampled == POSITIVE] == POSITIVE).all() and (labels[sampled == NEGATIVE] == NEGATIVE).all()
        few = sample_labels(torch.tensor([POSITIVE] * 2 + [NEGATIVE] * 100), batch_size=16, positive_fraction=0.5)
        assert (few == POSITIVE).sum() == 2 and (few == NEGATIVE).sum() == 14  # negatives fill the batch

    def test_region_targets(self):
        gt = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
        proposals = torch.tensor([[10.0, 10.0, 30.0, 32.0], [10.0, 10.0, 30.0, 50.0], [60.0, 60.0, 70.0, 70.0]])
        targets = region_targets(proposals, gt, torch.tensor([3]), RegionTargetConfig(batch_size=8, foreground_fraction=1.0))
        # All four regions are sampled (proposals + the box itself): IoU 0.91 and 1 are class 3, 0.5 too, 0 background.
        by_region = {tuple(r.tolist()): int(c) for r, c in zip(targets.rois, targets.classes)}
        assert by_region == {(10.0, 10.0, 30.0, 32.0): 3, (10.0, 10.0, 30.0, 50.0): 3, (60.0, 60.0, 70.0, 70.0): 0, (10.0, 10.0, 30.0, 30.0): 3}
        assert (targets.matched_boxes[targets.classes > 0] == gt).all()
        empty = region_targets(proposals, torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), RegionTargetConfig())
        assert len(empty.rois) == 3 and (empty.classes == 0).all()


class TestMeanAP:
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)

    def score(self, boxes, scores, classes, gt_classes=(1, 1)) -> DetectionScore:
        metric = DetectionScore(num_classes=3)
        metric.update(boxes=np.array(boxes, np.float32), scores=np.array(scores), classes=np.array(classes), gt_boxes=self.gt, gt_classes=np.array(gt_classes))
        return metric

    def test_perfect(self):
        metric = self.score(self.gt, [0.9, 0.8], [1, 1])
        assert metric.class_ap[1] == 1.0 and np.isnan(metric.class_ap[2]) and metric.mean_ap == 1.0

    def test_a_missed_box_halves_recall(self):
        assert self.score(self.gt[:1], [0.9], [1]).mean_ap == pytest.approx(0.5)

    def test_false_positives(self):
        # A miss ranked first: precision 1/2 at recall 1/2 and 2/3 at recall 1, interpolated to 2/3 throughout;
        # ranked last it costs nothing.
        far = [50, 50, 60, 60]
        assert self.score([far, *self.gt], [0.95, 0.9, 0.8], [1, 1, 1]).mean_ap == pytest.approx(2 / 3)
        assert self.score([*self.gt, far], [0.9, 0.8, 0.1], [1, 1, 1]).mean_ap == pytest.approx(1.0)
        # A duplicate of a found box is a false positive; a wrong class counts against that class only.
        assert self.score([self.gt[0], self.gt[0]], [0.9, 0.8], [1, 1]).mean_ap == pytest.approx(0.5)
        wrong = self.score(self.gt, [0.9, 0.8], [1, 2], gt_classes=(1, 2))
        assert wrong.class_ap[1:].tolist() == [1.0, 1.0]

    def test_over_frames_and_interpolation(self):
        metric = DetectionScore(num_classes=2)
        for boxes, scores in (([self.gt[0]], [0.3]), ([[40, 40, 50, 50]], [0.9])):
            metric.update(boxes=np.array(boxes), scores=np.array(scores), classes=np.array([1]), gt_boxes=self.gt[:1], gt_classes=np.array([1]))
        # Ranked: FP (0.9), TP (0.3); 2 boxes in all → recall 0.5 at precision 0.5.
        assert metric.mean_ap == pytest.approx(0.25)
        assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)

    def test_bad_classes_are_named(self):
        with pytest.raises(ValueError, match=r"1\.\.2"):
            self.score(self.gt, [0.9, 0.8], [1, 3])


class TestHead:
    def test_builders_and_channels(self):
        head = rfcn_head()
        assert head.rpn_objectness.out_channels == 2 * 9 and head.rpn_deltas.out_channels == 4 * 9
        assert head.rfcn_classes.out_channels == 31 * 49 and head.rfcn_boxes.out_channels == 4 * 49
        assert all(conv.in_channels == 512 and conv.kernel_size == (1, 1) for conv in (head.rpn_objectness, head.rfcn_boxes))
        maps = rfcn_head_tiny(num_classes=4)(torch.randn(2, 32, 5, 6))
        assert [tuple(m.shape) for m in maps] == [(2, 18, 5, 6), (2, 36, 5, 6), (2, 36, 5, 6), (2, 36, 5, 6)]
        with pytest.raises(ValueError, match="even"):
            RFCNTaskNet(in_channels=33, num_classes=4)

    def test_halves_feed_their_own_branch(self):
        head = rfcn_head_tiny(in_channels=8, num_classes=3)
        feat = torch.randn(1, 8, 4, 4)
        changed = feat.clone()
        changed[:, 4:] += 1  # only the detection half
        before, after = head(feat), head(changed)
        assert torch.equal(before.objectness, after.objectness) and torch.equal(before.anchor_deltas, after.anchor_deltas)
        assert not torch.equal(before.class_maps, after.class_maps)

    def test_detect_gives_boxes_in_frame_pixels(self):
        """Hand-set maps: one confident anchor, class 2 everywhere, no regression → that anchor's box, class 2."""
        head = RFCNTaskNet(
            in_channels=8, num_classes=3, group_size=3, anchor_sizes=(32.0,), aspect_ratios=(1.0,),
            proposal=ProposalConfig(pre_nms_top_n=100, post_nms_top_n=10), detection=DetectionConfig(score_threshold=0.5),
        )
        objectness = torch.zeros(1, 2, 4, 4)
        objectness[0, 1] = -10.0
        objectness[0, 1, 1, 2] = 10.0  # cell (y=1, x=2): anchor centred at (40, 24)
        class_maps = torch.zeros(1, 3 * 9, 4, 4)
        class_maps[0, 2 * 9 : 3 * 9] = 5.0
        maps = RFCNMaps(objectness, torch.zeros(1, 4, 4, 4), class_maps, torch.zeros(1, 4 * 9, 4, 4))
        (found,) = head.detect(maps)
        assert found.boxes[0].tolist() == [24.0, 8.0, 56.0, 40.0]
        assert found.classes.tolist() == [2] * len(found.boxes)
        assert found.scores[0] == pytest.approx(math.exp(5) / (math.exp(5) + 2), rel=1e-5)
        assert (found.scores[:-1] >= found.scores[1:]).all()
        # Per-class NMS at 0.3 leaves no two kept boxes overlapping more than that.
        overlaps = box_iou(found.boxes, found.boxes) - torch.eye(len(found.boxes))
        assert overlaps.max() <= 0.3
