"""Frame sizes the networks accept. Torch-free: the runtime checks sizes with it too.

Both networks work on the feature grid of stride 16 (Section 4): N_feat's output stride is 16
and F's flow is resized to that grid (a detector with ``output_stride`` 8 has a grid twice as
fine). Frames whose sides are multiples of 16 map exactly onto either grid; other sizes are
resized to the nearest multiple by the caller (``round_to_stride``).
"""

from __future__ import annotations

from dff.errors import InputSizeError

FEATURE_STRIDE = 16
#: Smallest side: 4 feature cells. Smaller maps leave the dilation-6 head seeing mostly padding.
MIN_SIDE = 64


def check_frame_size(height: int, width: int) -> None:
    """Raise InputSizeError unless both sides are multiples of 16 and at least 64."""
    if not (height % FEATURE_STRIDE == 0 and width % FEATURE_STRIDE == 0 and min(height, width) >= MIN_SIDE):
        raise InputSizeError(
            f"frame size {height}x{width} (HxW) is not allowed: both sides must be multiples of {FEATURE_STRIDE} "
            f"and at least {MIN_SIDE}; resize to {round_to_stride(height, width)[0]}x{round_to_stride(height, width)[1]}"
        )


def round_to_stride(height: int, width: int) -> tuple[int, int]:
    """The nearest allowed size (H, W): each side rounded to a multiple of 16, at least 64."""
    return tuple(max(MIN_SIDE, int(round(side / FEATURE_STRIDE)) * FEATURE_STRIDE) for side in (height, width))  # type: ignore[return-value]


def feature_size(height: int, width: int) -> tuple[int, int]:
    """The feature grid (H/16, W/16) of an allowed frame size."""
    check_frame_size(height, width)
    return height // FEATURE_STRIDE, width // FEATURE_STRIDE
