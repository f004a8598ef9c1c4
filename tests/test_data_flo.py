"""Middlebury .flo reader on the real Middlebury ground truth, and on broken files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dff.data import DatasetError
from dff.data.flo import FLO_MAGIC, read_flo

DATA = Path(__file__).parents[1].parent / "shared" / "data"
MIDDLEBURY = DATA / "middlebury"


def flo_bytes(flow: np.ndarray, *, magic: float = float(FLO_MAGIC), size: tuple[int, int] | None = None) -> bytes:
    height, width = flow.shape[:2] if size is None else size
    header = np.array([magic], "<f4").tobytes() + np.array([width, height], "<i4").tobytes()
    return header + flow.astype("<f4").tobytes()


@pytest.mark.skipif(not MIDDLEBURY.is_dir(), reason=f"Middlebury data not found at {MIDDLEBURY}")
@pytest.mark.parametrize("sequence", ["RubberWhale", "Dimetrodon", "Hydrangea", "Venus"])
def test_ground_truth_warps_frame11_onto_frame10(sequence):
    folder = MIDDLEBURY / sequence
    flow, valid = read_flo(folder / "flow10.flo")
    frame10, frame11 = (cv2.imread(str(folder / f"frame{n}.png")) for n in (10, 11))
    assert flow.shape == frame10.shape[:2] + (2,) and flow.dtype == np.float32
    assert valid.mean() > 0.9 and np.abs(flow[valid]).max() < 100 and np.all(flow[~valid] == 0)
    # flow10 is forward (frame10 → frame11): in the backward convention, frame 10 is current, 11 key.
    height, width = valid.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    warped = cv2.remap(frame11, x + flow[..., 0], y + flow[..., 1], cv2.INTER_LINEAR).astype(float)
    error = np.abs(warped - frame10)[valid].mean()
    unwarped = np.abs(frame11.astype(float) - frame10)[valid].mean()
    assert error < 0.5 * unwarped, (error, unwarped)


def test_unknown_vectors_are_masked(tmp_path):
    flow = np.arange(24, dtype=np.float32).reshape(3, 4, 2)
    flow[1, 2] = [1e10, 0.5]
    flow[2, 0] = [0.0, 1e9]
    path = tmp_path / "small.flo"
    path.write_bytes(flo_bytes(flow))
    got, valid = read_flo(path)
    expected_valid = np.ones((3, 4), bool)
    expected_valid[1, 2] = expected_valid[2, 0] = False
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(got[valid], flow[valid])
    assert np.all(got[~valid] == 0)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00" * 8, "fewer than the 12-byte"),
        (flo_bytes(np.zeros((2, 2, 2)), magic=1.5), "not a .flo file: magic number 1.5"),
        (flo_bytes(np.zeros((2, 2, 2)))[:-4], "needs 44: truncated"),
        (flo_bytes(np.zeros((0, 2, 2)), size=(0, 2)), "both must be positive"),
    ],
)
def test_broken_files(tmp_path, data, message):
    path = tmp_path / "broken.flo"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match=message):
        read_flo(path)


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="cannot read flow file"):
        read_flo(tmp_path / "absent.flo")
