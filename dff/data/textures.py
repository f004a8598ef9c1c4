"""Procedural textures for the synthetic scenes.

Smooth enough that bilinear resampling barely changes them (so warping by the exact flow
reproduces a frame), and rich enough everywhere that a flow network finds something to match.
Patterns are float32 H×W in [0, 1]; :func:`colourise` maps them to BGR float32 in [0, 255].
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Colour = tuple[float, float, float]  # BGR


def _normalise(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return (values - low) / max(high - low, 1e-6)


def _rotated_coordinates(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in a frame rotated by a random angle."""
    angle = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    return x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)


def smooth_noise(rng: np.random.Generator, height: int, width: int, *, sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise: detail at the scale ``sigma`` pixels."""
    noise = rng.standard_normal((height, width), dtype=np.float32)
    return _normalise(cv2.GaussianBlur(noise, (0, 0), sigma, borderType=cv2.BORDER_REFLECT))


def stripes(rng: np.random.Generator, height: int, width: int, *, period: float) -> np.ndarray:
    u, _ = _rotated_coordinates(rng, height, width)
    return 0.5 + 0.5 * np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi))


def checker(rng: np.random.Generator, height: int, width: int, *, period: float) -> np.ndarray:
    u, v = _rotated_coordinates(rng, height, width)
    # tanh of a product of sines: checker cells with soft (interpolable) edges.
    return 0.5 + 0.5 * np.tanh(2 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period))


def dots(rng: np.random.Generator, height: int, width: int, *, period: float) -> np.ndarray:
    impulses = np.zeros((height, width), np.float32)
    count = max(1, int(height * width / period**2))
    impulses[rng.integers(0, height, count), rng.integers(0, width, count)] = 1.0
    return _normalise(cv2.GaussianBlur(impulses, (0, 0), period / 5, borderType=cv2.BORDER_REFLECT))


def rings(rng: np.random.Generator, height: int, width: int, *, period: float) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot(x - rng.uniform(0, width), y - rng.uniform(0, height))
    return 0.5 + 0.5 * np.sin(2 * np.pi * radius / period)


def marble(rng: np.random.Generator, height: int, width: int, *, period: float) -> np.ndarray:
    u, _ = _rotated_coordinates(rng, height, width)
    turbulence = smooth_noise(rng, height, width, sigma=period)
    return 0.5 + 0.5 * np.sin(2 * np.pi * (u + 2 * period * turbulence) / period)


def clouds(rng: np.random.Generator, height: int, width: int, *, period: float) -> np.ndarray:
    """Noise at three scales around ``period``."""
    octaves = [smooth_noise(rng, height, width, sigma=period * f) for f in (0.25, 0.75, 2.0)]
    return _normalise(0.5 * octaves[0] + 0.3 * octaves[1] + 0.2 * octaves[2])


Pattern = Callable[..., np.ndarray]
PATTERNS: dict[str, Pattern] = {
    "stripes": stripes,
    "checker": checker,
    "dots": dots,
    "rings": rings,
    "marble": marble,
    "clouds": clouds,
}


def colourise(
    rng: np.random.Generator, pattern: np.ndarray, colour_a: Colour, colour_b: Colour, *, grain: float = 0.3
) -> np.ndarray:
    """BGR float32 in [0, 255]: ``colour_a`` where the pattern is 0, ``colour_b`` where it is 1,
    modulated by fine noise so that flat areas still carry texture to match."""
    p = pattern[..., None]
    image = np.asarray(colour_a, np.float32) * (1 - p) + np.asarray(colour_b, np.float32) * p
    fine = smooth_noise(rng, *pattern.shape, sigma=1.5)[..., None]
    return np.clip(image * (1 - grain / 2 + grain * fine), 0, 255)
