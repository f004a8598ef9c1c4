"""Frame sources and the video writer. Torch-free: the runtime reads frames through this module.

Every source iterates over :class:`Frame` (index, image): ``image`` is uint8 H×W×3 in **BGR**
order, as OpenCV decodes it; ``index`` is the frame's position in the source, so frames that
had to be skipped leave a gap. ``length`` is the announced number of frames (None where it is
unknown, as for a camera); ``skipped`` counts unreadable frames that were passed over.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import cv2
import numpy as np

from dff.atomic import PendingFile, describe_os_error, space_error
from dff.errors import OutputError, VideoError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
#: Failed reads in a row after which a capture is taken to have ended. A corrupt packet fails one
#: read and the next one decodes again; the end of a stream (or a truncated file) fails every read.
MAX_CONSECUTIVE_FAILURES = 5
#: Frames between checks that a video being written still grows (OpenCV's writer is silent on a full disk).
GROWTH_CHECK_FRAMES = 100
_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn at the first caller outside dff: a source is a generator, so its caller is whoever iterates it
    (run_source, a progress bar), never the line that should be shown."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


class EndedEarlyWarning(UserWarning):
    """A video ended before the frame count its container announced (``ended_early`` says it too)."""


class Frame(NamedTuple):
    index: int
    image: np.ndarray


def natural_key(name: str) -> tuple:
    """Sort key comparing the digit runs in ``name`` as numbers: 'frame2' < 'frame10'."""
    # The original DFF demo globbed frames unsorted and so processed them out of order.
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name) if part)


def check_image(image: object, where: str) -> np.ndarray:
    """``image`` itself if it is a non-empty uint8 H×W×3 array; VideoError naming ``where`` otherwise."""
    if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
        got = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise VideoError(f"{where}: expected a uint8 H×W×3 BGR image, got {got}")
    if not (image.shape[0] >= 1 and image.shape[1] >= 1):
        raise VideoError(f"{where}: the image is empty ({image.shape[0]}x{image.shape[1]} pixels); give a frame with pixels")
    return image


class FrameSource:
    """Base of the sources: ``length``, ``fps``, ``skipped``, and ``len()`` where the length is known."""

    length: int | None = None
    fps: float | None = None
    skipped: int = 0

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError(f"{type(self).__name__} has no known length")
        return self.length


class FrameFolder(FrameSource):
    """Images in a folder (jpg, jpeg, png, bmp), in natural order of their names."""

    def __init__(self, path: str | Path, *, fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_dir():
            raise VideoError(f"frame folder {self.path} does not exist or is not a folder")
        self.files = sorted(
            (p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
            key=lambda p: natural_key(p.name),
        )
        if not self.files:
            raise VideoError(f"frame folder {self.path} holds no images ({', '.join(IMAGE_EXTENSIONS)}, any case)")
        self.length = len(self.files)
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        self.skipped = 0
        for index, file in enumerate(self.files):
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                warn_caller(f"skipping unreadable image {file} (frame {index}; {self.skipped} skipped so far)")
                continue
            yield Frame(index, image)


class _Capture(FrameSource):
    """Reading loop shared by video files and cameras: skips corrupt frames, notices an early end."""

    ended_early = False
    #: The capture opened by the constructor to check the source, kept for the first iteration
    #: (reopening a camera can take a second).
    _opened: cv2.VideoCapture | None = None

    def _open(self) -> cv2.VideoCapture:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        self.skipped = 0
        self.ended_early = False
        capture = self._opened if self._opened is not None else self._open()
        self._opened = None
        index = 0  # frames consumed: decoded or skipped
        failures = 0
        try:
            while self.length is None or index + failures < self.length:
                ok, image = capture.read()
                if not ok:
                    failures += 1
                    if failures >= MAX_CONSECUTIVE_FAILURES:
                        break
                    continue
                if failures:
                    self.skipped += failures
                    warn_caller(f"{self}: skipped {failures} unreadable frame(s) before frame {index + failures}")
                    index += failures
                    failures = 0
                yield Frame(index, image)
                index += 1
        finally:
            capture.release()
        if self.length is not None and index < self.length:
            self.ended_early = True
            warn_caller(f"{self} ended after {index} of the {self.length} frames it announced", EndedEarlyWarning)


class VideoFile(_Capture):
    """A video file decoded by OpenCV. ``length`` is the container's frame count, which may be wrong:
    a file that ends sooner stops cleanly and sets ``ended_early``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"video file {self.path} does not exist")
        self._opened = self._open()
        count = int(self._opened.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = self._opened.get(cv2.CAP_PROP_FPS)
        self.length = count if count > 0 else None
        self.fps = fps if fps > 0 else None

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise VideoError(
                f"cannot open video {self.path}: not a video, or a codec this OpenCV build lacks "
                "(re-encode to H.264 .mp4, or pass a folder of frames)"
            )
        return capture

    def __str__(self) -> str:
        return f"video {self.path}"


class Camera(_Capture):
    """A live camera by OpenCV index; its length is unknown."""

    def __init__(self, index: int) -> None:
        self.index = index
        self._opened = self._open()
        fps = self._opened.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps > 0 else None

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(self.index)
        if not capture.isOpened():
            raise VideoError(f"cannot open camera {self.index}: no such device, or it is busy or not permitted")
        return capture

    def __str__(self) -> str:
        return f"camera {self.index}"


class ArrayFrames(FrameSource):
    """Frames already in memory: any iterable of uint8 H×W×3 BGR arrays (a list, a generator, an N×H×W×3 array)."""

    def __init__(self, frames: Iterable[np.ndarray], *, fps: float | None = None) -> None:
        self.frames = frames
        self.length = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
        self.fps = fps

    def __iter__(self) -> Iterator[Frame]:
        for index, image in enumerate(self.frames):
            yield Frame(index, check_image(image, f"frame {index}"))


def open_source(spec: str | os.PathLike | int | Iterable[np.ndarray]) -> FrameSource:
    """The source ``spec`` names: a video file, a folder of frames, a camera index (int or digits), or arrays."""
    if isinstance(spec, FrameSource):
        return spec
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        return Camera(int(spec))
    if isinstance(spec, str) and spec.isdigit():
        return Camera(int(spec))
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if path.is_dir():
            return FrameFolder(path)
        if path.is_file():
            return VideoFile(path)
        raise VideoError(f"{path} does not exist: give a video file, a folder of frames, or a camera index")
    if isinstance(spec, Iterable):
        return ArrayFrames(spec)
    raise VideoError(f"cannot read frames from a {type(spec).__name__}: give a path, a camera index or an iterable of arrays")


#: OpenCV's mp4v writer refuses frames with a side of 1 (isOpened() is False), whatever the container.


class VideoWriter:
    """Writes an .mp4 (fourcc mp4v) atomically: frames go to a temporary file beside ``path``,
    which replaces ``path`` on :meth:`close` once it decodes, and is removed if the ``with`` block raises.

    The frame size is taken from the first frame; every frame must be uint8 H×W×3 BGR. Odd sizes are
    padded by one row or column (edge pixels repeated, frames at the top left): OpenCV's FFmpeg encoders
    take even sizes only and would otherwise drop the last row and column. ``size`` is the frames' size,
    ``encoded_size`` the video's (both H, W).
    """

    def __init__(self, path: str | Path, *, fps: float, fourcc: str = "mp4v") -> None:
        if not (fps > 0):
            raise ValueError(f"fps must be > 0, got {fps}")
        if len(fourcc) != 4:
            raise ValueError(f"fourcc must be 4 characters, got {fourcc!r}")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise VideoError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        self.fps = fps
        self.fourcc = fourcc
        self.count = 0
        self._size: tuple[int, int] | None = None
        self.encoded_size: tuple[int, int] | None = None
        self._writer: cv2.VideoWriter | None = None
        self._pending: PendingFile | None = None
        self._checked_size = -1

    @property
    def size(self) -> tuple[int, int] | None:
        """The frames' size (H, W), from the first frame."""
        return self._size

    @property
    def padded(self) -> bool:
        """Whether frames were padded to an even size for the encoder."""
        return self._size != self.encoded_size

    def write(self, image: np.ndarray) -> None:
        check_image(image, f"frame {self.count} for {self.path}")
        size = image.shape[:2]
        if self._writer is None:
            self._pending = PendingFile(self.path)
            height, width = self.encoded_size = (size[0] + size[0] % 2, size[1] + size[1] % 2)
            self._writer = cv2.VideoWriter(
                str(self._pending.temp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height)
            )
            if not self._writer.isOpened():
                self.abort()
                raise VideoError(_open_failure(self.path, self.fourcc))
            self._size = size
        elif size != self._size:
            raise VideoError(
                f"frame {self.count} for {self.path} is {size[0]}x{size[1]} (HxW) but the video is "
                f"{self._size[0]}x{self._size[1]}"  # type: ignore[index]
            )
        if self.padded:
            bottom, right = self.encoded_size[0] - size[0], self.encoded_size[1] - size[1]  # type: ignore[index]
            image = cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_REPLICATE)
        self._writer.write(np.ascontiguousarray(image))
        self.count += 1
        if self.count % GROWTH_CHECK_FRAMES == 0:
            self._check_growing()

    def _check_growing(self) -> None:
        """OutputError now, not after the whole video, if the file stopped growing because the disk is full."""
        size = self._pending.temp.stat().st_size  # type: ignore[union-attr]
        error = space_error(self.path.parent, size=4096) if size == self._checked_size else None
        if error is not None:
            raise self._failure(describe_os_error(error))
        self._checked_size = size

    def finish(self) -> None:
        """Finish the temporary file and check that every frame decodes; :meth:`close` then moves it into place."""
        if self._pending is None:
            raise VideoError(f"no frames were written to {self.path}; nothing saved")
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            try:
                self._check_decodes()
            except BaseException:
                self.abort()
                raise

    def close(self) -> None:
        """Finish the file, check that every frame decodes, and move it into place."""
        self.finish()
        try:
            self._pending.commit()  # type: ignore[union-attr]
        finally:
            self.abort()

    def _check_decodes(self) -> None:
        """OutputError unless the finished temporary file decodes to the frames written.

        OpenCV's writer reports no write error: on a full disk it leaves a file without its index
        (no decodable frame) and returns normally, so the file itself is checked before it may
        replace an earlier one.
        """
        decoded = count_frames(self._pending.temp)  # type: ignore[union-attr]
        if decoded == self.count:
            return
        error = space_error(self.path.parent)
        raise self._failure(
            describe_os_error(error)
            if error is not None
            else f"only {decoded} of the {self.count} frames written decode back (the encoder failed)"
        )

    def _failure(self, cause: str) -> OutputError:
        kept = f"the earlier {self.path.name} was left as it was" if self.path.exists() else "nothing was saved"
        return OutputError(f"cannot write video {self.path}: {cause}; {kept}")

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if self._pending is not None:
            self._pending.discard()
            self._pending = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _open_failure(path: Path, fourcc: str) -> str:
    """Why OpenCV could not open a video writer, told apart from its one False: the path or the codec."""
    if path.is_dir():
        return f"cannot write video {path}: it is a directory; give a file path inside it (e.g. {path / 'overlay.mp4'})"
    return (
        f"cannot write video {path} with fourcc {fourcc!r}: this OpenCV build has no such encoder for that container "
        "(use .mp4 with mp4v)"
    )


def write_video(path: str | Path, frames: Iterable[np.ndarray], *, fps: float) -> int:
    """Write BGR frames to ``path`` atomically; returns the number written."""
    with VideoWriter(path, fps=fps) as writer:
        for image in frames:
            writer.write(image)
    return writer.count


def count_frames(path: str | Path) -> int:
    """The number of frames of the video ``path`` that decode (0 if it does not open)."""
    capture = cv2.VideoCapture(str(path))
    count = 0
    try:
        # grab() decodes without converting colours: the cheapest full check.
        while capture.isOpened() and capture.grab():
            count += 1
    finally:
        capture.release()
    return count
