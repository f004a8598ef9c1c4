"""A synthetic labelled video with exact flow between any two frames.

A textured background seen by a moving camera (translation, slight rotation and zoom) and
textured objects of a few classes that translate, rotate and scale smoothly and occlude each
other in a fixed depth order. Each class has its own shape, pattern and colours, so a segmenter
can tell them apart; every surface carries fine texture, so a flow network can match it.

Motion is a closed-form function of time (sums of sinusoids), so any frame renders directly,
without simulating the ones before it, and the flow M_{i→k} between any two frames is exact
(see :mod:`dff.data.affine_scene`). Everything is drawn from ``seed``: the same configuration
always gives the same video.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from dff.data import affine_scene, shapes, textures
from dff.errors import ConfigError

Colour = textures.Colour


@dataclass(frozen=True)
class ObjectClass:
    """How objects of one class look: shape, pattern and the pattern's two BGR colours."""

    name: str
    shape: str
    pattern: str
    colour_a: Colour
    colour_b: Colour


#: Object classes; class id c ≥ 1 is OBJECT_CLASSES[c - 1], class 0 the background.
OBJECT_CLASSES = (
    ObjectClass("disc", "disc", "stripes", (200, 70, 20), (255, 210, 150)),
    ObjectClass("box", "box", "checker", (30, 30, 210), (40, 220, 240)),
    ObjectClass("triangle", "triangle", "dots", (20, 100, 20), (130, 245, 150)),
    ObjectClass("ellipse", "ellipse", "rings", (200, 40, 200), (245, 225, 250)),
    ObjectClass("star", "star", "marble", (20, 120, 245), (20, 50, 110)),
)
BACKGROUND = "background"


@dataclass(frozen=True)
class SyntheticVideoConfig:
    """``num_classes`` counts the background; ``max_speed`` bounds how fast (pixels per frame) object
    centres and the camera move; rotation and zoom add at most about as much again at the rims. Object radii are
    0.12-0.22 of ``object_scale`` pixels, by default the frame's shorter side (objects grow with the frame); a fixed
    ``object_scale`` keeps them the size a model was trained on when it runs on larger frames."""

    height: int = 128
    width: int = 128
    length: int = 64
    num_objects: int = 4
    num_classes: int = 4
    max_speed: float = 2.0
    seed: int = 0
    object_scale: int | None = None

    def __post_init__(self) -> None:
        if not (self.height >= 32 and self.width >= 32):
            raise ConfigError(f"synthetic video size must be at least 32x32, got {self.height}x{self.width}")
        if not (self.length >= 1):
            raise ConfigError(f"synthetic video length must be >= 1 frame, got {self.length}")
        if not (self.num_objects >= 0):
            raise ConfigError(f"num_objects must be >= 0, got {self.num_objects}")
        if not (2 <= self.num_classes <= len(OBJECT_CLASSES) + 1):
            raise ConfigError(
                f"num_classes must be 2..{len(OBJECT_CLASSES) + 1} (background + object classes), got {self.num_classes}"
            )
        if not (self.max_speed >= 0):
            raise ConfigError(f"max_speed must be >= 0 pixels per frame, got {self.max_speed}")
        if not (self.object_scale is None or self.object_scale >= 8):
            raise ConfigError(f"object_scale must be at least 8 pixels (or unset: the frame's shorter side), got {self.object_scale}")


@dataclass(frozen=True)
class _Oscillation:
    """offset + amplitude · sin(frequency · t + phase), elementwise."""

    offset: np.ndarray
    amplitude: np.ndarray
    frequency: np.ndarray
    phase: np.ndarray

    def __call__(self, t: int) -> np.ndarray:
        return self.offset + self.amplitude * np.sin(self.frequency * t + self.phase)

    @classmethod
    def random(cls, rng: np.random.Generator, *, offset: ArrayLike, amplitude: ArrayLike, speed: ArrayLike) -> _Oscillation:
        """Random phase; frequency such that the peak rate of change is ``speed`` (elementwise)."""
        offset, amplitude, speed = (np.asarray(v, np.float64) for v in (offset, amplitude, speed))
        frequency = np.divide(speed, amplitude, out=np.zeros_like(speed), where=amplitude > 0)
        return cls(offset, amplitude, frequency, rng.uniform(0, 2 * np.pi, amplitude.shape))


@dataclass(frozen=True)
class _Object:
    class_id: int
    layer: np.ndarray  # premultiplied sprite
    anchor: tuple[float, float]
    centre: _Oscillation  # (x, y)
    angle: _Oscillation  # (radians,)
    scale: _Oscillation  # (factor,)

    def pose(self, t: int) -> np.ndarray:
        x, y = self.centre(t)
        angle, scale = float(self.angle(t)[0]), float(self.scale(t)[0])
        return affine_scene.pose(centre=(x, y), angle=angle, scale=scale, anchor=self.anchor)


class SyntheticVideo:
    """Frames, labels, object instances and exact flow of one synthetic video.

    Images are uint8 H×W×3 BGR, labels uint8 H×W (0 = background, c = ``class_names[c]``),
    instances uint8 H×W (0 = background, j + 1 = object j), flow float32 H×W×2 (M_{i→k}).
    """

    #: Renderings kept, so a pair's frames, label and flow are drawn once.
    CACHE_SIZE = 8

    def __init__(self, config: SyntheticVideoConfig = SyntheticVideoConfig()) -> None:
        self.config = config
        self.class_names = (BACKGROUND,) + tuple(c.name for c in OBJECT_CLASSES[: config.num_classes - 1])
        self.labelled_frames = range(config.length)
        rng = np.random.default_rng(config.seed)
        self._camera, self._background = self._make_camera(rng)
        self._objects = [self._make_object(rng, j) for j in range(config.num_objects)]
        rng.shuffle(self._objects)  # depth order
        self._class_of_owner = np.array([0] + [o.class_id for o in self._objects], np.uint8)
        self._cache: OrderedDict[int, affine_scene.Rendering] = OrderedDict()

    def _make_camera(self, rng: np.random.Generator) -> tuple[_Oscillation, np.ndarray]:
        """Camera path (x, y, angle, zoom) and a background texture large enough that it never shows its edge."""
        c = self.config
        speed = c.max_speed
        shift = 0.15 * min(c.height, c.width)
        half_diagonal = 0.5 * float(np.hypot(c.height, c.width))
        # Rotation and zoom move the image corners at most speed/4 pixels per frame each.
        path = _Oscillation.random(
            rng,
            offset=[0.0, 0.0, 0.0, 1.0],
            amplitude=[shift, shift, 0.05, 0.05],
            speed=[*(speed * rng.uniform(0.3, 0.7, 2)), speed / 4 / half_diagonal, speed / 4 / half_diagonal],
        )
        half = int(np.ceil(shift + half_diagonal / 0.95)) + 4
        side = 2 * half + 1
        pattern = textures.clouds(rng, side, side, period=8.0)
        grey = rng.uniform(60, 90)
        light = rng.uniform(170, 210)
        tint = rng.uniform(-12, 12, 3)
        background = textures.colourise(rng, pattern, tuple(grey + tint), tuple(light - tint))
        return path, background

    def _camera_pose(self, t: int) -> np.ndarray:
        x, y, angle, zoom = self._camera(t)
        h, w = self.config.height, self.config.width
        half = (self._background.shape[0] - 1) / 2
        # The image centre looks at the texture centre plus the camera shift.
        return affine_scene.pose(centre=((w - 1) / 2, (h - 1) / 2), angle=angle, scale=zoom, anchor=(half + x, half + y))

    def _make_object(self, rng: np.random.Generator, j: int) -> _Object:
        c = self.config
        class_id = 1 + j % (c.num_classes - 1)
        look = OBJECT_CLASSES[class_id - 1]
        radius = rng.uniform(0.12, 0.22) * (c.object_scale or min(c.height, c.width))
        # Drawn at the largest size it reaches, so it is only ever shrunk (sharper than enlarging).
        largest = 1.15 * radius
        alpha = shapes.shape_alpha(look.shape, largest)
        size = alpha.shape[0]
        jitter = rng.uniform(-20, 20, 3)
        texture = textures.colourise(
            rng,
            textures.PATTERNS[look.pattern](rng, size, size, period=rng.uniform(7, 11)),
            tuple(np.asarray(look.colour_a) + jitter),
            tuple(np.asarray(look.colour_b) + jitter),
        )
        speed = c.max_speed
        amplitude = rng.uniform(0.1, 0.35, 2) * (c.width, c.height)
        centre = _Oscillation.random(
            rng,
            offset=rng.uniform(0.25, 0.75, 2) * (c.width, c.height),
            amplitude=amplitude,
            speed=speed * rng.uniform(0.3, 1.0, 2) / np.sqrt(2),
        )
        # Rims move at most speed/2 from rotation and speed/2 from scaling.
        rim_speed = [speed / 2 / largest]
        angle = _Oscillation.random(
            rng, offset=[rng.uniform(0, 2 * np.pi)], amplitude=[rng.uniform(0.3, 1.5)], speed=rim_speed
        )
        scale = _Oscillation.random(rng, offset=[radius / largest], amplitude=[0.15 * radius / largest], speed=rim_speed)
        anchor = ((size - 1) / 2, (size - 1) / 2)
        return _Object(class_id, affine_scene.premultiply(texture, alpha), anchor, centre, angle, scale)

    def __len__(self) -> int:
        return self.config.length

    def __str__(self) -> str:
        return f"synthetic video (seed {self.config.seed})"

    def _poses(self, t: int) -> list[np.ndarray]:
        """Camera then objects, far to near."""
        return [self._camera_pose(t)] + [o.pose(t) for o in self._objects]

    def _render(self, t: int) -> affine_scene.Rendering:
        if not (0 <= t < self.config.length):
            raise IndexError(f"frame {t} is outside the synthetic video's 0..{self.config.length - 1}")
        if t in self._cache:
            self._cache.move_to_end(t)
            return self._cache[t]
        poses = self._poses(t)
        rendering = affine_scene.render(
            self._background, poses[0], [o.layer for o in self._objects], poses[1:], (self.config.height, self.config.width)
        )
        self._cache[t] = rendering
        if len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        return rendering

    def image(self, t: int) -> np.ndarray:
        return self._render(t).image

    def label(self, t: int) -> np.ndarray:
        return self._class_of_owner[self._render(t).owner]

    def image_and_label(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.image(t), self.label(t)

    def instances(self, t: int) -> np.ndarray:
        """Which object each pixel shows: 0 background, j + 1 object j (j in depth order, far to near)."""
        return self._render(t).owner

    def flow(self, *, current: int, key: int) -> np.ndarray:
        """Exact M_{i→k} for i = ``current``, k = ``key``: pixel p of frame i is at p + M(p) in frame k."""
        self._render(key)  # range check
        return affine_scene.backward_flow(self._render(current).owner, self._poses(current), self._poses(key))

    def visible(self, *, current: int, key: int) -> np.ndarray:
        """bool H×W: pixels of frame ``current`` whose point is inside frame ``key`` and not occluded there."""
        flow = self.flow(current=current, key=key)
        return affine_scene.visible_in_key(flow, self._render(current).owner, self._render(key).owner)
