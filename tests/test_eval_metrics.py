"""mIoU on hand-made cases: exact values, the ignore label, absent classes, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from dff.metrics import IGNORE_INDEX, SegmentationScore, class_iou, confusion_matrix, mean_iou


def test_perfect_prediction_scores_one():
    label = np.array([[0, 1], [2, 2]])
    assert mean_iou(confusion_matrix(label, label, 3)) == 1.0


def test_hand_computed_iou():
    label = np.array([[0, 0, 1, 1]])
    prediction = np.array([[0, 1, 1, 1]])
    # class 0: TP 1, FN 1, FP 0 → 1/2; class 1: TP 2, FP 1 → 2/3
    confusion = confusion_matrix(prediction, label, 2)
    assert confusion.tolist() == [[1, 1], [0, 2]]
    assert class_iou(confusion) == pytest.approx([1 / 2, 2 / 3])
    assert mean_iou(confusion) == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_ignored_pixels_count_nowhere():
    label = np.array([[0, IGNORE_INDEX, 1, IGNORE_INDEX]])
    prediction = np.array([[0, 1, 1, 0]])  # wrong only where the label is ignored
    confusion = confusion_matrix(prediction, label, 2)
    assert confusion.sum() == 2
    assert mean_iou(confusion) == 1.0


def test_class_absent_from_labels_and_predictions_is_left_out_of_the_mean():
    label = np.array([[0, 0, 2]])
    prediction = np.array([[0, 0, 2]])
    iou = class_iou(confusion_matrix(prediction, label, 3))
    assert np.isnan(iou[1]) and mean_iou(confusion_matrix(prediction, label, 3)) == 1.0


def test_class_predicted_but_absent_from_labels_scores_zero():
    label = np.array([[0, 0]])
    prediction = np.array([[0, 1]])
    assert class_iou(confusion_matrix(prediction, label, 2)).tolist() == [0.5, 0.0]


def test_score_accumulates_frames_before_dividing():
    score = SegmentationScore(num_classes=2)
    score.update(np.array([[1, 1]]), np.array([[1, 1]]))
    score.update(np.array([[0, 0]]), np.array([[1, 1]]))
    # one confusion over both frames: class 1 TP 2 / union 4, class 0 TP 0 / union 2
    assert score.miou == pytest.approx((0.5 + 0.0) / 2)
    assert score.pixel_accuracy == 0.5


def test_nothing_counted_gives_nan():
    assert np.isnan(mean_iou(confusion_matrix(np.zeros((2, 2)), np.full((2, 2), IGNORE_INDEX), 3)))


@pytest.mark.parametrize(
    "prediction, label, message",
    [
        (np.zeros((2, 2)), np.zeros((2, 3)), "one shape"),
        (np.zeros((2, 2)), np.full((2, 2), 7), r"label values must lie in 0\.\.2"),
        (np.full((2, 2), -1), np.zeros((2, 2)), r"prediction values must lie in 0\.\.2"),
    ],
)
def test_bad_input_is_named(prediction, label, message):
    with pytest.raises(ValueError, match=message):
        confusion_matrix(prediction, label, 3)
