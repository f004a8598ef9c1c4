"""The pipelined driver and ``dff run SRC [SRC ...] --out-dir``: real clips, real threads, real signals."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import DATA, decode_all, small_clip, start_dff

from dff.cli import main
from dff.runtime import RunOutputs, open_backend
from dff.runtime.pipeline import PipelineStream, run_pipeline
from dff.runtime.pipeline_inputs import open_stream_source, stream_names
from dff.runtime.streams import MultiStreamRuntime, phased_schedulers
from dff.sources import ArrayFrames, VideoFile

pytestmark = pytest.mark.skipif(not (DATA / "videos").is_dir(), reason=f"real test videos not found at {DATA}")


def temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name]


def folder_of_frames(path: Path, clip: Path) -> Path:
    path.mkdir()
    for i, image in enumerate(decode_all(clip)):
        cv2.imwrite(str(path / f"{i}.png"), image)
    return path


def test_stream_names_from_sources(tmp_path):
    folder = tmp_path / "cam_a"
    folder.mkdir()
    specs = ["/v/clip.mp4", "/w/clip.avi", str(folder), "0", "rtsp://10.0.0.5:554/live/main?x=1", "/v/clip.mp4", "/x/y.mp4"]
    assert stream_names(specs) == ["v-clip", "w-clip", "cam_a", "camera0", "10.0.0.5_554-main", "v-clip-2", "y"]


def test_two_sources_pipelined_equal_the_runtime_alone(tiny_export, tmp_path):
    """A video file and a frame folder of other lengths: every frame labelled (none dropped), labels equal those of the
    same streams run by the MultiStreamRuntime without threads, every output complete and no temporary file left."""
    clip = small_clip(tmp_path / "clip.avi", 12)
    folder = folder_of_frames(tmp_path / "frames", small_clip(tmp_path / "other.avi", 7))
    with open_backend("onnxruntime", model=tiny_export, threads=1) as backend:
        streams = []
        for name, spec in (("clip", clip), ("frames", folder)):
            source, live = open_stream_source(str(spec))
            assert not live
            (tmp_path / name).mkdir(exist_ok=True)
            outputs = RunOutputs(
                num_classes=len(backend.class_names),
                overlay_path=tmp_path / name / "overlay.mp4",
                labels_dir=tmp_path / name / "labels",
                log_path=tmp_path / name / "timings.jsonl",
            )
            streams.append(PipelineStream(name=name, source=source, live=live, outputs=outputs))
        report = run_pipeline(MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(2, 3)), streams)

        expected = {"clip": decode_all(clip), "frames": decode_all(tmp_path / "other.avi")}
        alone = MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(2, 3))
        labels = {"clip": [], "frames": []}
        for i in range(12):
            out = alone({j: expected[name][i] for j, name in enumerate(("clip", "frames")) if i < len(expected[name])})
            for j, name in enumerate(("clip", "frames")):
                if j in out:
                    labels[name].append(out[j].labels)
    assert [s.frames for s in report.streams] == [12, 7]
    assert [s.dropped for s in report.streams] == [0, 0] and not report.failed
    assert report.streams[0].key_frames == 4 and report.inference_s <= report.wall_s and report.ticks == 12
    assert set(report.streams[0].stage_mean_ms["key"]) == {"preprocess", "key_path", "postprocess"}  # the fused key path
    assert 0 < report.streams[0].latency_p50_ms <= report.streams[0].latency_p99_ms
    for name in ("clip", "frames"):
        written = sorted((tmp_path / name / "labels").glob("*.png"))
        assert len(written) == len(expected[name])
        for path, want in zip(written, labels[name]):
            np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), want)
        assert len(decode_all(tmp_path / name / "overlay.mp4")) == len(expected[name])
        assert len((tmp_path / name / "timings.jsonl").read_text().splitlines()) == len(expected[name])
    assert not temp_files(tmp_path)
    assert report.lines()[-1].startswith("all 2 streams: 19 frames")


def test_a_live_source_keeps_the_newest_frame_and_counts_the_dropped(tiny_export, tmp_path):
    """A file read as a live source, decoded far faster than 512x512 frames are labelled: frames are dropped and
    counted, and every frame is either labelled or counted as dropped."""
    from helpers import make_checkpoint, make_export

    export = make_export(make_checkpoint(tmp_path / "model.safetensors"), tmp_path / "export")
    clip = small_clip(tmp_path / "clip.avi", 60)
    big = [cv2.resize(image, (512, 512)) for image in decode_all(clip)]
    with open_backend("onnxruntime", model=export, threads=1) as backend:
        # Stream 0 is live (its frames come from a file as fast as OpenCV decodes them); stream 1 is in memory at 512x512.
        streams = [PipelineStream("live", VideoFile(clip), live=True), PipelineStream("file", ArrayFrames(big[:20]))]
        report = run_pipeline(MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(2, 5)), streams)
    live, file = report.streams
    assert file.frames == 20 and file.dropped == 0
    assert live.dropped > 0 and live.frames + live.dropped == 60
    assert f"dropped {live.dropped}" in live.line()
    assert "live source stopped delivering frames" in live.failure  # a live source is not expected to end


def test_a_failing_source_ends_only_its_stream(tiny_export, tmp_path):
    """A truncated file and a source that raises mid-run end their own streams with the reason; the third goes on."""
    clip = small_clip(tmp_path / "clip.avi", 30)
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])
    good = decode_all(clip)
    broken = ArrayFrames(good[:5] + [good[5].astype(np.float32)] + good[6:])  # frame 5 is not a uint8 image
    with open_backend("onnxruntime", model=tiny_export, threads=1) as backend:
        streams = [
            PipelineStream("truncated", VideoFile(truncated)),
            PipelineStream("broken", broken),
            PipelineStream("intact", VideoFile(clip)),
        ]
        with pytest.warns(UserWarning, match="ended after"):
            report = run_pipeline(MultiStreamRuntime(backend=backend, schedulers=phased_schedulers(3, 5)), streams)
    cut, bad, intact = report.streams
    assert 0 < cut.frames < 30 and "ended after frame" in cut.failure
    assert bad.frames == 5 and "frame 5: expected a uint8" in bad.failure
    assert intact.frames == 30 and intact.failure is None
    assert report.lines()[-1] == "ended early: truncated, broken"


def test_cli_many_sources_one_output_set_each(tiny_export, tmp_path, capsys):
    clip = small_clip(tmp_path / "clip.avi", 8)
    other = tmp_path / "b"
    other.mkdir()
    other_clip = small_clip(other / "clip.avi", 6)
    status = main(["run", str(tiny_export), str(clip), str(other_clip), str(clip), "--out-dir", str(tmp_path / "out"),
                   "-l", "3", "--phase", "aligned", "--no-progress", "-O", "threads=1"])
    assert status == 0
    printed = capsys.readouterr().out
    top = tmp_path.name
    for name, count in ((f"{top}-clip", 8), ("b-clip", 6), (f"{top}-clip-2", 8)):
        folder = tmp_path / "out" / name
        assert len(list((folder / "labels").glob("*.png"))) == count
        assert len(decode_all(folder / "overlay.mp4")) == count
        assert f"stream {name}: {count} frames" in printed
    assert "all 3 streams: 22 frames" in printed
    assert not temp_files(tmp_path)


def test_cli_refuses_one_file_options_with_many_sources(tiny_export, tmp_path, capsys):
    clip = small_clip(tmp_path / "clip.avi", 2)
    assert main(["run", str(tiny_export), str(clip), str(clip), "--out", str(tmp_path / "o.mp4")]) == 2
    assert "--out is for one source" in capsys.readouterr().err
    # Adaptive streams are welcome, but need a calibration (tests/test_adaptive_cli.py runs them).
    assert main(["run", str(tiny_export), str(clip), str(clip), "--scheduler", "adaptive"]) == 2
    error = capsys.readouterr().err
    assert "no key-frame calibration at" in error and error.count("\n") == 1
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_run_removes_unfinished_files(tiny_export, tmp_path, signum, status):
    """SIGTERM or Ctrl-C while three streams run: exit 143/130, one line, no temporary file left, no traceback."""
    video = str(DATA / "videos" / "vtest.avi")
    out = tmp_path / "out"
    # start_dff: Ctrl-C reaches the child even when this test run was started in the background.
    process = start_dff("run", str(tiny_export), video, video, video, "--out-dir", str(out), "--no-progress", "-O", "threads=1")
    deadline = time.monotonic() + 120
    # Underway: every stream's overlay video is being written (the labels only move into place at the end).
    folders = [out / name for name in stream_names([video] * 3)]
    while not all(any(f.glob(".overlay.tmp-*")) for f in folders):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    assert process.poll() is None, "the run ended before the signal: give it a longer video"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert "unfinished outputs removed" in stderr and "Traceback" not in stderr
    assert not temp_files(out)
    assert not any(out.rglob("overlay.mp4"))


def test_latency_histogram_percentiles_within_one_percent():
    from dff.runtime.pipeline_stats import LatencyHistogram

    values = np.random.default_rng(0).lognormal(mean=3.0, sigma=1.0, size=5000)
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(float(value))
    for q in (1, 50, 99):
        assert abs(histogram.percentile(q) / np.percentile(values, q, method="inverted_cdf") - 1) < 0.011
    assert LatencyHistogram().percentile(50) is None
