"""Rendering textured layers under affine motion, with the exact flow between two renderings.

A scene is a background texture seen through a camera and layers (sprites: texture and alpha)
stacked far to near. A pose is a 2×3 affine matrix T mapping texture pixel coordinates to image
pixel coordinates (pixel centres at integers, as OpenCV and :func:`dff.ops.warp.warp` use). A pixel
p of frame i shows the nearest layer j whose alpha there is at least 0.5 (``owner``; 0 is the
background); its content is at p' = T_k^j (T_i^j)^{-1} p in frame k, so the backward flow
M_{i→k}(p) = p' − p is exact wherever that point is visible in frame k.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np


class Rendering(NamedTuple):
    image: np.ndarray  # uint8 H×W×3 BGR
    owner: np.ndarray  # uint8 H×W: 0 background, j + 1 for layer j


def pose(*, centre: tuple[float, float], angle: float, scale: float, anchor: tuple[float, float]) -> np.ndarray:
    """2×3 matrix that scales by ``scale``, rotates by ``angle`` (radians) and moves ``anchor`` to ``centre``."""
    cos, sin = scale * np.cos(angle), scale * np.sin(angle)
    linear = np.array([[cos, -sin], [sin, cos]])
    return np.hstack([linear, (np.asarray(centre) - linear @ np.asarray(anchor))[:, None]])


def premultiply(texture: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A layer as float32 h×w×4: BGR times alpha, then alpha, so resampling blends edges correctly."""
    return np.concatenate([texture * alpha[..., None], alpha[..., None]], axis=2).astype(np.float32)


def render(
    background: np.ndarray,
    camera: np.ndarray,
    layers: Sequence[np.ndarray],
    poses: Sequence[np.ndarray],
    size: tuple[int, int],
) -> Rendering:
    """Frame of ``size`` (H, W): ``background`` (float32 BGR) posed by ``camera``, then ``layers`` (from
    :func:`premultiply`) far to near, each posed by its entry in ``poses``."""
    height, width = size
    # Reflection only shows if the background is too small for the camera path; callers size it to avoid that.
    image = cv2.warpAffine(background, camera, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    owner = np.zeros((height, width), np.uint8)
    for j, (layer, matrix) in enumerate(zip(layers, poses)):
        h, w = layer.shape[:2]
        corners = matrix @ np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1], [1, 1, 1, 1]], np.float64)
        x0, y0 = np.maximum(np.floor(corners.min(axis=1)).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(corners.max(axis=1)).astype(int) + 2, (width, height))
        if x1 <= x0 or y1 <= y0:
            continue  # entirely outside the frame
        # Warp only the layer's bounding box: the same matrix, shifted to the box's origin.
        shifted = matrix - np.array([[0, 0, x0], [0, 0, y0]])
        warped = cv2.warpAffine(layer, shifted, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        alpha = warped[..., 3:]
        region = image[y0:y1, x0:x1]
        region *= 1 - alpha
        region += warped[..., :3]
        owner[y0:y1, x0:x1][alpha[..., 0] >= 0.5] = j + 1
    return Rendering(np.rint(np.clip(image, 0, 255)).astype(np.uint8), owner)


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


def backward_flow(owner: np.ndarray, current: Sequence[np.ndarray], key: Sequence[np.ndarray]) -> np.ndarray:
    """M_{i→k} as float32 H×W×2 from frame i's ``owner`` map and the poses (camera first, then the
    layers) of frame i (``current``) and frame k (``key``)."""
    motion = np.stack(
        [(_homogeneous(k) @ np.linalg.inv(_homogeneous(i)))[:2] - np.eye(2, 3) for i, k in zip(current, key)]
    ).astype(np.float32)  # (layers + 1, 2, 3): p ↦ p' − p for each owner
    per_pixel = motion[owner]  # H×W×2×3
    height, width = owner.shape
    x = np.arange(width, dtype=np.float32)[None, :, None]
    y = np.arange(height, dtype=np.float32)[:, None, None]
    return per_pixel[..., 0] * x + per_pixel[..., 1] * y + per_pixel[..., 2]


def visible_in_key(flow: np.ndarray, owner_current: np.ndarray, owner_key: np.ndarray) -> np.ndarray:
    """bool H×W: pixels of frame i whose point p + M(p) lies inside frame k and is not hidden there
    (the same layer owns its nearest pixel). Elsewhere M is still the true motion, but frame k
    does not show it, so no photometric check can hold there."""
    height, width = owner_current.shape
    x = np.arange(width, dtype=np.float32)[None, :] + flow[..., 0]
    y = np.arange(height, dtype=np.float32)[:, None] + flow[..., 1]
    tolerance = 1e-3  # an identity flow lands on the last row/column up to rounding
    inside = (x >= -tolerance) & (x <= width - 1 + tolerance) & (y >= -tolerance) & (y <= height - 1 + tolerance)
    column = np.clip(np.rint(x).astype(np.intp), 0, width - 1)
    row = np.clip(np.rint(y).astype(np.intp), 0, height - 1)
    return inside & (owner_key[row, column] == owner_current)
