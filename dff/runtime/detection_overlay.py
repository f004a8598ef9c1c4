"""Boxes drawn over frames with their class names and scores, for looking at a detector's output."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from dff.runtime.detections import Detections


def draw_detections(image: np.ndarray, detections: Detections, class_names: Sequence[str], colours: np.ndarray) -> np.ndarray:
    """A copy of ``image`` (uint8 H×W×3 BGR) with each box in its class colour, labelled "name score"."""
    out = image.copy()
    for (x1, y1, x2, y2), score, cls in zip(detections.boxes, detections.scores, detections.classes):
        colour = tuple(int(c) for c in colours[int(cls) % len(colours)])
        top_left, bottom_right = (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2)))
        cv2.rectangle(out, top_left, bottom_right, colour, 2)
        name = class_names[cls] if 0 <= cls < len(class_names) else f"class{cls}"
        cv2.putText(out, f"{name} {score:.2f}", (top_left[0], max(top_left[1] - 3, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1)
    return out
