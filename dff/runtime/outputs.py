"""What a run writes: an overlay video, per-frame label PNGs and a JSON-lines log of per-frame timings.

Nothing is in place before the run completes: the video and the log go to temporary files, the PNGs
to a hidden staging folder inside the labels folder. :meth:`RunOutputs.close` first finishes and
checks them all (the video must decode), then moves them into place; a failure or an interrupt
removes them and leaves every earlier output as it was. A failed write is an OutputError naming the
file and the cause.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from types import TracebackType
from typing import TextIO

import cv2
import numpy as np

from dff.atomic import PendingFile, make_staging_dir, write_bytes_atomic, write_failure
from dff.errors import OutputError, VideoError
from dff.runtime.detection_overlay import draw_detections
from dff.runtime.overlay import overlay, palette
from dff.runtime.runtime import FrameResult
from dff.sources import Frame, VideoWriter

#: In a labels folder: the names of the PNGs dff wrote there last, so that a later run removes only those.
LABELS_RECORD = ".dff-labels.json"
LABEL_NAME = re.compile(r"\d{6,}\.png")


def encode_png(image: np.ndarray, path: Path) -> bytes:
    """``image`` as PNG bytes (``path`` names it in the error)."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise VideoError(f"cannot encode {path} as PNG (image of shape {image.shape}, dtype {image.dtype})")
    return encoded.tobytes()


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


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


class LabelFolder:
    """One ``{index:06d}.png`` per frame in ``path``, staged until :meth:`commit`, so that ``path`` then holds this run's labels.

    dff records the PNGs it wrote in ``path/.dff-labels.json``. After a complete run, recorded PNGs
    that this run did not write (an earlier, longer run's) are removed (``removed``). A folder that
    holds PNGs named like ours that dff has no record of writing (a user's, or from before the
    record existed) is refused before the first frame: this run could overwrite them.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise write_failure(self.path, error, "labels folder") from None
        self.earlier = self._recorded()
        unrecorded = sorted(e.name for e in os.scandir(self.path) if LABEL_NAME.fullmatch(e.name) and e.name not in self.earlier)
        if unrecorded:
            raise OutputError(
                f"labels folder {self.path} holds {len(unrecorded)} PNG(s) named like dff's labels ({unrecorded[0]} to "
                f"{unrecorded[-1]}) that dff has no record of writing, and this run could overwrite them: "
                "move them away, or choose an empty folder"
            )
        self._staging: Path | None = make_staging_dir(self.path, "labels")
        self.names: list[str] = []
        self.removed: list[str] = []

    def write(self, index: int, labels: np.ndarray) -> None:
        name = f"{index:06d}.png"
        data = encode_png(labels, self.path / name)
        try:
            (self._staging / name).write_bytes(data)  # type: ignore[operator]
        except OSError as error:
            raise write_failure(self.path / name, error, "label PNG") from None
        self.names.append(name)

    def commit(self) -> None:
        """Move the PNGs into place, then remove the ones an earlier run wrote and this one did not."""
        written = set(self.names)
        try:
            # On the disk before any is moved into place; once at the end, as fsyncs in a row cost a quarter of
            # one per frame (benchmarks/bench_outputs.py).
            for name in self.names:
                _fsync(self._staging / name)  # type: ignore[operator]
            # The record lists every file of ours at every moment, so that a crash part-way leaves nothing unaccounted.
            self._record(sorted(self.earlier | written))
            for name in self.names:
                os.replace(self._staging / name, self.path / name)  # type: ignore[operator]
            self.removed = sorted(self.earlier - written)
            for name in self.removed:
                (self.path / name).unlink(missing_ok=True)
            self._record(self.names)
        except OSError as error:
            raise write_failure(self.path, error, "labels folder") from None
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop the staged PNGs; ``path`` is left as it was."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None

    def lines(self) -> list[str]:
        """The PNGs of an earlier run that were removed, in one line (none if none)."""
        if not self.removed:
            return []
        return [
            f"removed {len(self.removed)} label PNG(s) of an earlier run from {self.path} "
            f"({self.removed[0]} to {self.removed[-1]}): this run has no such frames"
        ]

    def _recorded(self) -> set[str]:
        try:
            record = json.loads((self.path / LABELS_RECORD).read_text())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as error:
            raise OutputError(
                f"cannot read {self.path / LABELS_RECORD} ({error}): it records which PNGs dff wrote there; "
                "remove it with the labels it listed, or choose another folder"
            ) from None
        files = record.get("files") if isinstance(record, dict) else None
        if not (isinstance(files, list) and all(isinstance(n, str) and LABEL_NAME.fullmatch(n) for n in files)):
            raise OutputError(
                f"{self.path / LABELS_RECORD} is not a dff labels record: remove it with the labels it listed, "
                "or choose another folder"
            )
        return set(files)

    def _record(self, names: list[str]) -> None:
        write_bytes_atomic(self.path / LABELS_RECORD, (json.dumps({"written_by": "dff run", "files": names}) + "\n").encode())


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
        detections_path: str | Path | None = None,
        class_names: tuple[str, ...] = (),
    ) -> None:
        self.class_names = class_names
        self._detections_file: PendingFile | None = None
        self._detections: TextIO | None = None
        self.colours = palette(num_classes)
        self.alpha = alpha
        self.video = None if overlay_path is None else VideoWriter(overlay_path, fps=fps)
        self.log_path = None if log_path is None else Path(log_path)
        if self.log_path is not None and not self.log_path.parent.is_dir():
            raise VideoError(f"cannot write {self.log_path}: folder {self.log_path.parent} does not exist")
        self.labels: LabelFolder | None = None
        self._log: TextIO | None = None
        self._log_file: PendingFile | None = None
        self._video_size: tuple[int, int] | None = None
        try:
            self.labels = None if labels_dir is None else LabelFolder(labels_dir)
            if self.log_path is not None:
                self._log_file = PendingFile(self.log_path)
                self._log = open(self._log_file.temp, "w")
            if detections_path is not None:
                # One JSON line per frame of a detection export, staged beside its target until the run completes.
                self._detections_file = PendingFile(detections_path)
                self._detections = open(self._detections_file.temp, "w")
        except BaseException:
            self.abort()
            raise

    def write(self, frame: Frame, result: FrameResult, baseline: FrameResult | None = None) -> None:
        if self._detections is not None and result.detections is not None:
            record = {"frame": frame.index, "key": result.key, **result.detections.to_json()}
            try:
                self._detections.write(json.dumps(record) + "\n")
            except OSError as error:
                raise write_failure(self._detections_file.path, error, "detections file") from None  # type: ignore[union-attr]
        if self.video is not None:
            image = (
                draw_detections(frame.image, result.detections, self.class_names, self.colours)
                if result.detections is not None
                else overlay(frame.image, result.labels, self.colours, alpha=self.alpha)
            )
            # A video has one size: frames of another size (a stream that changed size) are fitted to the first.
            self._video_size = self._video_size or image.shape[:2]
            if image.shape[:2] != self._video_size:
                image = cv2.resize(image, (self._video_size[1], self._video_size[0]), interpolation=cv2.INTER_LINEAR)
            self.video.write(image)
        if self.labels is not None:
            self.labels.write(frame.index, result.labels)
        if self._log is not None:
            try:
                self._log.write(json.dumps(timing_record(frame, result, baseline)) + "\n")
            except OSError as error:
                raise write_failure(self.log_path, error, "timing log") from None  # type: ignore[arg-type]

    def close(self) -> None:
        """Finish and check every output (the video must decode) before any moves into place; on failure drop them all."""
        try:
            if self.video is not None:
                self.video.finish()
            if self._log is not None:
                try:
                    self._log.close()
                except OSError as error:
                    raise write_failure(self.log_path, error, "timing log") from None  # type: ignore[arg-type]
                self._log = None
            if self.video is not None:
                self.video.close()
            if self._log_file is not None:
                self._log_file.commit()
                self._log_file = None
            if self.labels is not None:
                self.labels.commit()
            if self._detections_file is not None:
                try:
                    self._detections.close()  # type: ignore[union-attr]
                except OSError as error:
                    raise write_failure(self._detections_file.path, error, "detections file") from None
                self._detections = None
                self._detections_file.commit()
                self._detections_file = None
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the unfinished outputs; their targets are left as they were."""
        if self.video is not None:
            self.video.abort()
        self._log, self._log_file = _drop(self._log, self._log_file)
        if self.labels is not None:
            self.labels.discard()
        self._detections, self._detections_file = _drop(self._detections, self._detections_file)

    def lines(self) -> list[str]:
        """Notes on the finished outputs: padding of the video, label PNGs of an earlier run removed."""
        out = []
        if self.video is not None and self.video.padded:
            (height, width), (padded_h, padded_w) = self.video.size, self.video.encoded_size  # type: ignore[misc]
            out.append(
                f"overlay video is {padded_h}x{padded_w} (HxW): frames of {height}x{width} padded to the even size "
                f"the {self.video.fourcc} encoder needs (edge pixels repeated at the bottom/right)"
            )
        if self.labels is not None:
            out += self.labels.lines()
        return out

    def __enter__(self) -> RunOutputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _drop(stream: TextIO | None, pending: PendingFile | None) -> tuple[None, None]:
    """Close ``stream`` and discard its temporary file ``pending``: (None, None), for the attributes that held them."""
    if stream is not None:
        try:
            stream.close()
        except OSError:
            pass  # the file is being dropped; the error that led here is the one to report
    if pending is not None:
        pending.discard()
    return None, None
