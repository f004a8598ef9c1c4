"""What the per-engine benchmarks share: their clip options, and the synthetic video they time and score on."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dff.commands.demo import DEMO_MODEL, OBJECT_SCALE
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.export import ExportOptions, export_checkpoint


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--key-interval", "-l", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=320)


def synthetic_clip(args: argparse.Namespace, num_classes: int = 4) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frame, exact labels) for each of ``args.frames`` frames of the held-out synthetic video (seed 1), its objects
    the size in pixels of the demo model's training frames, as ``dff demo`` draws them."""
    config = SyntheticVideoConfig(
        length=args.frames, num_classes=num_classes, seed=1, height=args.height, width=args.width, object_scale=OBJECT_SCALE
    )
    video = SyntheticVideo(config)
    return [video.image_and_label(t) for t in range(args.frames)]


def export_demo(directory: Path) -> Path:
    """The shipped demo model exported (default options) to ``directory``/export."""
    export = directory / "export"
    export_checkpoint(DEMO_MODEL, export, ExportOptions())
    return export
