"""The frames a benchmark times: read once into memory, at one size, so decoding and resizing are not timed."""

from __future__ import annotations

from contextlib import closing

import cv2
import numpy as np

from dff.errors import VideoError


def benchmark_frames(count: int, *, height: int, width: int, source: str | None = None) -> list[np.ndarray]:
    """``count`` uint8 H×W×3 BGR frames of ``height`` × ``width``: the first of ``source`` (a video file, a frame
    folder or a camera index), resized, or, without a source, the synthetic video (:mod:`dff.data.synthetic`)."""
    if not (count >= 1):
        raise ValueError(f"count must be >= 1, got {count}")
    if source is None:
        from dff.data.synthetic import SyntheticVideo, SyntheticVideoConfig

        video = SyntheticVideo(SyntheticVideoConfig(height=height, width=width, length=count))
        return [video.image(t) for t in range(count)]
    from dff.sources import open_source

    frames: list[np.ndarray] = []
    # closing() releases a video or camera when the loop stops before the source ends.
    with closing(iter(open_source(source))) as decoded:
        for frame in decoded:
            image = frame.image
            if image.shape[:2] != (height, width):
                image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
            frames.append(np.ascontiguousarray(image))
            if len(frames) == count:
                return frames
    raise VideoError(f"{source} gave {len(frames)} readable frame(s); the benchmark needs {count} (lower --frames)")
