"""Deep Feature Flow with the R-FCN head: boxes of the synthetic video, pairs, real training steps, inference, protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dff.config import ModelConfig
from dff.data.pairs import image_tensor
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.detection import RFCNTaskNet, build_detection_model
from dff.detection.data import DetectionPairDataset, collate_detection_pairs, pad_targets, unpad_targets
from dff.detection.evaluate import evaluate_detection
from dff.detection.ground_truth import SyntheticBoxes, instance_boxes
from dff.detection.losses import GroundTruth
from dff.detection.objective import DetectionObjective
from dff.models.preprocess import FrameNormalizer
from dff.train.schedule import OptimiserConfig, make_sgd

MODEL = ModelConfig(feature="tiny", flow="tiny", num_classes=4)
VIDEO = SyntheticVideoConfig(height=96, width=96, length=16, max_speed=2.0, seed=0)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One CPU thread, as training on a shared CPU runs (a second thread mostly waits for a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def sequence() -> SyntheticBoxes:
    return SyntheticBoxes(SyntheticVideo(VIDEO))


def normalizer() -> FrameNormalizer:
    return FrameNormalizer(mean=MODEL.mean, std=MODEL.std)


class TestGroundTruth:
    def test_boxes_bound_visible_pixels_and_drop_fragments(self):
        instances = np.zeros((20, 30), np.uint8)
        labels = np.zeros((20, 30), np.uint8)
        instances[2:7, 3:12], labels[2:7, 3:12] = 1, 2  # 45 pixels, box (3, 2, 12, 7)
        instances[10:12, 0:30], labels[10:12, 0:30] = 2, 1  # 60 pixels but 2 rows high: dropped by min_side
        instances[15, 20], labels[15, 20] = 3, 3  # one pixel: dropped by min_pixels
        found = instance_boxes(instances, labels, min_pixels=10, min_side=3)
        assert found.boxes.tolist() == [[3.0, 2.0, 12.0, 7.0]] and found.classes.tolist() == [2]

    def test_synthetic_video_boxes(self, sequence):
        video = sequence.video
        for t in (0, 7, 15):
            truth = sequence.boxes(t)
            instances, labels = video.instances(t), video.label(t)
            assert truth.boxes.dtype == np.float32 and truth.classes.dtype == np.int64 and len(truth.boxes) >= 1
            for (x1, y1, x2, y2), c in zip(truth.boxes.astype(int), truth.classes):
                inside = instances[y1:y2, x1:x2]
                owner = np.bincount(inside[inside > 0]).argmax()
                ys, xs = np.nonzero(instances == owner)
                assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
                assert (labels[instances == owner] == c).all() and 1 <= c < MODEL.num_classes


class TestPairs:
    def test_samples_and_batches(self, sequence):
        dataset = DetectionPairDataset([sequence], max_offset=3)
        torch.manual_seed(0)
        samples = [dataset[n] for n in (0, 5, 15)]
        assert samples[0]["offset"] == 0 and all(0 <= s["offset"] <= 3 for s in samples)
        key, current, targets, same = collate_detection_pairs(samples)
        assert key.shape == current.shape == (3, 3, 96, 96) and key.dtype == torch.uint8
        assert same.tolist() == [s["offset"] == 0 for s in samples]
        for sample, truth in zip(samples, unpad_targets(targets)):
            assert torch.equal(truth.boxes, sample["boxes"]) and torch.equal(truth.classes, sample["classes"])

    def test_padding_round_trip_with_an_empty_frame(self):
        truth = [GroundTruth(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), torch.tensor([2])), GroundTruth(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]
        back = unpad_targets(pad_targets(truth))
        assert torch.equal(back[0].boxes, truth[0].boxes) and back[0].classes.tolist() == [2] and len(back[1].boxes) == 0


def test_key_and_non_key_frames_run_the_head_on_their_features(sequence):
    """Key frame: head(N_feat(I_k)); non-key: head(W(f_k, F(I_k, I_i))); untrained F (M = 0, S = 1) propagates f_k unchanged."""
    torch.manual_seed(0)
    model = build_detection_model(MODEL).eval()
    assert isinstance(model.task_net, RFCNTaskNet)
    frames = normalizer()(torch.stack([image_tensor(sequence.image(t)) for t in (0, 4)]))
    key_frame, frame = frames[:1], frames[1:]
    with torch.no_grad():
        key_feat = model.key(key_frame)
        key_maps = model.task(key_feat)
        non_key_maps = model.task(model.propagate(key_feat, key_frame, frame))
        pair_maps = model.forward_pair(key_frame, frame)
    for key_map, non_key_map, pair_map in zip(key_maps, non_key_maps, pair_maps):
        torch.testing.assert_close(non_key_map, key_map, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pair_map, non_key_map)


def test_training_steps_lower_the_loss_and_reach_every_part(sequence):
    torch.manual_seed(0)
    model = build_detection_model(MODEL)
    objective = DetectionObjective(model=model, normalizer=normalizer())
    dataset = DetectionPairDataset([sequence], max_offset=4)
    torch.manual_seed(1)
    batch = collate_detection_pairs([dataset[n] for n in (3, 8, 12, 15)])
    assert not batch[3].all()  # some pairs propagate, so F is trained through W

    def loss() -> torch.Tensor:
        torch.manual_seed(2)  # the same anchor and region samples each time
        return objective(*batch)

    flow_before = [p.detach().clone() for p in model.flow_net.parameters()]
    optimiser = make_sgd(list(model.parameters()), OptimiserConfig(lr=0.03))
    with torch.no_grad():
        start = float(loss())
    for _ in range(15):
        value = loss()
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
    with torch.no_grad():
        end = float(loss())
    assert end < 0.7 * start
    assert any(not torch.equal(a, b) for a, b in zip(flow_before, model.flow_net.parameters()))

    # Inference after training: per frame, boxes in frame pixels with scores and classes, best first.
    model.eval()
    with torch.no_grad():
        found = model.task_net.detect(model.task(model.key(normalizer()(batch[1]))))
    assert len(found) == 4
    head = model.task_net
    for detections in found:
        n = len(detections.boxes)
        assert detections.boxes.shape == (n, 4) and detections.scores.shape == detections.classes.shape == (n,)
        assert n <= head.detection.max_detections
        assert (detections.boxes >= 0).all() and (detections.boxes[:, 2] <= 96).all() and (detections.boxes[:, 3] <= 96).all()
        assert (detections.boxes[:, 2:] > detections.boxes[:, :2]).all()
        assert ((detections.scores > head.detection.score_threshold) & (detections.scores <= 1)).all()
        assert ((detections.classes >= 1) & (detections.classes < MODEL.num_classes)).all()
        assert (detections.scores[:-1] >= detections.scores[1:]).all()


def test_frozen_parts_get_no_gradient(sequence):
    torch.manual_seed(0)
    model = build_detection_model(MODEL)
    objective = DetectionObjective(model=model, normalizer=normalizer(), frozen=[model.flow_net])
    batch = collate_detection_pairs([DetectionPairDataset([sequence], max_offset=4)[n] for n in (6, 9)])
    objective(*batch).backward()
    assert all(p.grad is None for p in model.flow_net.parameters())
    assert all(p.grad is not None for p in model.task_net.parameters())
    assert not model.flow_net.training


def test_evaluation_protocol_counts_pairs(sequence):
    torch.manual_seed(0)
    model = build_detection_model(MODEL)
    common = dict(mean=MODEL.mean, std=MODEL.std)
    frame = evaluate_detection(model, [sequence], mode="frame", **common)
    dff = evaluate_detection(model, [sequence], mode="dff", key_interval=3, **common)
    assert (frame.key_interval, frame.pairs, frame.labelled_frames, frame.non_key_ms) == (1, 16, 16, None)
    assert (dff.key_interval, dff.pairs) == (3, 1 + 2 + 3 * 14)
    for result in (frame, dff):
        assert 0 <= result.mean_ap <= 1 and len(result.class_ap) == MODEL.num_classes - 1 and result.fps > 0
    with pytest.raises(ValueError, match="mode must be one of"):
        evaluate_detection(model, [sequence], mode="tracking", **common)  # type: ignore[arg-type]
