"""Class colours blended over frames, for looking at a segmentation."""

from __future__ import annotations

import cv2
import numpy as np

#: Golden-ratio steps around the hue circle keep neighbouring class ids far apart in colour.
_GOLDEN = 0.618033988749895


def palette(num_classes: int) -> np.ndarray:
    """uint8 (256, 3) BGR colours: distinct, saturated hues for the first ``num_classes`` ids, black for the rest
    (ids outside the model's classes, such as an ignore label)."""
    if not (1 <= num_classes <= 256):
        raise ValueError(f"num_classes must be 1..256, got {num_classes}")
    hsv = np.zeros((256, 1, 3), np.uint8)
    ids = np.arange(num_classes)
    hsv[:num_classes, 0, 0] = ((ids * _GOLDEN) % 1.0 * 180).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[:num_classes, 0, 1] = 220
    hsv[:num_classes, 0, 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[:, 0]


def overlay(image: np.ndarray, labels: np.ndarray, colours: np.ndarray, *, alpha: float = 0.5) -> np.ndarray:
    """``image`` (uint8 H×W×3 BGR) with each pixel's class colour from ``colours`` (see :func:`palette`) blended in."""
    if not (labels.shape == image.shape[:2]):
        raise ValueError(f"labels must have the image's size {image.shape[:2]}, got {labels.shape}")
    if not (0.0 <= alpha <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return cv2.addWeighted(image, 1.0 - alpha, colours[labels], alpha, 0.0)
