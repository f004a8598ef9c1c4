"""Issue 11: failed writes on a real full disk, `dff init --out`, interrupts with a summary, reused labels folders,
odd frame sizes, and CLI output free of OpenCV/FFmpeg log lines."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import DATA, decode_all, make_checkpoint, small_clip, vtest_frames, wipe_frame

from dff.atomic import write_bytes_atomic
from dff.cli import main
from dff.errors import OutputError
from dff.export import ExportOptions, export_checkpoint


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_clip(tmp_path_factory.mktemp("clip") / "long.avi", 300)


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_clip(tmp_path_factory.mktemp("clip") / "short.avi", 10)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MB tmpfs mounted for this test (needs root or CAP_SYS_ADMIN), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a 1 MB tmpfs for a real full disk ({result.stderr.strip()}); run as root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` so that only about ``leave`` bytes stay free."""
    stats = os.statvfs(disk)
    (disk / "filler").write_bytes(bytes(max(0, stats.f_bavail * stats.f_frsize - leave)))


def random_checkpoint(path: Path, *, seed: int) -> Path:
    import torch

    from dff.checkpoint import save_checkpoint
    from dff.config import ModelConfig
    from dff.models import build_model

    torch.manual_seed(seed)
    config = ModelConfig(feature="tiny", flow="tiny", num_classes=5)
    return save_checkpoint(path, build_model(config), config)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["run", *args, "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestFullDisk:
    """Item 2: every writer reports a full disk, names the path and the cause, and keeps the earlier file."""

    def test_overlay_video_keeps_the_earlier_one(self, tiny_export, short_clip, long_clip, disk, capsys) -> None:
        out = disk / "o.mp4"
        assert run_cli([str(tiny_export), str(short_clip), "--out", str(out)], capsys)[0] == 0
        earlier = out.read_bytes()
        assert len(decode_all(out)) == 10
        fill(disk, leave=64 << 10)
        code, printed, err = run_cli([str(tiny_export), str(long_clip), "--out", str(out)], capsys)
        assert code == 2
        assert f"dff run: error: cannot write video {out}: no space left" in err and "earlier o.mp4 was left" in err
        assert "wrote overlay video" not in printed
        assert out.read_bytes() == earlier  # byte-identical, still 10 decodable frames
        assert names(disk) == ["filler", "o.mp4"]  # no temporary file left

    def test_label_pngs_keep_the_earlier_ones(self, tiny_export, short_clip, long_clip, disk, capsys) -> None:
        labels = disk / "labels"
        assert run_cli([str(tiny_export), str(short_clip), "--labels-dir", str(labels)], capsys)[0] == 0
        earlier = {p.name: p.read_bytes() for p in labels.iterdir()}
        fill(disk, leave=64 << 10)
        code, _, err = run_cli([str(tiny_export), str(long_clip), "--labels-dir", str(labels)], capsys)
        assert code == 2
        assert f"dff run: error: cannot write label PNG {labels}/0" in err and "no space left" in err
        assert {p.name: p.read_bytes() for p in labels.iterdir()} == earlier  # nothing replaced, no staging folder left

    def test_timing_log_keeps_the_earlier_one(self, tiny_export, long_clip, disk, capsys) -> None:
        log = disk / "t.jsonl"
        log.write_text("an earlier log\n")
        fill(disk, leave=16 << 10)
        code, _, err = run_cli([str(tiny_export), str(long_clip), "--log", str(log)], capsys)
        assert code == 2
        assert f"dff run: error: cannot write timing log {log}: no space left" in err
        assert log.read_text() == "an earlier log\n"
        assert names(disk) == ["filler", "t.jsonl"]

    def test_checkpoint(self, disk, capsys) -> None:
        target = disk / "m.safetensors"
        fill(disk, leave=64 << 10)  # a tiny model takes ~0.7 MB
        code = main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "3", "--out", str(target)])
        err = capsys.readouterr().err
        assert code == 2
        assert f"dff init: error: cannot write {target}: no space left" in err and "Traceback" not in err
        assert names(disk) == ["filler"]

    def test_export_keeps_the_earlier_one(self, disk, tmp_path) -> None:
        checkpoint = make_checkpoint(tmp_path / "model.safetensors")
        out = disk / "export"
        export_checkpoint(checkpoint, out, ExportOptions(min_size=(64, 64), max_size=(128, 128)))
        earlier = {p.name: p.read_bytes() for p in out.iterdir()}
        fill(disk, leave=64 << 10)
        other = random_checkpoint(tmp_path / "other.safetensors", seed=1)  # other weights: every file is written again
        with pytest.raises(OutputError, match=f"cannot write export directory {out}: no space left"):
            export_checkpoint(other, out, ExportOptions(min_size=(64, 64), max_size=(128, 128)))
        assert {p.name: p.read_bytes() for p in out.iterdir()} == earlier

    def test_atomic_bytes_behind_engines_manifests_and_timing_caches(self, disk) -> None:
        target = disk / "feature.engine"
        target.write_bytes(b"an earlier engine")
        fill(disk, leave=16 << 10)
        with pytest.raises(OutputError, match=f"cannot write {target}: no space left"):
            write_bytes_atomic(target, bytes(1 << 20))
        assert target.read_bytes() == b"an earlier engine" and names(disk) == ["feature.engine", "filler"]

    def test_plot(self, disk) -> None:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot as plt

        from dff.benchmark.plot import save_figure

        target = disk / "speedup.png"
        target.write_bytes(b"an earlier plot")
        fill(disk, leave=4 << 10)
        figure, axes = plt.subplots(figsize=(8, 6))
        axes.imshow(np.random.default_rng(0).random((400, 400)))  # noise does not compress: well over 4 KB
        with pytest.raises(OutputError, match=f"cannot write {target}: no space left"):
            save_figure(figure, target)
        assert target.read_bytes() == b"an earlier plot" and names(disk) == ["filler", "speedup.png"]
