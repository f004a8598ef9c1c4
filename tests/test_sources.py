"""Frame sources on real videos and frame folders, and the atomic video writer."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dff.errors import VideoError
from dff.sources import ArrayFrames, Camera, FrameFolder, VideoFile, VideoWriter, natural_key, open_source, write_video

DATA = Path(__file__).parents[1].parent / "shared" / "data"
VIDEOS = DATA / "videos"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real test data not found at {DATA}")


def gradient_frames(count: int, height: int = 64, width: int = 96) -> list[np.ndarray]:
    """Smooth frames with a moving bright bar: compress well, differ from each other."""
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(count):
        frame = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 40)], axis=2).astype(np.uint8)
        frame[:, (4 * t) % width : (4 * t) % width + 8] = 255
        frames.append(frame)
    return frames


def decoded_count(path: Path) -> int:
    """Frames OpenCV decodes from ``path``, read directly, as the reference."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def write_frames(folder: Path, names: list[str], values: list[int]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in zip(names, values):
        assert cv2.imwrite(str(folder / name), np.full((16, 24, 3), value, np.uint8))


class TestNaturalOrder:
    def test_numbers_compare_as_numbers(self):
        names = ["frame10.png", "frame2.png", "frame1.png", "frame100.png", "frame20.png"]
        assert sorted(names, key=natural_key) == ["frame1.png", "frame2.png", "frame10.png", "frame20.png", "frame100.png"]

    def test_folder_iterates_in_natural_order_over_all_extensions(self, tmp_path):
        names = ["frame10.png", "frame2.JPG", "frame1.bmp", "frame3.jpeg", "frame11.PNG"]
        values = [100, 20, 10, 30, 110]  # the frame number times ten, PNG/BMP exact
        write_frames(tmp_path, names, values)
        (tmp_path / "notes.txt").write_text("not a frame")
        source = FrameFolder(tmp_path)
        assert len(source) == 5
        frames = list(source)
        assert [f.index for f in frames] == [0, 1, 2, 3, 4]
        means = [float(f.image.mean()) for f in frames]
        assert means == sorted(means), f"frames out of order: {means}"
        assert [p.name for p in source.files] == ["frame1.bmp", "frame2.JPG", "frame3.jpeg", "frame10.png", "frame11.PNG"]


class TestFrameFolder:
    @needs_data
    def test_real_frames(self):
        source = FrameFolder(DATA / "imagenet_vid_val_00007010")
        assert len(source) == len(list((DATA / "imagenet_vid_val_00007010").glob("*.JPEG")))
        assert [p.stem for p in source.files] == [f"{i:06d}" for i in range(len(source))]
        first = list(itertools.islice(source, 2))
        assert [f.index for f in first] == [0, 1]
        assert first[0].image.shape == (720, 1280, 3) and first[0].image.dtype == np.uint8

    def test_empty_folder_names_it(self, tmp_path):
        (tmp_path / "readme.txt").write_text("no images here")
        with pytest.raises(VideoError, match=str(tmp_path)):
            FrameFolder(tmp_path)

    def test_missing_folder(self, tmp_path):
        with pytest.raises(VideoError, match="does not exist"):
            FrameFolder(tmp_path / "absent")

    def test_corrupt_image_mid_sequence_is_skipped_and_counted(self, tmp_path):
        write_frames(tmp_path, [f"f{i}.png" for i in range(5)], [10, 20, 30, 40, 50])
        (tmp_path / "f2.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated garbage")
        source = FrameFolder(tmp_path)
        with pytest.warns(UserWarning, match="f2.png"):
            frames = list(source)
        assert [f.index for f in frames] == [0, 1, 3, 4]
        assert [int(f.image[0, 0, 0]) for f in frames] == [10, 20, 40, 50]
        assert source.skipped == 1

    def test_frames_may_change_size(self, tmp_path):
        # The runtime starts a new key frame at the new size; the source passes frames on as they are.
        write_frames(tmp_path, ["a1.png"], [0])
        cv2.imwrite(str(tmp_path / "a2.png"), np.zeros((8, 8, 3), np.uint8))
        assert [f.image.shape[:2] for f in FrameFolder(tmp_path)][1] == (8, 8)


@needs_data
class TestVideoFile:
    def test_vtest_avi(self):
        source = VideoFile(VIDEOS / "vtest.avi")
        assert source.length == decoded_count(VIDEOS / "vtest.avi")
        assert source.fps == pytest.approx(10.0)
        count = 0
        for frame in source:
            assert frame.index == count
            assert frame.image.shape == (360, 480, 3) and frame.image.dtype == np.uint8
            count += 1
        assert count == len(source)
        assert not source.ended_early and source.skipped == 0

    def test_announced_count_too_high_ends_cleanly(self):
        # This file's container announces more frames than it holds.
        path = VIDEOS / "car_traffic_small.mp4"
        real = decoded_count(path)
        source = VideoFile(path)
        assert source.length > real
        with pytest.warns(UserWarning, match=f"ended after {real} of the {source.length} frames"):
            frames = sum(1 for _ in source)
        assert frames == real and source.ended_early

    def test_truncated_file_ends_cleanly(self, tmp_path):
        data = (VIDEOS / "vtest.avi").read_bytes()
        path = tmp_path / "truncated.avi"
        path.write_bytes(data[: len(data) // 4])
        source = VideoFile(path)
        with pytest.warns(UserWarning, match="ended after"):
            frames = list(source)
        assert 0 < len(frames) < source.length
        assert source.ended_early
        assert [f.index for f in frames] == list(range(len(frames)))

    def test_same_pixels_as_opencv(self):
        capture = cv2.VideoCapture(str(VIDEOS / "vtest.avi"))
        expected = [capture.read()[1] for _ in range(3)]
        capture.release()
        got = [f.image for f in itertools.islice(VideoFile(VIDEOS / "vtest.avi"), 3)]
        for a, b in zip(expected, got):
            np.testing.assert_array_equal(a, b)

    def test_iterates_again_from_the_start(self):
        source = VideoFile(VIDEOS / "vtest.avi")
        first = [f.image for f in itertools.islice(source, 2)]
        again = [f.image for f in itertools.islice(source, 2)]
        assert all(np.array_equal(a, b) for a, b in zip(first, again))


class TestVideoFileErrors:
    def test_missing_file(self, tmp_path):
        with pytest.raises(VideoError, match="does not exist"):
            VideoFile(tmp_path / "absent.mp4")

    def test_not_a_video_gives_a_hint(self, tmp_path):
        path = tmp_path / "fake.mp4"
        path.write_text("this is text, not a video")
        with pytest.raises(VideoError, match=r"cannot open video .*fake\.mp4.*codec"):
            VideoFile(path)

    def test_corrupt_frame_mid_video_is_skipped_and_counted(self, tmp_path):
        path = tmp_path / "motion.avi"
        with VideoWriter(path, fps=10, fourcc="MJPG") as writer:
            for frame in gradient_frames(20):
                writer.write(frame)
        data = bytearray(path.read_bytes())
        starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG start markers
        assert len(starts) == 20
        data[starts[10] : starts[11] - 16] = bytes(starts[11] - 16 - starts[10])  # wipe frame 10's JPEG
        path.write_bytes(bytes(data))
        source = VideoFile(path)
        with pytest.warns(UserWarning, match="skipped 1 unreadable frame"):
            frames = list(source)
        assert [f.index for f in frames] == [i for i in range(20) if i != 10]
        assert source.skipped == 1 and not source.ended_early


class TestOtherSources:
    def test_array_frames(self):
        frames = gradient_frames(4)
        source = ArrayFrames(frames, fps=5)
        assert len(source) == 4 and source.fps == 5
        got = list(source)
        assert [f.index for f in got] == [0, 1, 2, 3]
        assert all(np.array_equal(a, f.image) for a, f in zip(frames, got))

    def test_generator_has_no_length(self):
        source = ArrayFrames(f for f in gradient_frames(3))
        assert source.length is None
        with pytest.raises(TypeError, match="no known length"):
            len(source)
        assert sum(1 for _ in source) == 3

    def test_bad_array_is_an_error(self):
        with pytest.raises(VideoError, match=r"frame 1: expected a uint8 H×W×3 BGR image, got float32"):
            list(ArrayFrames([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)]))

    def test_missing_camera(self):
        with pytest.raises(VideoError, match="cannot open camera 99"):
            Camera(99)


class TestOpenSource:
    @needs_data
    def test_dispatch_on_real_data(self):
        assert isinstance(open_source(str(VIDEOS / "vtest.avi")), VideoFile)
        assert isinstance(open_source(DATA / "imagenet_vid_val_00007010"), FrameFolder)

    def test_dispatch(self, tmp_path):
        assert isinstance(open_source([np.zeros((4, 4, 3), np.uint8)]), ArrayFrames)
        assert isinstance(open_source(np.zeros((2, 4, 4, 3), np.uint8)), ArrayFrames)
        with pytest.raises(VideoError, match="camera 98"):
            open_source("98")
        with pytest.raises(VideoError, match="camera 97"):
            open_source(97)
        with pytest.raises(VideoError, match="does not exist"):
            open_source(tmp_path / "nothing.mp4")


class TestVideoWriter:
    def test_round_trip(self, tmp_path):
        path = tmp_path / "out.mp4"
        frames = gradient_frames(12)
        assert write_video(path, frames, fps=10) == 12
        source = VideoFile(path)
        assert source.length == 12 and source.fps == pytest.approx(10)
        back = [f.image for f in source]
        assert len(back) == 12
        # mp4v is lossy: close, not equal; and far closer to the frame written than to any other.
        errors = [float(np.abs(a.astype(int) - b).mean()) for a, b in zip(frames, back)]
        assert max(errors) < 6, errors
        assert float(np.abs(frames[0].astype(int) - back[6]).mean()) > 3 * max(errors)

    def test_colour_order_is_bgr(self, tmp_path):
        red = np.zeros((32, 32, 3), np.uint8)
        red[..., 2] = 255  # BGR: red is the last channel
        path = tmp_path / "red.mp4"
        write_video(path, [red] * 3, fps=5)
        frame = next(iter(VideoFile(path))).image
        assert frame[..., 2].mean() > 200 and frame[..., 0].mean() < 50 and frame[..., 1].mean() < 50

    def test_failure_leaves_target_untouched_and_no_temp(self, tmp_path):
        path = tmp_path / "out.mp4"
        path.write_bytes(b"previous contents")
        with pytest.raises(RuntimeError, match="interrupted"):
            with VideoWriter(path, fps=10) as writer:
                writer.write(gradient_frames(1)[0])
                assert path.read_bytes() == b"previous contents"  # nothing in place until close
                raise RuntimeError("interrupted")
        assert path.read_bytes() == b"previous contents"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]

    def test_success_leaves_no_temp(self, tmp_path):
        write_video(tmp_path / "out.mp4", gradient_frames(2), fps=10)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]

    def test_no_frames_is_an_error(self, tmp_path):
        with pytest.raises(VideoError, match="no frames"):
            write_video(tmp_path / "empty.mp4", [], fps=10)
        assert list(tmp_path.iterdir()) == []

    def test_frame_size_change_is_an_error(self, tmp_path):
        with pytest.raises(VideoError, match="is 32x32 .* but the video is 64x96"):
            write_video(tmp_path / "bad.mp4", [gradient_frames(1)[0], np.zeros((32, 32, 3), np.uint8)], fps=10)
        assert list(tmp_path.iterdir()) == []

    def test_writer_that_cannot_open(self, tmp_path):
        with pytest.raises(VideoError, match="cannot write video"):
            write_video(tmp_path / "out.unknowncontainer", gradient_frames(1), fps=10)
        assert list(tmp_path.iterdir()) == []

    def test_missing_folder(self, tmp_path):
        with pytest.raises(VideoError, match="does not exist"):
            VideoWriter(tmp_path / "absent" / "out.mp4", fps=10)

    def test_bad_fps(self, tmp_path):
        with pytest.raises(ValueError, match="fps must be > 0, got 0"):
            VideoWriter(tmp_path / "out.mp4", fps=0)


def test_sources_do_not_import_torch():
    code = "import sys, dff.sources; sys.exit(1 if 'torch' in sys.modules else 0)"
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True)
    assert result.returncode == 0, f"dff.sources imported torch: {result.stderr}"

