"""The optimisation profile: the frame sizes an engine accepts (min and max) and is tuned for (opt).

TensorRT needs, for every input with a dynamic dimension, the smallest, the typical and the largest
shape it will see (``IOptimizationProfile.set_shape(input, min, opt, max)``). All our inputs derive
from one frame size (H, W) through the manifest's symbolic dimensions ("N", "H", "W", "H/16", "W/16"),
so one profile of frame sizes gives every engine its input shapes. The batch dimension "N" ranges over
1 .. ``max_batch`` (opt: ``max_batch``): 1 serves one stream; the multi-stream runtime
(:mod:`dff.runtime.streams`) batches up to ``max_batch`` streams' frames per call.

The export allows a range of sizes (:class:`~dff.manifest.SizeRange`); a profile must lie inside it.
By default min and max are the export's bounds and opt is max.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dff.errors import ConfigError, ExportError
from dff.manifest import Dim, ModelFile, SizeRange

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")
_DIM = re.compile(r"^(H|W)(?:/(\d+))?$")


@dataclass(frozen=True)
class FrameSize:
    """A frame size in pixels, written HxW."""

    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass(frozen=True)
class SizeProfile:
    """Smallest, optimal and largest frame size of one optimisation profile, and its largest batch."""

    min: FrameSize
    opt: FrameSize
    max: FrameSize
    #: Frames per call, 1 .. max_batch (opt: max_batch); ``dff build --max-batch``.
    max_batch: int = 1

    def size_range(self, multiple: int) -> SizeRange:
        """The frame sizes engines built with this profile accept."""
        return SizeRange(
            min_height=self.min.height,
            min_width=self.min.width,
            max_height=self.max.height,
            max_width=self.max.width,
            multiple=multiple,
        )


def parse_frame_size(text: str, option: str) -> FrameSize:
    """``"480x640"`` (height x width) as a FrameSize; ConfigError naming ``option`` otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise ConfigError(f"{option} expects HEIGHTxWIDTH in pixels, such as 480x640; got {text!r}")
    return FrameSize(height=int(match[1]), width=int(match[2]))


def make_profile(
    sizes: SizeRange,
    *,
    min: FrameSize | None = None,  # noqa: A002 - the names TensorRT gives the three shapes
    opt: FrameSize | None = None,
    max: FrameSize | None = None,  # noqa: A002
    max_batch: int = 1,
) -> SizeProfile:
    """A profile within ``sizes``: missing bounds are the export's, a missing opt is max; checked."""
    low = min or FrameSize(height=sizes.min_height, width=sizes.min_width)
    high = max or FrameSize(height=sizes.max_height, width=sizes.max_width)
    profile = SizeProfile(min=low, opt=opt or high, max=high, max_batch=max_batch)
    check_profile(profile, sizes)
    return profile


def check_profile(profile: SizeProfile, sizes: SizeRange) -> None:
    """ConfigError unless every size of ``profile`` is allowed by ``sizes``, min <= opt <= max per side, max_batch >= 1."""
    if profile.max_batch < 1:
        raise ConfigError(f"--max-batch must be 1 or more (frames per engine call); got {profile.max_batch}")
    allowed = (
        f"heights {sizes.min_height}..{sizes.max_height} and widths {sizes.min_width}..{sizes.max_width}, "
        f"multiples of {sizes.multiple}"
    )
    # max before opt: an opt left to default is max, and the message should name the option given.
    for label, size in (("min", profile.min), ("max", profile.max), ("opt", profile.opt)):
        if not (
            sizes.min_height <= size.height <= sizes.max_height
            and sizes.min_width <= size.width <= sizes.max_width
            and size.height % sizes.multiple == 0
            and size.width % sizes.multiple == 0
        ):
            raise ConfigError(
                f"--{label}-size {size} is not a frame size this export allows ({allowed}); "
                f"choose one in that range, or export again with other --height/--width"
            )
    if not (
        profile.min.height <= profile.opt.height <= profile.max.height
        and profile.min.width <= profile.opt.width <= profile.max.width
    ):
        raise ConfigError(
            f"the profile needs min <= opt <= max in both height and width; "
            f"got --min-size {profile.min}, --opt-size {profile.opt}, --max-size {profile.max}"
        )


def resolve_shape(shape: tuple[Dim, ...], size: FrameSize, where: str, batch: int = 1) -> tuple[int, ...]:
    """A manifest shape with its symbols ("N", "H", "W", "H/16", ...) replaced for ``batch`` frames of ``size``."""
    return tuple(_resolve_dim(dim, size, where, batch) for dim in shape)


def _resolve_dim(dim: Dim, size: FrameSize, where: str, batch: int) -> int:
    if isinstance(dim, int):
        return dim
    if dim == "N":
        return batch
    match = _DIM.match(dim)
    if not match:
        raise ExportError(f"{where}: dimension {dim!r} is not one of N, H, W, H/k, W/k; run `dff export` again")
    side = size.height if match[1] == "H" else size.width
    divisor = int(match[2] or 1)
    if side % divisor:
        raise ConfigError(f"{where}: frame size {size} does not divide into dimension {dim!r}")
    return side // divisor


def input_shapes(
    model: ModelFile, profile: SizeProfile
) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
    """Each input of ``model``: its (min, opt, max) shape under ``profile``, as ``set_shape`` takes them."""
    bounds = ((profile.min, 1), (profile.opt, profile.max_batch), (profile.max, profile.max_batch))
    return {
        spec.name: tuple(  # type: ignore[misc]
            resolve_shape(spec.shape, size, f"{model.file} input {spec.name!r}", batch) for size, batch in bounds
        )
        for spec in model.inputs
    }
