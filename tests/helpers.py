"""Plain helpers several test modules call with their own arguments: tiny models, short real clips, a torch-free process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from dff.checkpoint import save_checkpoint
from dff.config import ModelConfig
from dff.export import ExportOptions, export_checkpoint
from dff.models import build_model
from dff.sources import VideoWriter

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
#: Run first in a child process: any import of torch fails there.
BLOCK_TORCH = """\
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, NoTorch())
"""


def make_checkpoint(path: Path) -> Path:
    """A tiny model at ``path`` whose F predicts a non-zero flow and scale (an untrained F propagates features unchanged)."""
    torch.manual_seed(0)
    config = ModelConfig(feature="tiny", flow="tiny", num_classes=5)
    model = build_model(config)
    with torch.no_grad():
        model.flow_net.decoder[-1].predict_flow.weight.normal_(std=0.05)
        model.flow_net.scale.weight.normal_(std=0.05)
        model.task_net.score.weight.normal_(std=0.5)
    return save_checkpoint(path, model, config)


def make_detector(path: Path, *, flow_std: float = 0.0, output_stride: int = 16) -> Path:
    """A tiny detector at ``path``/detector.safetensors whose head has larger weights than at initialisation, so that
    scores differ from box to box; with ``flow_std`` > 0 its F predicts a non-zero flow and scale too, so that
    non-key frames differ from their key frame."""
    torch.manual_seed(0)
    config = ModelConfig(task="detection", feature="tiny", flow="tiny", num_classes=4, output_stride=output_stride)  # type: ignore[arg-type]
    model = build_model(config)
    head = model.task_net
    for conv, std in ((head.rpn_objectness, 0.3), (head.rfcn_classes, 0.3), (head.rpn_deltas, 0.05), (head.rfcn_boxes, 0.05)):
        torch.nn.init.normal_(conv.weight, std=std)
    if flow_std > 0:
        with torch.no_grad():
            model.flow_net.decoder[-1].predict_flow.weight.normal_(std=flow_std)
            model.flow_net.scale.weight.normal_(std=flow_std)
    return save_checkpoint(path / "detector.safetensors", model, config)


def make_export(checkpoint: Path, out: Path) -> Path:
    """``checkpoint`` exported to ``out`` for frames of 64 to 512 pixels a side."""
    export_checkpoint(checkpoint, out, ExportOptions(min_size=(64, 64), max_size=(512, 512)))
    return out


def small_clip(path: Path, count: int, *, size: tuple[int, int] = (120, 160)) -> Path:
    """The first ``count`` frames of vtest.avi, shrunk, as a Motion-JPEG AVI (one JPEG per frame: easy to damage)."""
    capture = cv2.VideoCapture(str(DATA / "videos" / "vtest.avi"))
    with VideoWriter(path, fps=10, fourcc="MJPG") as writer:
        for _ in range(count):
            writer.write(cv2.resize(capture.read()[1], size[::-1], interpolation=cv2.INTER_AREA))
    capture.release()
    return path


def wipe_frame(path: Path, index: int) -> None:
    """Overwrite frame ``index``'s JPEG in a Motion-JPEG AVI with zeros, so that it no longer decodes."""
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    data[starts[index] : starts[index + 1] - 16] = bytes(starts[index + 1] - 16 - starts[index])
    path.write_bytes(bytes(data))


def decode_all(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def run_without_torch(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a new Python process, from the repository root, where importing torch raises ImportError."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH + code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def vtest_frames(count: int, size: tuple[int, int], *, start: int = 0) -> list[np.ndarray]:
    """``count`` consecutive frames of the real vtest.avi (pedestrians) from frame ``start``, shrunk to ``size`` (H, W)."""
    capture = cv2.VideoCapture(str(DATA / "videos" / "vtest.avi"))
    capture.set(cv2.CAP_PROP_POS_FRAMES, start)
    frames = []
    for _ in range(count):
        ok, image = capture.read()
        assert ok, "vtest.avi should decode"
        frames.append(cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def start_dff(*args: str) -> subprocess.Popen:
    """`dff ARGS...` as a child process that Ctrl-C reaches, as it does in a terminal.

    A test run in the background (nohup, some CI runners) ignores SIGINT, and children inherit that.
    """
    return subprocess.Popen(
        [sys.executable, "-m", "dff.cli", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
