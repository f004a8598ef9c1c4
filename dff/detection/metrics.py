"""Detection accuracy: average precision per class at IoU 0.5 and its mean (mAP), PASCAL VOC style. Numpy only.

ImageNet VID's "standard mean average precision (mAP)" (Section 5.1) follows PASCAL VOC: per class,
detections from all frames are ranked by score; a detection is a true positive if its
best-overlapping ground-truth box of that class in its frame has IoU ≥ 0.5 and was not already
taken by a higher-scored detection, otherwise a false positive (a duplicate included). AP is
the area under the interpolated precision-recall curve, precision at recall r being the best
precision at any recall ≥ r (VOC 2010 onwards, all points). A class with no ground truth
anywhere has no AP (NaN) and is left out of the mean.
"""

from __future__ import annotations

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, 4) and (m, 4) boxes (x1, y1, x2, y2) → (n, m) IoU; 0 where both are empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)

    def area(boxes: np.ndarray) -> np.ndarray:
        return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)

    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve; ``recall`` non-decreasing, one point per ranked detection."""
    recall = np.concatenate(([0.0], np.asarray(recall, np.float64)))
    precision = np.concatenate(([0.0], np.asarray(precision, np.float64)))
    interpolated = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * interpolated[1:]))


class DetectionScore:
    """Accumulates detections and ground truth frame by frame; ``class_ap`` and ``mean_ap`` summarise.

    Classes are 1 … ``num_classes`` − 1 (0 is the background, as in the models' ``num_classes``).
    """

    def __init__(self, *, num_classes: int, iou_threshold: float = 0.5) -> None:
        if not (num_classes >= 2 and 0 < iou_threshold <= 1):
            raise ValueError(f"need num_classes >= 2 (C + background) and 0 < iou_threshold <= 1, got {num_classes} and {iou_threshold}")
        self.num_classes = num_classes
        self.iou_threshold = iou_threshold
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._true: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._truths = np.zeros(num_classes, np.int64)

    def update(
        self, *, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, gt_boxes: np.ndarray, gt_classes: np.ndarray
    ) -> None:
        """Add one frame: detections (n, 4), (n,), (n,) and ground truth (g, 4), (g,); classes in 1 … C."""
        boxes, scores, classes = np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1), np.asarray(classes).reshape(-1)
        gt_boxes, gt_classes = np.asarray(gt_boxes).reshape(-1, 4), np.asarray(gt_classes).reshape(-1)
        if not (len(boxes) == len(scores) == len(classes) and len(gt_boxes) == len(gt_classes)):
            raise ValueError(
                f"detections need as many boxes, scores and classes ({len(boxes)}, {len(scores)}, {len(classes)}) "
                f"and ground truth as many boxes as classes ({len(gt_boxes)}, {len(gt_classes)})"
            )
        for name, values in (("classes", classes), ("gt_classes", gt_classes)):
            if values.size and not (values.min() >= 1 and values.max() < self.num_classes):
                raise ValueError(f"{name} must lie in 1..{self.num_classes - 1}, got range {values.min()}..{values.max()}")
        for c in np.union1d(np.unique(classes), np.unique(gt_classes)).astype(int):
            mine = classes == c
            truth = gt_boxes[gt_classes == c]
            self._truths[c] += len(truth)
            order = np.argsort(-scores[mine], kind="stable")
            ranked_boxes, ranked_scores = boxes[mine][order], scores[mine][order]
            overlaps = box_iou(ranked_boxes, truth)
            taken = np.zeros(len(truth), bool)
            true = np.zeros(len(ranked_boxes), bool)
            for d in range(len(ranked_boxes)):
                if not len(truth):
                    break
                best = int(np.argmax(overlaps[d]))
                if overlaps[d, best] >= self.iou_threshold and not taken[best]:
                    taken[best] = true[d] = True
            self._scores[c].append(ranked_scores)
            self._true[c].append(true)

    @property
    def class_ap(self) -> np.ndarray:
        """(num_classes,) AP per class; NaN for the background and for classes without ground truth."""
        out = np.full(self.num_classes, np.nan)
        for c in range(1, self.num_classes):
            if self._truths[c] == 0:
                continue
            scores = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
            true = np.concatenate(self._true[c]) if self._true[c] else np.zeros(0, bool)
            true = true[np.argsort(-scores, kind="stable")]
            hits = np.cumsum(true)
            recall = hits / self._truths[c]
            precision = hits / np.arange(1, len(true) + 1)
            out[c] = average_precision(recall, precision)
        return out

    @property
    def mean_ap(self) -> float:
        """Mean of the defined per-class APs; NaN when no class has ground truth."""
        defined = self.class_ap[~np.isnan(self.class_ap)]
        return float(defined.mean()) if defined.size else float("nan")
