"""Synthetic videos whose motion varies over time: still stretches, fast motion, hard cuts between scenes.

A video of fixed-l key frames meets every kind of motion; an adaptive schedule (issue 16) is only
worth it where motion changes over time, so its test videos must. An :class:`EpisodicVideo` is a
sequence of *shots*, each a :class:`~dff.data.synthetic.SyntheticVideo` scene of its own (a cut
between shots replaces the whole picture), and each shot plays its scene's closed-form motion at a
speed that changes from stretch to stretch: 0 freezes it (a still stretch), 1 is the scene's own
speed, 4 runs camera and objects four times as fast (a fast pan, objects crossing and entering).
Frame t of a shot shows its scene at scene time tau(t), piecewise linear in t, so frames and labels
stay exact (scene time is continuous in the renderer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.errors import ConfigError

#: Speeds a random stretch is drawn from, and their weights: still, slow, normal, fast, very fast.
SPEEDS = (0.0, 0.5, 1.0, 3.0, 5.0)
SPEED_WEIGHTS = (0.25, 0.15, 0.25, 0.2, 0.15)


@dataclass(frozen=True)
class Stretch:
    """``frames`` frames during which scene time advances ``speed`` per frame."""

    frames: int
    speed: float


@dataclass(frozen=True)
class Shot:
    """One scene (drawn from ``scene_seed``) played through ``stretches``."""

    scene_seed: int
    stretches: tuple[Stretch, ...]

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.stretches)

    def scene_time(self, t: int) -> float:
        """tau(t) of the shot's frame t: the scene time it shows."""
        tau = 0.0
        for stretch in self.stretches:
            if t < stretch.frames:
                return tau + t * stretch.speed
            tau, t = tau + stretch.frames * stretch.speed, t - stretch.frames
        raise IndexError(f"frame {t} is past the shot's end")


@dataclass(frozen=True)
class EpisodicVideoConfig:
    """A random episodic video: ``length`` frames, shots of ``shot_frames`` (a range), stretches of
    ``stretch_frames``; each scene as :class:`SyntheticVideoConfig` with these sizes, classes and speed."""

    length: int = 300
    height: int = 128
    width: int = 128
    num_classes: int = 4
    num_objects: int = 4
    max_speed: float = 3.0
    shot_frames: tuple[int, int] = (40, 120)
    stretch_frames: tuple[int, int] = (8, 30)
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (low, high) in (("shot_frames", self.shot_frames), ("stretch_frames", self.stretch_frames)):
            if not (1 <= low <= high):
                raise ConfigError(f"{name} must be a range (low, high) with 1 <= low <= high, got {(low, high)}")
        if not (self.length >= 1):
            raise ConfigError(f"length must be >= 1 frame, got {self.length}")


class EpisodicVideo:
    """Frames and exact labels of shots played one after another (uint8 BGR H×W×3, labels uint8 H×W)."""

    def __init__(self, shots: tuple[Shot, ...], *, scene: SyntheticVideoConfig) -> None:
        if not shots:
            raise ConfigError("an episodic video needs at least one shot")
        self.shots = shots
        self._scenes = [
            SyntheticVideo(
                SyntheticVideoConfig(
                    height=scene.height,
                    width=scene.width,
                    length=math.ceil(shot.scene_time(shot.frames - 1)) + 1,
                    num_objects=scene.num_objects,
                    num_classes=scene.num_classes,
                    max_speed=scene.max_speed,
                    seed=shot.scene_seed,
                )
            )
            for shot in shots
        ]
        self.class_names = self._scenes[0].class_names
        starts = np.cumsum([0] + [shot.frames for shot in shots])
        self._starts = starts
        #: The first frame of every shot after the first: the hard cuts.
        self.cuts = tuple(int(s) for s in starts[1:-1])
        self.labelled_frames = range(int(starts[-1]))

    @classmethod
    def random(cls, config: EpisodicVideoConfig) -> EpisodicVideo:
        """Shots and stretches drawn from ``config.seed`` (each scene's seed is drawn too)."""
        rng = np.random.default_rng(config.seed)
        shots, left = [], config.length
        while left > 0:
            frames = min(left, int(rng.integers(config.shot_frames[0], config.shot_frames[1] + 1)))
            stretches, rest = [], frames
            while rest > 0:
                count = min(rest, int(rng.integers(config.stretch_frames[0], config.stretch_frames[1] + 1)))
                stretches.append(Stretch(frames=count, speed=float(rng.choice(SPEEDS, p=SPEED_WEIGHTS))))
                rest -= count
            shots.append(Shot(scene_seed=int(rng.integers(1 << 31)), stretches=tuple(stretches)))
            left -= frames
        scene = SyntheticVideoConfig(
            height=config.height,
            width=config.width,
            num_classes=config.num_classes,
            num_objects=config.num_objects,
            max_speed=config.max_speed,
        )
        return cls(tuple(shots), scene=scene)

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __str__(self) -> str:
        return f"episodic synthetic video ({len(self.shots)} shots, {len(self)} frames)"

    def _locate(self, t: int) -> tuple[SyntheticVideo, float]:
        if not (0 <= t < len(self)):
            raise IndexError(f"frame {t} is outside the video's 0..{len(self) - 1}")
        shot = int(np.searchsorted(self._starts, t, side="right")) - 1
        return self._scenes[shot], self.shots[shot].scene_time(t - int(self._starts[shot]))

    def image(self, t: int) -> np.ndarray:
        scene, tau = self._locate(t)
        return scene.image(tau)  # type: ignore[arg-type]  # scene time is continuous

    def label(self, t: int) -> np.ndarray:
        scene, tau = self._locate(t)
        return scene.label(tau)  # type: ignore[arg-type]

    def image_and_label(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return self.image(t), self.label(t)
