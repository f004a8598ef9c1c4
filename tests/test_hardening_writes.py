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
from helpers import DATA, decode_all, make_checkpoint, small_clip, start_dff, vtest_frames, wipe_frame

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
def disk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A real tmpfs, 1 MB unless parametrized indirectly with another size ("4m"), mounted for this test (needs root
    or CAP_SYS_ADMIN), unmounted afterwards."""
    size = getattr(request, "param", "1m")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"SKIPPED LOUDLY: cannot mount a {size} tmpfs for a real full disk ({result.stderr.strip()}); run as root")
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

    def test_video_writer_stops_at_the_frame_the_disk_filled_not_at_the_end(self, disk) -> None:
        from dff.sources import GROWTH_CHECK_FRAMES, VideoWriter

        fill(disk, leave=64 << 10)
        frames = vtest_frames(60, (240, 320))
        written = 0
        with pytest.raises(OutputError, match=f"cannot write video {disk / 'o.mp4'}: no space left.*nothing was saved"):
            with VideoWriter(disk / "o.mp4", fps=10) as writer:
                for written in range(1000):
                    writer.write(frames[written % 60])
        # 64 KB hold a few dozen of these frames; the error comes at the next growth check after that.
        assert written < 3 * GROWTH_CHECK_FRAMES
        assert names(disk) == ["filler"]

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

    @pytest.mark.parametrize("disk", ["4m"], indirect=True)  # an export with its fused graphs and its staging copy
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


class TestInit:
    """Item 3: `dff init --out` never overwrites a checkpoint without --force and never makes a folder of x.txt."""

    def init(self, out: str, *extra: str) -> int:
        return main(["init", "--feature", "tiny", "--flow", "tiny", "--num-classes", "3", "--out", out, *extra])

    def test_existing_checkpoint_is_refused_without_force(self, tmp_path, capsys) -> None:
        target = tmp_path / "trained.safetensors"
        assert self.init(str(target)) == 0
        trained = target.read_bytes()
        assert self.init(str(target), "--seed", "1") == 2
        err = capsys.readouterr().err
        assert f"dff init: error: {target} already exists" in err and "--force" in err
        assert target.read_bytes() == trained
        assert self.init(str(target), "--seed", "1", "--force") == 0
        assert target.read_bytes() != trained

    def test_folder_holds_model_safetensors_and_is_not_overwritten(self, tmp_path, capsys) -> None:
        assert self.init(f"{tmp_path / 'ckpt'}/") == 0  # a trailing slash: the folder is created
        assert (tmp_path / "ckpt" / "model.safetensors").is_file()
        assert self.init(str(tmp_path / "ckpt")) == 2  # an existing folder: its model.safetensors exists
        assert "ckpt/model.safetensors already exists" in capsys.readouterr().err

    def test_other_names_are_refused_with_both_readings(self, tmp_path, capsys) -> None:
        assert self.init(str(tmp_path / "x.txt")) == 2
        err = capsys.readouterr().err
        assert f"give {tmp_path / 'x.safetensors'} for a file, or {tmp_path / 'x.txt'}/ for the folder" in err
        assert list(tmp_path.iterdir()) == []  # no folder named x.txt


@pytest.fixture(scope="module")
def long_clip_600(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_clip(tmp_path_factory.mktemp("clip") / "long600.avi", 600)


@pytest.mark.parametrize(("sent", "status", "word"), [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_interrupt_prints_the_partial_summary(tiny_export, long_clip_600, tmp_path, sent, status, word) -> None:
    """Item 7: a real signal to a real `dff run`: one line with the frames done, and their timing summary."""
    labels = tmp_path / "labels"
    process = start_dff(
        "run", str(tiny_export), str(long_clip_600), "-l", "1", "--compare", "--labels-dir", str(labels), "--no-progress"
    )
    deadline = time.monotonic() + 60
    while len(list(labels.glob(".labels.tmp-*/*.png"))) < 3:  # frame n's PNG exists: frames before n are done
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "dff run never wrote a label"
        time.sleep(0.02)
    process.send_signal(sent)
    printed, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    done = int(err.split("interrupted after ")[1].split()[0])
    assert 2 <= done < 600
    assert err == f"dff run: interrupted after {done} frames ({word}); earlier outputs kept, this run's unfinished ones removed\n"
    assert f"deep feature flow:\n{done} frames at " in printed and f"per-frame baseline:\n{done} frames at " in printed
    assert "measured speed-up over per-frame" in printed and "wrote" not in printed
    assert names(labels) == []  # the unfinished labels were removed, staging folder included


class TestReusedLabelsFolder:
    """Item 8: a labels folder reflects the run that wrote it last; files dff did not write are never removed."""

    def test_stale_pngs_of_a_longer_run_are_removed_and_said(self, tiny_export, short_clip, long_clip, tmp_path, capsys) -> None:
        labels = tmp_path / "labels"
        (tmp_path / "labels").mkdir()
        (labels / "notes.txt").write_text("mine")
        assert run_cli([str(tiny_export), str(long_clip), "--labels-dir", str(labels)], capsys)[0] == 0
        assert len(list(labels.glob("*.png"))) == 300
        code, printed, _ = run_cli([str(tiny_export), str(short_clip), "--labels-dir", str(labels)], capsys)
        assert code == 0
        assert sorted(p.name for p in labels.glob("*.png")) == [f"{i:06d}.png" for i in range(10)]
        assert (labels / "notes.txt").read_text() == "mine"
        assert f"removed 290 label PNG(s) of an earlier run from {labels} (000010.png to 000299.png)" in printed

    def test_pngs_dff_did_not_record_are_never_overwritten(self, tiny_export, short_clip, tmp_path, capsys) -> None:
        labels = tmp_path / "labels"
        labels.mkdir()
        for index in (5, 11, 12):
            (labels / f"{index:06d}.png").write_bytes(b"a user's file, or from before the record")
        started = time.perf_counter()
        code, printed, err = run_cli([str(tiny_export), str(short_clip), "--labels-dir", str(labels)], capsys)
        assert code == 2 and printed == ""
        assert (
            f"dff run: error: labels folder {labels} holds 3 PNG(s) named like dff's labels (000005.png to 000012.png) "
            "that dff has no record of writing, and this run could overwrite them" in err
        )
        assert time.perf_counter() - started < 10  # refused before the frames
        assert names(labels) == ["000005.png", "000011.png", "000012.png"]
        assert {(labels / n).read_bytes() for n in names(labels)} == {b"a user's file, or from before the record"}


def test_odd_frame_size_gives_a_padded_video_and_says_so(tiny_export, tmp_path, capsys) -> None:
    """Item 12: a real 99x133 video (OpenCV's own MJPEG writer keeps odd sizes) gives a 100x134 overlay, said in one line."""
    video = tmp_path / "odd.avi"
    writer = cv2.VideoWriter(str(video), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10, (133, 99))
    for image in vtest_frames(6, (99, 133)):
        writer.write(image)
    writer.release()
    assert cv2.VideoCapture(str(video)).read()[1].shape == (99, 133, 3)
    out, labels = tmp_path / "o.mp4", tmp_path / "labels"
    code, printed, _ = run_cli([str(tiny_export), str(video), "--out", str(out), "--labels-dir", str(labels)], capsys)
    assert code == 0
    frames = decode_all(out)
    assert len(frames) == 6 and frames[0].shape == (100, 134, 3)
    # The padding repeats the last row and column: the frame's own pixels are all there, none dropped.
    assert np.abs(frames[0][99].astype(int) - frames[0][98]).mean() < 8
    assert cv2.imread(str(labels / "000000.png"), cv2.IMREAD_UNCHANGED).shape == (99, 133)
    assert "overlay video is 100x134 (HxW): frames of 99x133 padded to the even size the mp4v encoder needs" in printed


def quiet_env() -> dict[str, str]:
    """The environment without a user's OpenCV/FFmpeg log settings, as a new user has it."""
    return {k: v for k, v in os.environ.items() if k not in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL")}


class TestCliOutput:
    """Item 14: only dff's own lines on stderr; a progress bar that ends honestly on an over-announcing video."""

    def test_full_disk_gives_one_line_not_opencv_warnings(self, tiny_export, long_clip, disk) -> None:
        fill(disk, leave=64 << 10)
        plain = "import cv2, numpy as np\nw = cv2.VideoWriter({!r}, cv2.VideoWriter_fourcc(*'mp4v'), 10, (160, 120))\n" \
            "for i in range(300): w.write(np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8))\nw.release()"
        control = subprocess.run([sys.executable, "-c", plain.format(str(disk / "plain.mp4"))], capture_output=True,
                                 text=True, env=quiet_env())
        assert "WARN" in control.stderr  # OpenCV on its own does print here
        (disk / "plain.mp4").unlink()
        result = subprocess.run(
            [sys.executable, "-m", "dff.cli", "run", str(tiny_export), str(long_clip), "--out", str(disk / "o.mp4"),
             "--no-progress"], capture_output=True, text=True, env=quiet_env(),
        )
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            f"dff run: error: cannot write video {disk / 'o.mp4'}: no space left on the device: free some space or "
            "write elsewhere; nothing was saved"
        ]

    def test_over_announced_video_ends_the_bar_full_and_says_so_once(self, tiny_export, shared_data) -> None:
        video = shared_data / "videos" / "car_traffic_small.mp4"  # the container announces 922 frames; 917 decode
        result = subprocess.run(
            [sys.executable, "-m", "dff.cli", "run", str(tiny_export), str(video)], capture_output=True, text=True,
            env=quiet_env(),
        )
        assert result.returncode == 0, result.stderr
        assert "the video ended after 917 of the 922 frames its container announced" in result.stdout
        bar = result.stderr.replace("\r", "\n").strip().splitlines()
        assert "917/917" in bar[-1] and "100%" in bar[-1]
        assert not [line for line in bar if "frame" not in line or "ended" in line]  # bar updates only, no warning

    def test_warnings_are_one_line_of_ours(self, tiny_export, tmp_path) -> None:
        clip = small_clip(tmp_path / "clip.avi", 8)
        wipe_frame(clip, 3)
        result = subprocess.run(
            [sys.executable, "-m", "dff.cli", "run", str(tiny_export), str(clip), "--no-progress"],
            capture_output=True, text=True, env=quiet_env(),
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == f"dff run: warning: video {clip}: skipped 1 unreadable frame(s) before frame 4\n"


def test_source_warnings_point_at_the_callers_line(tiny_export, tmp_path) -> None:
    """Item 14: a library user's warning names their own line, not tqdm's or dff's (sources are generators)."""
    from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, open_backend, run_source
    from dff.sources import open_source

    clip = small_clip(tmp_path / "clip.avi", 8)
    wipe_frame(clip, 3)
    with open_backend("onnxruntime", model=tiny_export) as backend:
        runtime = DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(3))
        with pytest.warns(UserWarning, match="skipped 1 unreadable frame") as record:
            steps = list(run_source(runtime, open_source(clip), progress=True))
    assert len(steps) == 7
    assert [(w.filename, w.lineno) for w in record] == [(__file__, sys._getframe().f_lineno - 2)]
