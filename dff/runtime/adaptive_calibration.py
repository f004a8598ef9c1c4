"""Calibrating :class:`~dff.runtime.adaptive.AdaptiveInterval` on training videos (never the test videos). Torch-free.

Three things are measured on labelled training videos through the very backend that will run:

1. **Staleness model.** For key frames k every ``key_stride`` frames and each i = k + 1 … k + max_interval − 1
   in the same shot: the signals of (k, i) and the pixel-accuracy points lost by propagating from k
   instead of computing frame i as a key frame, against the ground truth; a least-squares line maps
   the signals to those points.
2. **Cut threshold.** The cut scores of consecutive frames at the videos' known cuts (``video.cuts``) and elsewhere;
   the threshold lies halfway between the highest score elsewhere and the lowest at a cut (the widest margin on
   both sides: 0.9 × the lowest cut, the first rule, missed a held-out cut scoring 0.94 × the lowest of only four
   training cuts), and never above ``cut_margin`` × the lowest, so every training cut triggers.
3. **Thresholds per rate.** The scheduler (controller off) is run over the videos at a log-spaced sweep of
   T, counting key frames (only F runs: key frames are uploaded, never put through N_feat); T for
   each rate in ``rates`` is interpolated from the sweep.

``python -m dff.runtime.adaptive_calibration EXPORT_DIR`` calibrates an export on synthetic episodic
videos (seeds from 1000: never the benchmark's) and writes ``EXPORT_DIR/keyframes.json``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from dff.data.episodes import EpisodicVideo, EpisodicVideoConfig
from dff.manifest import load_manifest
from dff.runtime.adaptive import CALIBRATION_NAME, STALENESS_FLOOR, AdaptiveInterval, Calibration, Signals, save_calibration, signal_vector
from dff.runtime.adaptive_signals import FLOW_STATS, cut_score, thumbnail
from dff.runtime.backend import Backend
from dff.runtime.backends import open_backend


class LabelledVideo(Protocol):
    """What calibration reads of a training video: frames, labels and (optionally) ``cuts``."""

    def __len__(self) -> int: ...
    def image(self, t: int) -> np.ndarray: ...
    def label(self, t: int) -> np.ndarray: ...


@dataclass(frozen=True)
class CalibrationReport:
    """The calibration and how well it fitted: R² of the staleness line, samples, cut and sweep figures."""

    calibration: Calibration
    r_squared: float
    samples: int
    cuts: int
    false_cut_share: float


def _accuracy(prediction: np.ndarray, label: np.ndarray, ignore: int = 255) -> float:
    valid = label != ignore
    return float((prediction[valid] == label[valid]).mean()) if valid.any() else 1.0


def _network_size(backend: Backend, array: np.ndarray, interpolation: int) -> np.ndarray:
    """A frame or label at the size the runtime resizes its frame to (bilinear there too): the backend takes only those."""
    height, width = backend.sizes.nearest(*array.shape[:2])
    if (height, width) == array.shape[:2]:
        return array
    return cv2.resize(array, (width, height), interpolation=interpolation)


def _cuts(video: LabelledVideo) -> set[int]:
    return set(getattr(video, "cuts", ()))


def staleness_samples(
    backend: Backend, video: LabelledVideo, *, signals: Signals, max_interval: int, key_stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """(signals (n, m), points lost (n,)) for the pairs (k, i) described in the module."""
    images = [_network_size(backend, video.image(t), cv2.INTER_LINEAR) for t in range(len(video))]
    labels = [_network_size(backend, video.label(t), cv2.INTER_NEAREST) for t in range(len(video))]
    thumbs = [thumbnail(image, grey=signals == "frame") for image in images]
    frames = [backend.upload(image) for image in images]
    feats = [backend.feature(frame) for frame in frames]
    key_accuracy = [_accuracy(backend.download(backend.task(f)), y) for f, y in zip(feats, labels)]
    shot_starts = _cuts(video)
    xs, ys = [], []
    for k in range(0, len(images), key_stride):
        for i in range(k + 1, min(len(images), k + max_interval)):
            if i in shot_starts:
                break  # a cut ends the shot: the scheduler makes that frame a key frame anyway
            flow = backend.flow(frames[k], frames[i])
            x = signal_vector(signals, backend.flow_statistics(flow), thumbs[i], thumbs[k])
            propagated = backend.download(backend.task(backend.warp(feats[k], flow)))
            xs.append(x)
            ys.append(100.0 * (key_accuracy[i] - _accuracy(propagated, labels[i])))
    return np.array(xs), np.array(ys)


def key_share(backend: Backend, videos: Sequence[Sequence[np.ndarray]], scheduler: AdaptiveInterval) -> float:
    """The share of key frames ``scheduler`` picks over ``videos`` (lists of frames), running F only."""
    keys = frames = 0
    for images in videos:
        scheduler.reset()
        key_frame = None
        for image in images:
            frame = backend.upload(_network_size(backend, image, cv2.INTER_LINEAR))
            key = scheduler.is_key(image)
            if not key:
                key = scheduler.observe(backend.flow_statistics(backend.flow(key_frame, frame)))
            if key:
                key_frame = frame
            keys += key
            frames += 1
    return keys / frames


def calibrate(
    backend: Backend,
    videos: Sequence[LabelledVideo],
    *,
    signals: Signals = "flow",
    max_interval: int = 20,
    rates: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.3, 0.5),
    key_stride: int = 3,
    cut_margin: float = 0.9,
    sweep: int = 12,
    flow_sha256: str | None = None,
    description: str = "",
    cut_threshold: float | None = None,
) -> CalibrationReport:
    """Measure a :class:`Calibration` on ``videos`` (see the module). ``cut_threshold``: the cut threshold to
    keep where the videos have no cuts to measure one on (e.g. one measured on synthetic cuts)."""
    samples = [staleness_samples(backend, v, signals=signals, max_interval=max_interval, key_stride=key_stride) for v in videos]
    x = np.concatenate([s[0] for s in samples])
    y = np.concatenate([s[1] for s in samples])
    design = np.c_[x, np.ones(len(x))]
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    r_squared = 1.0 - float(np.var(y - design @ solution) / max(np.var(y), 1e-12))

    thumbs = [[thumbnail(v.image(t)) for t in range(len(v))] for v in videos]
    scores = [[cut_score(th[t], th[t - 1]) for t in range(1, len(th))] for th in thumbs]
    at_cuts = [s[t - 1] for v, s in zip(videos, scores) for t in _cuts(v)]
    elsewhere = [s[t - 1] for v, s in zip(videos, scores) for t in range(1, len(v)) if t not in _cuts(v)]
    if at_cuts:
        cut_threshold = min(cut_margin * min(at_cuts), (min(at_cuts) + max(elsewhere, default=0.0)) / 2)
    elif cut_threshold is None:
        raise ValueError("calibration needs training videos with scene cuts (their `cuts`), or a cut_threshold")

    calibration = Calibration(
        signals=signals,
        weights=tuple(float(w) for w in solution[:-1]),
        bias=float(solution[-1]),
        thresholds=((1.0, 1.0),),
        cut_score=cut_threshold,
        flow_sha256=flow_sha256,
        videos=description,
    )
    # T against key share, controller off; shares fall as T rises.
    frames = [[v.image(t) for t in range(len(v))] for v in videos]
    # From T = the floor (a key frame every other frame at most) up by factors of 2.5 (~60000 × the floor at 12).
    candidates = [STALENESS_FLOOR * 2.5**j for j in range(sweep)]
    measured = []
    for threshold in candidates:
        fixed = replace(calibration, thresholds=((1.0, threshold),))
        scheduler = AdaptiveInterval(rate=1.0, max_interval=max_interval, calibration=fixed, gain=0.0)
        measured.append((key_share(backend, frames, scheduler), threshold))
    table = []
    for rate in sorted(rates):
        table.append((float(rate), _interpolate_threshold(measured, rate)))
    calibration = replace(calibration, thresholds=tuple(table))
    return CalibrationReport(
        calibration=calibration,
        r_squared=r_squared,
        samples=len(y),
        cuts=len(at_cuts),
        false_cut_share=float(np.mean([s > cut_threshold for s in elsewhere])) if elsewhere else 0.0,
    )


def _interpolate_threshold(measured: Sequence[tuple[float, float]], rate: float) -> float:
    """T at which the key share is ``rate``, log-log between the sweep's neighbours (shares fall as T rises)."""
    points = sorted((math.log(max(share, 1e-6)), math.log(t)) for share, t in measured)
    x = math.log(rate)
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= x <= x1 and x1 > x0:
            return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    # Outside the sweep: the nearest end (the budget controller takes it from there).
    return math.exp(points[0][1] if x < points[0][0] else points[-1][1])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--videos", type=int, default=4, help="training videos (seeds 1000, 1001, ...)")
    parser.add_argument("--length", type=int, default=300)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 128), metavar=("H", "W"))
    parser.add_argument("--max-interval", type=int, default=20)
    parser.add_argument("--out", type=Path, help=f"default: EXPORT/{CALIBRATION_NAME}")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.export)
    videos = [
        EpisodicVideo.random(
            EpisodicVideoConfig(length=args.length, height=args.size[0], width=args.size[1], num_classes=manifest.model.num_classes, seed=1000 + j)
        )
        for j in range(args.videos)
    ]
    has_statistics = any(spec.name == FLOW_STATS for spec in manifest.models.flow.outputs)
    with open_backend("onnxruntime", model=args.export, threads=1) as backend:
        report = calibrate(
            backend,
            videos,
            signals="flow" if has_statistics else "frame",
            max_interval=args.max_interval,
            flow_sha256=manifest.models.flow.sha256,
            description=f"{args.videos} episodic synthetic videos, seeds 1000-{999 + args.videos}, {args.length} frames, {args.size[0]}x{args.size[1]}",
        )
    path = save_calibration(args.out or args.export / CALIBRATION_NAME, report.calibration)
    print(
        f"wrote {path}: staleness R² {report.r_squared:.2f} over {report.samples} pairs; {report.cuts} cuts, "
        f"threshold {report.calibration.cut_score:.3f} (false cuts on {100 * report.false_cut_share:.2f}% of other frames)"
    )


if __name__ == "__main__":
    main()
