"""``dff demo`` end to end: export, DFF and per-frame on a synthetic video, accuracy against its exact labels, outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import DATA, decode_all, small_clip

from dff.cli import main
from dff.commands.demo import DEMO_MODEL, DEMO_SIZE
from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig
from dff.metrics import SegmentationScore
from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend

ROW = re.compile(r"^(DFF \(l = \d+\)|per-frame)\s+([\d.]+)\s+([\d.]+)\s+(\S+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    assert main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "4", "--out", str(path)]) == 0
    return path


def table(printed: str) -> dict[str, tuple[float, str]]:
    """The demo's result rows: name → (fps, mIoU column)."""
    return {name: (float(fps), miou) for name, fps, _, miou in ROW.findall(printed)}


def miou_of(export: Path, interval: int, frames: int, seed: int, size: tuple[int, int]) -> float:
    """mIoU of the exported model run with one key frame every ``interval`` frames, computed here independently."""
    video = SyntheticVideo(SyntheticVideoConfig(length=frames, num_classes=4, seed=seed, height=size[0], width=size[1]))
    score = SegmentationScore(4)
    with open_backend("onnxruntime", model=export) as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(interval))
        for t in range(frames):
            score.update(runtime(video.image(t)).labels, video.label(t))
    return score.miou


def test_demo_on_the_synthetic_video(checkpoint, tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(checkpoint), "--frames", "12", "--key-interval", "4", "--seed", "3",
                 "--height", "128", "--width", "160", "--out", str(tmp_path), "--no-progress", "--threads", "2"]) == 0
    printed = capsys.readouterr().out
    rows = table(printed)
    assert set(rows) == {"DFF (l = 4)", "per-frame"}
    assert "ONNX Runtime on the CPU, 2 threads (--threads)" in printed
    for name, interval in (("DFF (l = 4)", 4), ("per-frame", 1)):
        expected = miou_of(tmp_path / "export", interval, 12, 3, (128, 160))
        assert float(rows[name][1].rstrip("%")) == pytest.approx(100 * expected, abs=0.051)
    speedup = float(re.search(r"measured speed-up over per-frame: ([\d.]+)x", printed).group(1))
    assert speedup == pytest.approx(rows["DFF (l = 4)"][0] / rows["per-frame"][0], rel=0.02, abs=0.01)
    assert "r (Eq. 5, non-key / key time) = " in printed and "s (Eq. 7, predicted speed-up for l = 4)" in printed
    assert len(decode_all(tmp_path / "overlay.mp4")) == 12
    plot = cv2.imread(str(tmp_path / "demo.png"))
    assert plot is not None and plot.shape[0] > 100
    records = [json.loads(line) for line in (tmp_path / "timings.jsonl").read_text().splitlines()]
    assert [r["path"] for r in records] == ["key", "non-key", "non-key", "non-key"] * 3
    assert (tmp_path / "export" / "manifest.json").is_file()


@pytest.mark.skipif(not DATA.is_dir(), reason=f"real test data not found at {DATA}")
def test_demo_on_a_video_has_no_accuracy(checkpoint, tmp_path, capsys):
    clip = small_clip(tmp_path / "clip.avi", 6)
    assert main(["demo", "--checkpoint", str(checkpoint), "--video", str(clip), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert {miou for _, miou in table(printed).values()} == {"n/a"}
    assert "no ground truth for --video" in printed and "DFF labels agree with per-frame labels" in printed
    assert len(decode_all(tmp_path / "out" / "overlay.mp4")) == 6


def test_threads_must_be_positive(tmp_path, capsys):
    assert main(["demo", "--threads", "0", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "need --threads >= 1, got 0" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["demo", "--checkpoint", str(tmp_path / "absent.safetensors"), "--out", str(tmp_path)]) == 2
    assert "the demo model" in capsys.readouterr().err


@pytest.mark.skipif(not DEMO_MODEL.is_file(), reason=f"the packaged demo model {DEMO_MODEL} is not in this tree")
def test_packaged_model_beats_predicting_background(tmp_path, capsys):
    """The shipped model segments: per-frame and DFF both beat labelling every pixel background."""
    assert main(["demo", "--frames", "20", "--out", str(tmp_path), "--no-progress", "--no-fast-path"]) == 0
    printed = capsys.readouterr().out
    rows = table(printed)
    from dff.manifest import load_manifest

    classes = load_manifest(tmp_path / "export").model.num_classes
    assert "video: synthetic, 20 frames of 320x400" in printed and DEMO_SIZE == (320, 400)
    video = SyntheticVideo(SyntheticVideoConfig(length=20, num_classes=classes, seed=1, height=DEMO_SIZE[0], width=DEMO_SIZE[1]))
    background = SegmentationScore(classes)
    for t in range(20):
        label = video.label(t)
        background.update(np.zeros_like(label), label)
    for _, miou in rows.values():
        assert float(miou.rstrip("%")) > 100 * background.miou
