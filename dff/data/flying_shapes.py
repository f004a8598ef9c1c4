"""Flow pre-training pairs in the spirit of Flying Chairs (Dosovitskiy et al., 2015).

Each sample is a key frame and a current frame of random textured shapes over a textured
background; the background (camera) and every shape move by their own random affine motion
between the two, and the flow M_{current→key} is exact (see :mod:`dff.data.affine_scene`).
Sample ``index`` is drawn from (``seed``, ``index``) alone, so any sample renders directly and
always the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from dff.data import affine_scene, shapes, textures
from dff.errors import ConfigError


@dataclass(frozen=True)
class FlyingShapesConfig:
    """``length`` samples of ``height``×``width``, each with 1..``max_shapes`` shapes; translations
    are at most ``max_displacement`` pixels, rotation and scaling add at most half as much at a rim."""

    height: int = 128
    width: int = 128
    length: int = 10000
    max_shapes: int = 6
    max_displacement: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.height >= 32 and self.width >= 32):
            raise ConfigError(f"flying shapes size must be at least 32x32, got {self.height}x{self.width}")
        if not (self.length >= 1):
            raise ConfigError(f"flying shapes length must be >= 1 sample, got {self.length}")
        if not (self.max_shapes >= 1):
            raise ConfigError(f"max_shapes must be >= 1, got {self.max_shapes}")
        if not (self.max_displacement >= 0):
            raise ConfigError(f"max_displacement must be >= 0 pixels, got {self.max_displacement}")


class FlowSample(NamedTuple):
    key: np.ndarray  # uint8 H×W×3 BGR, frame k
    current: np.ndarray  # uint8 H×W×3 BGR, frame i
    flow: np.ndarray  # float32 H×W×2, M_{i→k}
    visible: np.ndarray  # bool H×W: p + M(p) is inside the key frame and not occluded there


def _random_colour(rng: np.random.Generator) -> textures.Colour:
    return tuple(rng.uniform(0, 255, 3))


def _random_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    name = rng.choice(sorted(textures.PATTERNS))
    pattern = textures.PATTERNS[name](rng, height, width, period=rng.uniform(10, 24))
    return textures.colourise(rng, pattern, _random_colour(rng), _random_colour(rng))


class FlyingShapes:
    """``dataset[index]`` is a :class:`FlowSample`."""

    def __init__(self, config: FlyingShapesConfig = FlyingShapesConfig()) -> None:
        self.config = config

    def __len__(self) -> int:
        return self.config.length

    def __getitem__(self, index: int) -> FlowSample:
        c = self.config
        if not (0 <= index < c.length):
            raise IndexError(f"sample {index} is outside flying shapes' 0..{c.length - 1}")
        rng = np.random.default_rng([c.seed, index])
        size = (c.height, c.width)
        limit = c.max_displacement

        half_diagonal = 0.5 * float(np.hypot(c.height, c.width))
        reach = half_diagonal / 0.95 + limit + 4  # covers the frame at zoom ≥ 0.95 after the largest shift
        side = 2 * int(np.ceil(reach)) + 1
        background = _random_texture(rng, side, side)
        centre = ((c.width - 1) / 2, (c.height - 1) / 2)
        middle = ((side - 1) / 2, (side - 1) / 2)
        camera_key = affine_scene.pose(
            centre=centre, angle=rng.uniform(-0.1, 0.1), scale=rng.uniform(1.0, 1.05), anchor=middle
        )
        camera_current = self._moved(rng, camera_key, limit / 2, half_diagonal)

        layers, key_poses, current_poses = [], [], []
        for _ in range(int(rng.integers(1, c.max_shapes + 1))):
            radius = rng.uniform(0.08, 0.3) * min(size)
            alpha = shapes.random_polygon_alpha(rng, radius)
            layers.append(affine_scene.premultiply(_random_texture(rng, *alpha.shape), alpha))
            anchor = ((alpha.shape[1] - 1) / 2, (alpha.shape[0] - 1) / 2)
            key_pose = affine_scene.pose(
                centre=tuple(rng.uniform(0, 1, 2) * (c.width, c.height)),
                angle=rng.uniform(0, 2 * np.pi),
                scale=rng.uniform(0.7, 1.0),
                anchor=anchor,
            )
            key_poses.append(key_pose)
            current_poses.append(self._moved(rng, key_pose, limit, radius))

        key = affine_scene.render(background, camera_key, layers, key_poses, size)
        current = affine_scene.render(background, camera_current, layers, current_poses, size)
        flow = affine_scene.backward_flow(current.owner, [camera_current, *current_poses], [camera_key, *key_poses])
        return FlowSample(key.image, current.image, flow, affine_scene.visible_in_key(flow, current.owner, key.owner))

    @staticmethod
    def _moved(rng: np.random.Generator, matrix: np.ndarray, shift: float, radius: float) -> np.ndarray:
        """``matrix`` followed by a random motion about its centre: translation up to ``shift``,
        rotation and scaling each moving points ``radius`` away by at most ``shift`` / 4."""
        turn = rng.uniform(-1, 1) * shift / 4 / radius
        zoom = 1 + rng.uniform(-1, 1) * shift / 4 / radius
        origin = matrix[:, 2]  # where the texture anchor lands
        translation = rng.uniform(-1, 1, 2) * shift / np.sqrt(2)
        motion = affine_scene.pose(centre=tuple(origin + translation), angle=turn, scale=zoom, anchor=tuple(origin))
        return np.vstack([motion, [0, 0, 1]])[:2] @ np.vstack([matrix, [0, 0, 1]])
