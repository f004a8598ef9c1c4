"""What ``dff export`` is asked to write: opset, dtype and the frame sizes the graphs accept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dff.errors import ConfigError, InputSizeError
from dff.export.warp_graph import check_opset
from dff.frames import FEATURE_STRIDE, MIN_SIDE, check_frame_size
from dff.manifest import SizeRange

DEFAULT_OPSET = 17
#: Default bounds of dynamic exports, per side: 64 (4 feature cells) to 2048 (Cityscapes' width).
DEFAULT_MIN_SIZE = (MIN_SIDE, MIN_SIDE)
DEFAULT_MAX_SIZE = (2048, 2048)
DTYPES = ("float32", "float16")
#: Rows of a detection export's padded outputs unless asked otherwise (the paper keeps 300 proposals per frame).
DEFAULT_MAX_DETECTIONS = 100


@dataclass(frozen=True, kw_only=True)
class ExportOptions:
    """An export's settings; invalid ones raise ConfigError or InputSizeError on construction.

    ``height`` and ``width`` together fix the frame size (static spatial dimensions); otherwise the
    graphs take any size between ``min_size`` and ``max_size`` (H, W), multiples of 16, and those
    bounds go to the manifest (and on to TensorRT's optimisation profile). Batch stays dynamic.
    ``flow_statistics``: ``flow.onnx`` also outputs ``flow_stats`` (N, 4), the signals of adaptive key
    frames (:mod:`dff.ops.flow_statistics`); False writes the graph exports had before it.
    ``fused_graphs``: also write ``key_path.onnx`` and ``propagate.onnx``, each path of Algorithm 1 as one graph
    (:mod:`dff.export.fused_graphs`), which ONNX Runtime and OpenVINO then run in one call a frame.
    """

    opset: int = DEFAULT_OPSET
    dtype: Literal["float32", "float16"] = "float32"
    height: int | None = None
    width: int | None = None
    min_size: tuple[int, int] | None = None
    max_size: tuple[int, int] | None = None
    flow_statistics: bool = True
    fused_graphs: bool = True
    #: Detection exports: rows of the padded outputs, the most boxes one frame reports (ignored for segmentation).
    max_detections: int = DEFAULT_MAX_DETECTIONS

    def __post_init__(self) -> None:
        check_opset(self.opset)
        if not (self.max_detections >= 1):
            raise ConfigError(f"--max-detections must be >= 1, got {self.max_detections}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {list(DTYPES)}, got {self.dtype!r}")
        if (self.height is None) != (self.width is None):
            raise ConfigError(
                f"give both --height and --width for a fixed frame size (or neither for dynamic sizes), "
                f"got height={self.height}, width={self.width}"
            )
        if self.fixed and not (self.min_size is None and self.max_size is None):
            raise ConfigError(
                "--height/--width fix the frame size, --min-size/--max-size bound dynamic sizes: give one or the other"
            )
        self.sizes()

    @property
    def fixed(self) -> bool:
        return self.height is not None

    def sizes(self) -> SizeRange:
        """The allowed frame sizes, checked against what the networks take (dff.frames)."""
        if self.height is not None and self.width is not None:
            check_frame_size(self.height, self.width)
            return SizeRange(min_height=self.height, min_width=self.width, max_height=self.height, max_width=self.width)
        low, high = self.min_size or DEFAULT_MIN_SIZE, self.max_size or DEFAULT_MAX_SIZE
        for name, size in (("min_size", low), ("max_size", high)):
            try:
                check_frame_size(*size)
            except InputSizeError as error:
                raise InputSizeError(f"{name}: {error}") from None
        if not (low[0] <= high[0] and low[1] <= high[1]):
            raise InputSizeError(
                f"min_size {low[0]}x{low[1]} exceeds max_size {high[0]}x{high[1]} (HxW) on at least one side"
            )
        return SizeRange(
            min_height=low[0], min_width=low[1], max_height=high[0], max_width=high[1], multiple=FEATURE_STRIDE
        )
