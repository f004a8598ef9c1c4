"""Middlebury ``.flo`` optical flow files.

Layout (little-endian): float32 magic 202021.25, int32 width, int32 height, then height×width×2
float32, u (horizontal) and v (vertical) displacement in pixels, row by row. Values of 1e9 or more
mean "unknown". Middlebury's ``flowNN.flo`` is forward flow, frame NN → frame NN+1; in the
paper's backward convention that is M_{i→k} with i = frame NN (current) and k = frame NN+1 (key).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dff.data import DatasetError

FLO_MAGIC = np.float32(202021.25)
UNKNOWN = 1e9
_HEADER = 12


def read_flo(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(flow float32 H×W×2, valid bool H×W); unknown vectors are 0 in ``flow`` and False in ``valid``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read flow file {path}: {error.strerror}") from None
    if len(data) < _HEADER:
        raise DatasetError(f"flow file {path} has {len(data)} bytes, fewer than the {_HEADER}-byte .flo header")
    magic = np.frombuffer(data, "<f4", 1)[0]
    if magic != FLO_MAGIC:
        raise DatasetError(f"{path} is not a .flo file: magic number {magic}, expected {FLO_MAGIC}")
    width, height = (int(v) for v in np.frombuffer(data, "<i4", 2, offset=4))
    if not (width > 0 and height > 0):
        raise DatasetError(f"flow file {path} declares a {width}x{height} (WxH) field; both must be positive")
    expected = _HEADER + width * height * 2 * 4
    if len(data) != expected:
        raise DatasetError(
            f"flow file {path} has {len(data)} bytes; a {width}x{height} (WxH) field needs {expected}: truncated or corrupt"
        )
    flow = np.frombuffer(data, "<f4", offset=_HEADER).reshape(height, width, 2).astype(np.float32)
    valid = np.isfinite(flow).all(axis=2) & (np.abs(flow) < UNKNOWN).all(axis=2)
    flow[~valid] = 0
    return flow, valid
