"""``dff check`` of a detection ``task.onnx``: detections matched against the reference's, per frame.

Boxes cannot be compared element by element: two detections of nearly equal score may swap rows
between runtimes. Each reference detection is matched to the runtime's detection of the same class
with the highest IoU; the comparisons are then ``boxes`` (1 − the smallest matched IoU, within
1 − :data:`MIN_IOU`), ``detection_scores`` (the largest score difference of a matched pair),
``classes`` (the share of reference detections without a same-class match) and ``count``
(the largest difference in the number of detections). A runtime that cannot load or run the graph
(OpenCV DNN has no NonMaxSuppression) is named in the report with its error, and is not a pass.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch
from torch import Tensor, nn

from dff.detection.head import RFCNTaskNet
from dff.export.runners import RUNTIMES, Runner, runner
from dff.manifest import BOXES, CLASSES, COUNT, DETECTION_SCORES

#: Matched boxes must overlap at least this much (issue 15: IoU >= 0.99).
MIN_IOU = 0.99
#: Runtimes the detection graph is also compared in, beyond those asked for.
EXTRA_RUNTIMES = ("openvino",)

Feeds = dict[str, np.ndarray]

if TYPE_CHECKING:
    from dff.export.check import Comparison


class DetectionReference(nn.Module):
    """f → the padded outputs of task.onnx, from :meth:`RFCNTaskNet.detect` (the training code's own detections)."""

    def __init__(self, *, task_net: RFCNTaskNet, max_detections: int) -> None:
        super().__init__()
        self.task_net = task_net
        self.max_detections = max_detections

    def forward(self, feat: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        m = self.max_detections
        rows = []
        for found in self.task_net.detect(self.task_net(feat)):
            k = min(m, len(found.scores))
            boxes, scores, classes = torch.zeros(m, 4), torch.zeros(m), torch.zeros(m, dtype=torch.int32)
            boxes[:k], scores[:k], classes[:k] = found.boxes[:k], found.scores[:k], found.classes[:k].int()
            rows.append((boxes, scores, classes, torch.tensor(k, dtype=torch.int32)))
        return tuple(torch.stack(column) for column in zip(*rows))  # type: ignore[return-value]


def match_detections(expected: Feeds, got: Feeds) -> tuple[float, float, float, float]:
    """(1 − smallest matched IoU, largest matched score difference, share unmatched, largest count difference)."""
    worst_iou, worst_score, unmatched, total, count_gap = 1.0, 0.0, 0, 0, 0
    if got[BOXES].shape[0] != expected[BOXES].shape[0]:
        return float("inf"), float("inf"), float("inf"), float("inf")
    for b in range(expected[BOXES].shape[0]):
        n, k = int(expected[COUNT][b]), int(got[COUNT][b])
        count_gap = max(count_gap, abs(n - k))
        boxes, scores, classes = (got[name][b, :k] for name in (BOXES, DETECTION_SCORES, CLASSES))
        taken = np.zeros(k, dtype=bool)
        for i in range(n):
            total += 1
            same = (classes == expected[CLASSES][b, i]) & ~taken
            if not same.any():
                unmatched += 1
                continue
            ious = np.where(same, _iou(expected[BOXES][b, i], boxes), -1.0)
            j = int(ious.argmax())
            taken[j] = True
            worst_iou = min(worst_iou, float(ious[j]))
            worst_score = max(worst_score, abs(float(scores[j]) - float(expected[DETECTION_SCORES][b, i])))
    return 1.0 - worst_iou, worst_score, unmatched / max(total, 1), float(count_gap)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=1)
    union = _area(box) + _area(boxes) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 1.0)


def _area(boxes: np.ndarray) -> np.ndarray:
    return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(boxes[..., 3] - boxes[..., 1], 0, None)


def _runner(runtime: str, model: onnx.ModelProto) -> Runner:
    if runtime in RUNTIMES:
        return runner(runtime, model)
    return importlib.import_module(f"dff.export.runners.{runtime}").RUNNER(model)


def detection_comparisons(
    model: onnx.ModelProto,
    inputs: str,
    expected: Feeds,
    feeds: Feeds,
    runtimes: Sequence[str],
    runs: dict[str, Runner | str],
    score_tolerance: float,
) -> tuple[list[Comparison], list[str]]:
    """The four comparisons of each runtime that runs ``model`` on ``feeds``; a note for each that cannot, saying why.

    ``runs`` caches the runners (or the reason a runtime failed) between input sets.
    """
    from dff.export.check import Comparison  # check.py calls this module

    comparisons, notes = [], []
    for runtime in dict.fromkeys([*runtimes, *EXTRA_RUNTIMES]):
        if runtime not in runs:
            try:
                runs[runtime] = _runner(runtime, model)
            except Exception as error:  # noqa: BLE001 - any engine's refusal is reported with its reason
                runs[runtime] = _first_line(error)
        run = runs[runtime]
        got: Feeds | None = None
        if not isinstance(run, str):
            try:
                got = run(feeds)
            except Exception as error:  # noqa: BLE001
                runs[runtime] = run = _first_line(error)
        if got is None:
            notes.append(f"task (detection): {runtime} cannot run task.onnx on {inputs}: {run}")
            continue
        iou_gap, score_gap, unmatched, count_gap = match_detections(expected, got)
        constant = int(expected[COUNT].sum()) == 0
        for output, error, tolerance in (
            (BOXES, iou_gap, 1.0 - MIN_IOU),
            (DETECTION_SCORES, score_gap, score_tolerance),
            (CLASSES, unmatched, 0.0),
            (COUNT, count_gap, 0.0),
        ):
            comparisons.append(Comparison("task", runtime, inputs, output, error, error, tolerance, vacuous=constant))
    return comparisons, notes


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0][:200] if lines else ''}"
