"""Anti-aliased alpha masks of shapes, drawn on a square canvas centred on the shape."""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4  # fractional bits: OpenCV draws at 1/16-pixel precision
SHAPES = ("disc", "box", "triangle", "ellipse", "star")


def canvas_size(radius: float) -> int:
    """Canvas side for a shape of ``radius``: a margin of zero alpha keeps resampling inside it."""
    return 2 * int(np.ceil(radius)) + 5


def _polygon(points: np.ndarray, size: int) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    centre = (size - 1) / 2
    fixed = np.round((points + centre) * (1 << SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [fixed], 255, lineType=cv2.LINE_AA, shift=SHIFT)
    return canvas.astype(np.float32) / 255


def _regular(count: int, radius: float, inner: float | None = None) -> np.ndarray:
    """Vertices of a regular polygon, or of a star when ``inner`` (its inner radius) is given."""
    if inner is None:
        angles = np.arange(count) * 2 * np.pi / count - np.pi / 2
        radii = np.full(count, radius)
    else:
        angles = np.arange(2 * count) * np.pi / count - np.pi / 2
        radii = np.where(np.arange(2 * count) % 2 == 0, radius, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def shape_alpha(kind: str, radius: float) -> np.ndarray:
    """Alpha in [0, 1] of shape ``kind`` (one of :data:`SHAPES`) with circumradius ``radius`` pixels."""
    size = canvas_size(radius)
    if kind == "disc":
        return _polygon(_regular(64, radius), size)
    if kind == "box":
        return _polygon(_regular(4, radius), size)
    if kind == "triangle":
        return _polygon(_regular(3, radius), size)
    if kind == "ellipse":
        return _polygon(_regular(64, radius) * np.array([1.0, 0.55]), size)
    if kind == "star":
        return _polygon(_regular(5, radius, inner=0.5 * radius), size)
    raise ValueError(f"shape must be one of {SHAPES}, got {kind!r}")


def random_polygon_alpha(rng: np.random.Generator, radius: float) -> np.ndarray:
    """A random star-shaped polygon of 3 to 9 vertices within ``radius``."""
    count = int(rng.integers(3, 10))
    angles = np.sort(rng.uniform(0, 2 * np.pi, count))
    radii = rng.uniform(0.4, 1.0, count) * radius
    return _polygon(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1), canvas_size(radius))
