"""What checking `dff run`'s outputs costs (issue 11 item 2), measured in one run on real frames.

- Overlay video: writing N frames of vtest.avi with mp4v, against decoding the finished file back
  (``count_frames``, the check that it decodes before it may replace an earlier one).
- Label PNGs: the staged writer (encode, write, fsync, moved into place at the end) against a plain
  ``cv2.imwrite`` per frame (no fsync, no staging, failures unreported).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_outputs.py [--frames 300] [--size 360x480] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from dff.runtime.outputs import LabelFolder
from dff.sources import VideoWriter, count_frames

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "vtest.avi"


def real_frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(VTEST))
    frames = []
    while len(frames) < count:
        ok, image = capture.read()
        if not ok:
            capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        frames.append(cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", default="360x480", help="HxW")
    parser.add_argument("--out", default=None, help="folder on the disk to measure (default: a temporary folder)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    frames = real_frames(args.frames, size)  # type: ignore[arg-type]
    labels = [(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) // 24).astype(np.uint8) for f in frames]  # 11 classes, real structure
    with tempfile.TemporaryDirectory(dir=args.out) as folder:
        root = Path(folder)
        start = time.perf_counter()
        with VideoWriter(root / "o.mp4", fps=10) as writer:
            for image in frames:
                writer.write(image)
        total = time.perf_counter() - start  # writing, the check and the rename
        start = time.perf_counter()
        decoded = count_frames(root / "o.mp4")  # the check again, alone
        checked = time.perf_counter() - start
        written = total - checked
        assert decoded == len(frames), (decoded, len(frames))

        start = time.perf_counter()
        for index, image in enumerate(labels):
            cv2.imwrite(str(root / f"plain{index:06d}.png"), image)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        folder_out = LabelFolder(root / "labels")
        for index, image in enumerate(labels):
            folder_out.write(index, image)
        folder_out.commit()
        staged = time.perf_counter() - start

    n = len(frames)
    print(f"{n} real frames of {size[0]}x{size[1]} (vtest.avi), folder {args.out or tempfile.gettempdir()}")
    print(f"overlay video: write {1e3 * written / n:.2f} ms/frame, decode check {1e3 * checked / n:.2f} ms/frame, "
          f"check / write = {checked / written:.2f}")
    print(f"label PNGs: plain imwrite {1e3 * plain / n:.2f} ms/frame, staged + fsync + commit {1e3 * staged / n:.2f} ms/frame, "
          f"ratio {staged / plain:.2f}")


if __name__ == "__main__":
    main()
