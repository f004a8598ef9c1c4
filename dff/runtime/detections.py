"""One frame's detections as the runtime returns them: boxes in the frame's own pixels, scores, classes. Torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dff.manifest import LABELS, Manifest


def task_outputs(manifest: Manifest) -> tuple[str, ...]:
    """The task graph outputs a backend hands back: the labels, or a detection export's four padded outputs."""
    if manifest.task == "detection":
        return tuple(spec.name for spec in manifest.models.task.outputs)
    return (LABELS,)


def task_handle(outputs: Sequence[Any]) -> Any:
    """A task graph's returned outputs as one handle: the labels alone, or a detection export's four as a tuple."""
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


@dataclass(frozen=True)
class Detections:
    """Best first: boxes (n, 4) float32 x1, y1, x2, y2 in pixels, scores (n,) float32, classes (n,) int32 in 1 … C."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def from_padded(cls, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, count: np.ndarray) -> Detections:
        """The first ``count`` rows of one frame's padded task outputs ((M, 4), (M,), (M,), scalar)."""
        n = int(np.asarray(count).reshape(()))
        return cls(
            boxes=np.array(boxes[:n], dtype=np.float32),
            scores=np.array(scores[:n], dtype=np.float32),
            classes=np.array(classes[:n], dtype=np.int32),
        )

    def __len__(self) -> int:
        return len(self.scores)

    def rescaled(self, network: tuple[int, int], frame: tuple[int, int]) -> Detections:
        """The boxes of a frame resized to ``network`` (H, W) mapped back onto the frame of size ``frame`` (H, W)."""
        if network == frame:
            return self
        sy, sx = frame[0] / network[0], frame[1] / network[1]
        return Detections(boxes=self.boxes * np.array([sx, sy, sx, sy], np.float32), scores=self.scores, classes=self.classes)

    def to_json(self) -> dict[str, list]:
        """Plain lists for a JSON line: boxes rounded to 0.01 pixel, scores to 1e-5."""
        return {
            "boxes": np.round(self.boxes.astype(np.float64), 2).tolist(),
            "scores": np.round(self.scores.astype(np.float64), 5).tolist(),
            "classes": self.classes.astype(int).tolist(),
        }
