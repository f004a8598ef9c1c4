"""Video in and out: real videos and frame folders through the runtime, the overlay video, label PNGs, the timing log."""

from __future__ import annotations

import itertools
import json

import cv2
import numpy as np
import pytest
from helpers import DATA, decode_all, make_checkpoint, make_export, small_clip, wipe_frame

from dff.runtime import DeepFeatureFlowRuntime, FixedInterval, FrameResult, FrameTiming, RunOutputs, open_backend, run_source
from dff.runtime.overlay import overlay, palette
from dff.runtime.video import RunReport
from dff.sources import ArrayFrames, Frame, FrameFolder, VideoFile

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real test data not found at {DATA}")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    with open_backend("onnxruntime", model=make_export(make_checkpoint(folder / "tiny.safetensors"), folder / "export")) as backend:
        yield backend


def runtimes(backend, interval: int = 3) -> tuple[DeepFeatureFlowRuntime, DeepFeatureFlowRuntime]:
    """DFF with one key frame every ``interval`` frames, and the per-frame baseline on the same backend."""
    return (
        DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(interval)),
        DeepFeatureFlowRuntime(backend=backend, scheduler=FixedInterval(1)),
    )


@needs_data
class TestRealVideo:
    def test_video_file_to_overlay_labels_and_log(self, backend, tmp_path):
        runtime, baseline = runtimes(backend)
        source = VideoFile(DATA / "videos" / "vtest.avi")
        results = []
        with RunOutputs(
            num_classes=len(backend.class_names),
            overlay_path=tmp_path / "overlay.mp4",
            labels_dir=tmp_path / "labels",
            log_path=tmp_path / "timings.jsonl",
            fps=source.fps,
        ) as outputs:
            for step in itertools.islice(run_source(runtime, source, baseline=baseline), 5):
                outputs.write(step.frame, step.result, step.baseline)
                results.append(step)
        video = decode_all(tmp_path / "overlay.mp4")
        assert len(video) == 5 and video[0].shape == (360, 480, 3)
        # The overlay is the frame blended with the class colours: close to what we blend here (lossy codec).
        expected = overlay(results[0].frame.image, results[0].result.labels, palette(len(backend.class_names)))
        assert np.abs(video[0].astype(int) - expected).mean() < 8
        for step in results:
            png = cv2.imread(str(tmp_path / "labels" / f"{step.frame.index:06d}.png"), cv2.IMREAD_UNCHANGED)
            np.testing.assert_array_equal(png, step.result.labels)
        log = [json.loads(line) for line in (tmp_path / "timings.jsonl").read_text().splitlines()]
        assert [r["frame"] for r in log] == [0, 1, 2, 3, 4]
        assert [r["path"] for r in log] == ["key", "non-key", "non-key", "key", "non-key"]
        # One fused call per path (the export has key_path.onnx and propagate.onnx), timed as one stage.
        assert set(log[1]["ms"]) == {"preprocess", "propagate", "postprocess"}
        assert set(log[1]["baseline_ms"]) == {"preprocess", "key_path", "postprocess"}
        assert log[1]["total_ms"] == pytest.approx(sum(log[1]["ms"].values()), abs=1e-3)

    def test_frame_folder(self, backend):
        runtime, _ = runtimes(backend)
        source = FrameFolder(DATA / "camvid_0016E5" / "images")
        steps = list(itertools.islice(run_source(runtime, source), 3))
        assert [s.frame.index for s in steps] == [0, 1, 2]
        assert [s.result.key for s in steps] == [True, False, False]
        assert all(s.result.labels.shape == (360, 480) for s in steps)

    def test_corrupt_frame_mid_video_is_skipped_and_counted(self, backend, tmp_path):
        path = small_clip(tmp_path / "clip.avi", 8)
        wipe_frame(path, 4)
        runtime, _ = runtimes(backend)
        source = VideoFile(path)
        with pytest.warns(UserWarning, match="skipped 1 unreadable frame"):
            steps = list(run_source(runtime, source))
        assert [s.frame.index for s in steps] == [0, 1, 2, 3, 5, 6, 7]
        report = RunReport.of([s.result.timing for s in steps], interval=3, source=source)
        assert report.skipped == 1 and not report.ended_early
        assert "skipped 1 unreadable frame(s)" in report.lines()

    def test_video_that_ends_early(self, backend, tmp_path):
        path = small_clip(tmp_path / "clip.avi", 12)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        runtime, _ = runtimes(backend)
        source = VideoFile(path)
        with pytest.warns(UserWarning, match="ended after"):
            steps = list(run_source(runtime, source))
        assert 0 < len(steps) < 12
        report = RunReport.of([s.result.timing for s in steps], interval=3, source=source)
        assert report.ended_early and report.timing.frames == len(steps)


@needs_data
def test_size_change_mid_stream(backend, tmp_path):
    """Array frames that change size: a key frame at the new size, labels at each frame's size, one video size."""
    clip = decode_all(small_clip(tmp_path / "clip.avi", 4))
    frames = clip[:2] + [cv2.resize(f, (224, 176)) for f in clip[2:]]
    runtime, _ = runtimes(backend, interval=10)
    with RunOutputs(
        num_classes=len(backend.class_names), overlay_path=tmp_path / "out.mp4", labels_dir=tmp_path / "labels"
    ) as outputs:
        steps = []
        for step in run_source(runtime, ArrayFrames(frames)):
            outputs.write(step.frame, step.result)
            steps.append(step)
    assert [s.result.key for s in steps] == [True, False, True, False]
    assert [s.result.labels.shape for s in steps] == [(120, 160)] * 2 + [(176, 224)] * 2
    assert cv2.imread(str(tmp_path / "labels" / "000003.png"), cv2.IMREAD_UNCHANGED).shape == (176, 224)
    assert [f.shape for f in decode_all(tmp_path / "out.mp4")] == [(120, 160, 3)] * 4


def test_failed_run_leaves_no_outputs(tmp_path):
    """A run that fails half-way leaves neither its video nor its log, nor temporary files."""
    result = FrameResult(
        labels=np.zeros((64, 64), np.uint8), key=True, timing=FrameTiming(index=0, key=True, stages_ms={"task": 1.0})
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        with RunOutputs(num_classes=3, overlay_path=tmp_path / "out.mp4", log_path=tmp_path / "log.jsonl") as outputs:
            outputs.write(Frame(0, np.zeros((64, 64, 3), np.uint8)), result)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


class TestOverlay:
    def test_palette_gives_each_class_its_own_colour(self):
        colours = palette(12)
        assert colours.shape == (256, 3) and colours.dtype == np.uint8
        assert len({tuple(c) for c in colours[:12]}) == 12
        assert not colours[12:].any()

    def test_overlay_blends_the_class_colour(self):
        image = np.full((4, 6, 3), 100, np.uint8)
        labels = np.zeros((4, 6), np.uint8)
        labels[:, 3:] = 2
        colours = palette(3)
        out = overlay(image, labels, colours, alpha=0.5)
        np.testing.assert_allclose(out[0, 0], 0.5 * 100 + 0.5 * colours[0].astype(float), atol=1)
        np.testing.assert_allclose(out[0, 5], 0.5 * 100 + 0.5 * colours[2].astype(float), atol=1)

    def test_overlay_checks_sizes(self):
        with pytest.raises(ValueError, match=r"labels must have the image's size \(4, 6\), got \(4, 5\)"):
            overlay(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 5), np.uint8), palette(2))
