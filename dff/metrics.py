"""Segmentation accuracy: confusion matrices and mean intersection-over-union. Numpy only, no torch.

The paper measures Cityscapes accuracy by "the pixel-level mean intersection-over-union (mIoU)
score" (Section 5.1). The score accumulates one confusion matrix over every evaluated frame, then
IoU_c = TP_c / (TP_c + FP_c + FN_c) per class and averages over the classes that occur, in the
labels or in the predictions; a class that occurs nowhere has no IoU (NaN) and is left out of the
mean. Pixels whose label is the ignore value are left out everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Label value of pixels without a class (as ``dff.data.IGNORE_INDEX``; repeated so the runtime needs no data package).
IGNORE_INDEX = 255


def confusion_matrix(prediction: np.ndarray, label: np.ndarray, num_classes: int, *, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class.

    ``prediction`` and ``label`` are integer arrays of one shape; label pixels equal to
    ``ignore_index`` are skipped. A label or prediction outside 0 … num_classes - 1 (other than
    the ignore value) is an error, not silently dropped.
    """
    prediction = np.asarray(prediction)
    label = np.asarray(label)
    if not (prediction.shape == label.shape):
        raise ValueError(f"prediction and label must have one shape, got {prediction.shape} and {label.shape}")
    if not (num_classes >= 1):
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    valid = label != ignore_index
    truth = label[valid].astype(np.int64)
    guess = prediction[valid].astype(np.int64)
    for name, values in (("label", truth), ("prediction", guess)):
        if values.size and not (values.min() >= 0 and values.max() < num_classes):
            raise ValueError(
                f"{name} values must lie in 0..{num_classes - 1} (or be {ignore_index} in the label), "
                f"got range {values.min()}..{values.max()}"
            )
    counts = np.bincount(truth * num_classes + guess, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """IoU per class from a confusion matrix; NaN for a class absent from both labels and predictions."""
    confusion = np.asarray(confusion, dtype=np.float64)
    if not (confusion.ndim == 2 and confusion.shape[0] == confusion.shape[1]):
        raise ValueError(f"confusion must be a square matrix, got shape {confusion.shape}")
    true_positive = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(confusion: np.ndarray) -> float:
    """Mean of :func:`class_iou` over the classes that occur; NaN when no pixel was counted."""
    iou = class_iou(confusion)
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


@dataclass
class SegmentationScore:
    """Accumulates a confusion matrix frame by frame: ``update(prediction, label)``, then ``miou``."""

    num_classes: int
    ignore_index: int = IGNORE_INDEX
    confusion: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def update(self, prediction: np.ndarray, label: np.ndarray) -> None:
        self.confusion += confusion_matrix(prediction, label, self.num_classes, ignore_index=self.ignore_index)

    @property
    def miou(self) -> float:
        return mean_iou(self.confusion)

    @property
    def pixel_accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")
