"""What a run writes: an overlay video, per-frame label PNGs and a JSON-lines log of per-frame timings.

Every file is written atomically: the video and the log go to temporary files that replace their
targets on :meth:`RunOutputs.close`, each PNG to a temporary file renamed into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import TextIO

import cv2
import numpy as np

from dff.atomic import PendingFile, write_bytes_atomic
from dff.errors import VideoError
from dff.runtime.overlay import overlay, palette
from dff.runtime.runtime import FrameResult
from dff.sources import Frame, VideoWriter


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``image`` as a PNG at ``path`` atomically."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise VideoError(f"cannot encode {path} as PNG (image of shape {image.shape}, dtype {image.dtype})")
    write_bytes_atomic(path, encoded.tobytes())


def timing_record(frame: Frame, result: FrameResult, baseline: FrameResult | None = None) -> dict:
    """One line of the timing log: frame index, path taken, ms per stage (and the per-frame baseline's)."""
    record = {
        "frame": frame.index,
        "path": "key" if result.key else "non-key",
        "total_ms": round(result.timing.total_ms, 4),
        "ms": {stage: round(ms, 4) for stage, ms in result.timing.stages_ms.items()},
    }
    if baseline is not None:
        record["baseline_total_ms"] = round(baseline.timing.total_ms, 4)
        record["baseline_ms"] = {stage: round(ms, 4) for stage, ms in baseline.timing.stages_ms.items()}
    return record


class RunOutputs:
    """The outputs of one run, each optional: ``overlay_path`` (.mp4 at ``fps``), ``labels_dir`` (one
    ``{frame:06d}.png`` of class ids per frame, at the frame's size), ``log_path`` (JSON lines)."""

    def __init__(
        self,
        *,
        num_classes: int,
        overlay_path: str | Path | None = None,
        labels_dir: str | Path | None = None,
        log_path: str | Path | None = None,
        fps: float = 25.0,
        alpha: float = 0.5,
    ) -> None:
        self.colours = palette(num_classes)
        self.alpha = alpha
        self.video = None if overlay_path is None else VideoWriter(overlay_path, fps=fps)
        self.labels_dir = None if labels_dir is None else Path(labels_dir)
        if self.labels_dir is not None:
            self.labels_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = None if log_path is None else Path(log_path)
        self._log: TextIO | None = None
        self._log_file: PendingFile | None = None
        if self.log_path is not None:
            if not self.log_path.parent.is_dir():
                raise VideoError(f"cannot write {self.log_path}: folder {self.log_path.parent} does not exist")
            self._log_file = PendingFile(self.log_path)
            self._log = open(self._log_file.temp, "w")
        self._video_size: tuple[int, int] | None = None

    def write(self, frame: Frame, result: FrameResult, baseline: FrameResult | None = None) -> None:
        if self.video is not None:
            image = overlay(frame.image, result.labels, self.colours, alpha=self.alpha)
            # A video has one size: frames of another size (a stream that changed size) are fitted to the first.
            self._video_size = self._video_size or image.shape[:2]
            if image.shape[:2] != self._video_size:
                image = cv2.resize(image, (self._video_size[1], self._video_size[0]), interpolation=cv2.INTER_LINEAR)
            self.video.write(image)
        if self.labels_dir is not None:
            write_png(self.labels_dir / f"{frame.index:06d}.png", result.labels)
        if self._log is not None:
            self._log.write(json.dumps(timing_record(frame, result, baseline)) + "\n")

    def close(self) -> None:
        """Finish the video and the log and move them into place."""
        if self.video is not None:
            self.video.close()
        if self._log is not None:
            self._log.close()
            self._log_file.commit()  # type: ignore[union-attr]
            self._log = None

    def abort(self) -> None:
        """Drop the unfinished video and log; their targets are left as they were."""
        if self.video is not None:
            self.video.abort()
        if self._log is not None:
            self._log.close()
            self._log_file.discard()  # type: ignore[union-attr]
            self._log = None

    def __enter__(self) -> RunOutputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
