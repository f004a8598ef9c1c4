"""Flow network F: FlowNet Simple and the paper's lighter variants (Section 4, "Flow Network").

F(I_k, I_i) estimates the flow field M and the scale field S that propagate the key frame's
features to the current frame (Eq. 3). All variants share one topology, FlowNetS of Dosovitskiy
et al. (ICCV 2015) as the original DFF code builds it:

* Input: the current and the key frame concatenated on channels (6 channels), halved by 2×2
  average pooling inside the network ("the input image is half-sized").
* Encoder: conv1 7×7/2, conv2 5×5/2, conv3 5×5/2, conv3_1, conv4 3×3/2, conv4_1, conv5 3×3/2,
  conv5_1, conv6 3×3/2, conv6_1 (the DFF code's FlowNet has conv6_1), each followed by
  LeakyReLU(0.1). Output stride 64 of the half frame.
* Refinement decoder, from conv6_1 up to conv2 (stride 4 of the half frame): at each level a
  4×4/2 deconvolution of the features (+ LeakyReLU), a learned 4×4/2 up-sampling of the coarser
  flow prediction, both cropped to the skip's size, concatenated with the skip, and a 3×3
  convolution predicting the flow at that level.
* Output (Section 4): the stride-4 prediction lies at 1/8 of the frame; a parameter-free,
  differentiable bilinear resize by one half brings M to the feature network's stride 16 (a
  feature network of output stride 8 takes the prediction as it is: ``feature_stride=8``). S is a
  1×1 convolution to ``feature_channels`` on the decoder's last feature map, initialised to
  weights 0 and bias 1 (Section 3), so S starts at exactly one.

Units of M: feature-map pixels, channel 0 horizontal and 1 vertical, location p of the current
frame reading the key features at p + M(p) (the convention of :mod:`dff.ops.warp`). Every flow
prediction head, at every level, predicts displacements in these units whatever its own grid, so
resizing a prediction never rescales its values (so an F trained for ``feature_stride=16`` predicts half the
values a stride-8 grid needs: train it for the stride it serves). The last head starts at zero, so an untrained F
propagates the key features unchanged. (A FlowNetS checkpoint trained on Flying Chairs instead
predicts half-frame pixels / 20; converting one means multiplying its last head by 20 / 8 = 2.5,
the factor the DFF code applies to its output.)

Variants:

* ``flownet_simple``: FlowNetS widths, encoder 64-128-256-512-512-1024, decoder 512-256-128-64.
* ``flownet_half``: half the kernels in every layer ("complexity 1/4"; the flow heads keep their
  2 channels and S keeps ``feature_channels``).
* ``flownet_inception``: the paper says only that it "adopts the Inception structure" at 1/8 of
  FlowNet's complexity, so this design is ours. conv1 and conv2 stay plain convolutions at 3/8
  width (24, 48): a 6-channel input gives an Inception block nothing to reduce, and at these
  resolutions every channel is expensive. Each later stage (conv3 … conv6) is a strided
  Inception block followed by a stride-1 one. A block concatenates a 1×1 branch (behind 3×3
  average pooling when strided), a 3×3 branch behind a 1×1 reduction and a 5×5 branch factorised
  as two 3×3 convolutions behind a 1×1 reduction (Szegedy et al., CVPR 2016); in the other two
  branches the last 3×3 carries the stride. Branches are (1×1, 3×3, 5×5) = (32, 64, 32), (64, 128, 64),
  (96, 192, 96), (128, 256, 128), so stages output 128-256-384-512, and each reduction has half
  its branch's width. The decoder is FlowNetS's at a quarter width, 128-64-32-16. At 1024×2048
  frames it costs 1/7.3 of FlowNet Simple; Table 2 implies 1/7.5 (68.97 / 9.20).
* ``flownet_tiny``: FlowNetS's topology at widths 8 … 32, for tests.

Frame sizes that are multiples of 16 but not of 128 give the encoder odd sizes; the decoder
crops its up-sampled maps to each skip's size, reading the size from the skip tensor so that
exported graphs keep dynamic heights and widths.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dff.errors import InputSizeError
from dff.frames import FEATURE_STRIDE as FRAME_MULTIPLE

#: FlowNet's activation (Dosovitskiy et al. 2015).
LEAKY_SLOPE = 0.1


class ConvLeaky(nn.Sequential):
    """k×k convolution with padding k // 2, then LeakyReLU(0.1)."""

    def __init__(self, *, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        )


class InceptionBlock(nn.Module):
    """Concatenated 1×1, 1×1→3×3 and 1×1→3×3→3×3 branches; strided: pooled 1×1, last 3×3s strided."""

    def __init__(
        self,
        *,
        in_channels: int,
        branch_channels: tuple[int, int, int],
        reduce_channels: tuple[int, int],
        stride: int = 1,
    ) -> None:
        super().__init__()
        b1, b3, b5 = branch_channels
        r3, r5 = reduce_channels
        pool = [nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)] if stride > 1 else []
        self.branch1x1 = nn.Sequential(*pool, ConvLeaky(in_channels=in_channels, out_channels=b1, kernel_size=1))
        self.branch3x3 = nn.Sequential(
            ConvLeaky(in_channels=in_channels, out_channels=r3, kernel_size=1),
            ConvLeaky(in_channels=r3, out_channels=b3, stride=stride),
        )
        self.branch5x5 = nn.Sequential(
            ConvLeaky(in_channels=in_channels, out_channels=r5, kernel_size=1),
            ConvLeaky(in_channels=r5, out_channels=b5),
            ConvLeaky(in_channels=b5, out_channels=b5, stride=stride),
        )
        self.out_channels = b1 + b3 + b5

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat((self.branch1x1(x), self.branch3x3(x), self.branch5x5(x)), dim=1)


def _crop_to(x: Tensor, like: Tensor, *, fixed_size: bool) -> Tensor:
    """x cropped to like's height and width: read from like at run time (dynamic in exported graphs), or, with
    ``fixed_size`` (a graph traced for one frame size), only where the sizes differ, so that no-op crops vanish."""
    if fixed_size and x.shape[2:] == like.shape[2:]:
        return x
    return x[:, :, : like.shape[2], : like.shape[3]]


class RefinementLevel(nn.Module):
    """One decoder step: deconvolve features, up-sample the flow, crop both to the skip, concatenate, predict flow."""

    def __init__(self, *, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        # k=4, s=2, p=1 doubles the size exactly (the DFF code's pad-0 deconvolution cropped at offset 1).
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        )
        self.upsample_flow = nn.ConvTranspose2d(2, 2, 4, stride=2, padding=1)
        self.out_channels = skip_channels + out_channels + 2
        self.predict_flow = nn.Conv2d(self.out_channels, 2, 3, padding=1)

    def forward(self, x: Tensor, flow: Tensor, skip: Tensor, *, fixed_size: bool = False) -> tuple[Tensor, Tensor]:
        # Both up-sampled maps are one size (twice the coarser level's): one crop of the two together.
        up = _crop_to(torch.cat((self.deconv(x), self.upsample_flow(flow)), dim=1), skip, fixed_size=fixed_size)
        x = torch.cat((skip, up), dim=1)
        return x, self.predict_flow(x)


#: The feature strides F can serve: its last prediction's own (8) and the paper's (16, by halving it).
FEATURE_STRIDES = (8, 16)


class FlowNet(nn.Module):
    """F(I_k, I_i) → (M, S): flow and scale fields on the feature network's grid, stride ``feature_stride`` (Sections 3-4).

    ``encoder`` holds five stages: the first (conv1, conv2) has stride 4 of its input, each of the
    other four stride 2; ``encoder_channels`` are their output channels. ``decoder_channels`` are
    the widths of the four deconvolutions, from the coarsest (deconv5) to the finest (deconv2).
    """

    def __init__(
        self,
        *,
        encoder: Sequence[nn.Module],
        encoder_channels: Sequence[int],
        decoder_channels: Sequence[int],
        feature_channels: int,
        feature_stride: int = 16,
    ) -> None:
        super().__init__()
        if feature_stride not in FEATURE_STRIDES:
            raise ValueError(f"feature_stride must be one of {list(FEATURE_STRIDES)}, got {feature_stride}")
        if not (len(encoder) == 5 and len(encoder_channels) == 5 and len(decoder_channels) == 4):
            raise ValueError(
                "FlowNet needs 5 encoder stages with 5 channel counts and 4 decoder widths, got "
                f"{len(encoder)} stages, encoder_channels={list(encoder_channels)}, decoder_channels={list(decoder_channels)}"
            )
        if not (feature_channels >= 1):
            raise ValueError(f"feature_channels must be >= 1, got {feature_channels}")
        self.feature_channels = feature_channels
        self.feature_stride = feature_stride
        self.encoder = nn.ModuleList(encoder)
        self.predict_flow6 = nn.Conv2d(encoder_channels[-1], 2, 3, padding=1)
        levels = []
        in_channels = encoder_channels[-1]
        for skip_channels, out_channels in zip(reversed(encoder_channels[:-1]), decoder_channels):
            level = RefinementLevel(in_channels=in_channels, skip_channels=skip_channels, out_channels=out_channels)
            levels.append(level)
            in_channels = level.out_channels
        self.decoder = nn.ModuleList(levels)
        self.scale = nn.Conv2d(in_channels, feature_channels, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
                nn.init.zeros_(module.bias)
        # M starts at 0 and S at 1 (Section 3: "initialized as 0s and 1s"): f_i = f_k before training.
        nn.init.zeros_(self.decoder[-1].predict_flow.weight)
        nn.init.zeros_(self.scale.weight)
        nn.init.ones_(self.scale.bias)

    def forward(self, key: Tensor, current: Tensor) -> tuple[Tensor, Tensor]:
        """F(I_k, I_i) -> (M, S). key/current: normalised float (N, 3, H, W) full frames, H and W multiples of 16.

        Returns flow M (N, 2, H/s, W/s), s = ``feature_stride``, in feature-map pixels (channel 0 horizontal, 1
        vertical; location p of the current frame reads the key features at p + M(p)) and scale S (N, feature_channels,
        H/s, W/s).
        """
        _check_frames(key, current, FRAME_MULTIPLE)
        return self.from_halved(self.halve(key, current))

    @staticmethod
    def halve(key: Tensor, current: Tensor) -> Tensor:
        """The input pair, half-sized (Section 4) by 2×2 average pooling: (N, 6, H/2, W/2), current frame first."""
        # Current frame first: FlowNet's flow maps locations of its first image into its second. Each frame is pooled
        # before the concatenation (pooling is per channel: the same numbers), which then copies a quarter of the bytes.
        return torch.cat((F.avg_pool2d(current, 2), F.avg_pool2d(key, 2)), dim=1)

    def from_halved(self, x: Tensor, *, fixed_size: bool = False) -> tuple[Tensor, Tensor]:
        """(M, S) from :meth:`halve`'s output; normalisation commutes with the halving, so it may come either side.

        ``fixed_size``: tracing for one input size only; the decoder then crops only where that size needs it (an
        odd skip size). Otherwise every crop reads its size at run time, as a graph with dynamic sizes must.
        """
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        flow = self.predict_flow6(x)
        for level, skip in zip(self.decoder, reversed(skips[:-1])):
            x, flow = level(x, flow, skip, fixed_size=fixed_size)
        if self.feature_stride == 16:
            # Stride 8 → 16 of the frame (Section 4); flow values are feature pixels already (see module docstring).
            # Halving with align_corners=False averages 2×2 cells, as the DFF code's pooling does.
            x = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
            flow = F.interpolate(flow, scale_factor=0.5, mode="bilinear", align_corners=False)
        # S = conv1×1(resize(x)) equals resize(conv1×1(x)): both are linear and bilinear weights sum to 1;
        # after the resize it costs a quarter.
        return flow, self.scale(x)


def _check_frames(key: Tensor, current: Tensor, stride: int) -> None:
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return  # symbolic shapes: a check here would bake one frame size into the exported graph
    if not (key.dim() == 4 and key.shape == current.shape and key.shape[1] == 3):
        raise ValueError(
            "FlowNet expects key and current frames of one shape (N, 3, H, W), "
            f"got {tuple(key.shape)} and {tuple(current.shape)}"
        )
    height, width = key.shape[2], key.shape[3]
    if not (height % stride == 0 and width % stride == 0 and height > 0 and width > 0):
        raise InputSizeError(
            f"frame size {height}×{width} is not a multiple of {stride}: resize or pad frames to multiples of {stride}"
        )


def _stem(c1: int, c2: int) -> nn.Sequential:
    """conv1 7×7/2 and conv2 5×5/2 on the 6-channel frame pair: the first stage, stride 4 of its input."""
    return nn.Sequential(
        ConvLeaky(in_channels=6, out_channels=c1, kernel_size=7, stride=2),
        ConvLeaky(in_channels=c1, out_channels=c2, kernel_size=5, stride=2),
    )


def _plain_encoder(widths: Sequence[int]) -> list[nn.Module]:
    """FlowNetS's encoder stages for conv1 … conv6 widths: (conv1, conv2), (conv3, conv3_1), … (conv6, conv6_1)."""
    c1, c2, c3, c4, c5, c6 = widths
    stages: list[nn.Module] = [
        _stem(c1, c2),
        nn.Sequential(
            ConvLeaky(in_channels=c2, out_channels=c3, kernel_size=5, stride=2),
            ConvLeaky(in_channels=c3, out_channels=c3),
        ),
    ]
    for in_channels, out_channels in ((c3, c4), (c4, c5), (c5, c6)):
        stages.append(
            nn.Sequential(
                ConvLeaky(in_channels=in_channels, out_channels=out_channels, stride=2),
                ConvLeaky(in_channels=out_channels, out_channels=out_channels),
            )
        )
    return stages


def _inception_encoder(stem_widths: tuple[int, int], stage_widths: Sequence[tuple[int, int, int]]) -> list[nn.Module]:
    """Plain conv1, conv2, then per stage a strided and a stride-1 Inception block with branches ``(b1, b3, b5)``."""
    c1, c2 = stem_widths
    stages: list[nn.Module] = [_stem(c1, c2)]
    in_channels = c2
    for branches in stage_widths:
        reduce = (branches[1] // 2, branches[2] // 2)
        strided = InceptionBlock(in_channels=in_channels, branch_channels=branches, reduce_channels=reduce, stride=2)
        block = InceptionBlock(in_channels=strided.out_channels, branch_channels=branches, reduce_channels=reduce)
        stages.append(nn.Sequential(strided, block))
        in_channels = block.out_channels
    return stages


def _plain_flownet(widths: Sequence[int], decoder_channels: Sequence[int], feature_channels: int, feature_stride: int) -> FlowNet:
    return FlowNet(
        encoder=_plain_encoder(widths),
        encoder_channels=widths[1:],
        decoder_channels=decoder_channels,
        feature_channels=feature_channels,
        feature_stride=feature_stride,
    )


def _inception_flownet(
    stem_widths: tuple[int, int],
    stage_widths: Sequence[tuple[int, int, int]],
    decoder_channels: Sequence[int],
    feature_channels: int,
    feature_stride: int,
) -> FlowNet:
    return FlowNet(
        encoder=_inception_encoder(stem_widths, stage_widths),
        encoder_channels=(stem_widths[1], *(sum(branches) for branches in stage_widths)),
        decoder_channels=decoder_channels,
        feature_channels=feature_channels,
        feature_stride=feature_stride,
    )


def flownet_simple(*, feature_channels: int = 1024, feature_stride: int = 16) -> FlowNet:
    """FlowNet Simple (FlowNetS, Dosovitskiy et al. 2015), the paper's default F."""
    return _plain_flownet((64, 128, 256, 512, 512, 1024), (512, 256, 128, 64), feature_channels, feature_stride)


def flownet_half(*, feature_channels: int = 1024, feature_stride: int = 16) -> FlowNet:
    """FlowNet Half: half the kernels of FlowNetS in every layer, about 1/4 of its complexity."""
    return _plain_flownet((32, 64, 128, 256, 256, 512), (256, 128, 64, 32), feature_channels, feature_stride)


def flownet_inception(*, feature_channels: int = 1024, feature_stride: int = 16) -> FlowNet:
    """FlowNet Inception: Inception blocks at about 1/8 of FlowNetS's complexity (design in the module docstring)."""
    return _inception_flownet(
        (24, 48), ((32, 64, 32), (64, 128, 64), (96, 192, 96), (128, 256, 128)), (128, 64, 32, 16), feature_channels, feature_stride
    )


def flownet_tiny(*, feature_channels: int = 32, feature_stride: int = 16) -> FlowNet:
    """FlowNetS's topology at widths 8 … 32: for tests and CPU demos."""
    return _plain_flownet((8, 16, 16, 24, 24, 32), (16, 16, 8, 8), feature_channels, feature_stride)
