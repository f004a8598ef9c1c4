"""Feature network N_feat: dilated ResNet-v1 with a 1024-d head (Section 4, "Feature Network").

ResNet-v1 as released by MSRA (and used by the original DFF code): bottleneck units whose
down-sampling stride sits on the first 1×1 convolution. For output stride 16 the first unit of
conv5 has stride 1 and every 3×3 convolution in conv5 is dilated by 2 (the "holing algorithm");
a randomly initialised 3×3 convolution with dilation 6 then reduces the features to 1024
channels, followed by ReLU.

``output_stride=8`` applies the same holing one stage earlier (DeepLab's output stride 8): conv4
keeps stride 1 with its 3×3 convolutions dilated by 2 and conv5's by 4. Same weights, a grid
twice as fine in each direction, for small frames whose objects span only a few 16-pixel cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

NormLayer = Callable[[int], nn.Module]


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters (no learning, no running updates)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)


class Bottleneck(nn.Module):
    """1×1 (stride) → 3×3 (dilation) → 1×1 ×4 with an identity or projection shortcut."""

    expansion = 4

    def __init__(
        self, *, in_channels: int, width: int, stride: int = 1, dilation: int = 1, norm_layer: NormLayer
    ) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, stride=stride, bias=False)
        self.bn1 = norm_layer(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = norm_layer(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), norm_layer(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


#: Per output stride, the (strides, dilations) of conv2 … conv5: each stage not down-sampling dilates instead.
STAGE_GEOMETRY = {16: ((1, 2, 2, 1), (1, 1, 1, 2)), 8: ((1, 2, 1, 1), (1, 1, 2, 4))}


class FeatureNet(nn.Module):
    """N_feat: frames (N, 3, H, W), normalised, H and W multiples of 16 → features f (N, out_channels, H/s, W/s),
    s = ``output_stride`` (16, the paper's, or 8)."""

    def __init__(
        self,
        *,
        blocks: Sequence[int],
        stem_channels: int,
        widths: Sequence[int],
        out_channels: int,
        frozen_bn: bool = False,
        output_stride: int = 16,
    ) -> None:
        super().__init__()
        if not (len(blocks) == 4 and len(widths) == 4):
            raise ValueError(f"FeatureNet needs 4 stages, got blocks={list(blocks)} widths={list(widths)}")
        if output_stride not in STAGE_GEOMETRY:
            raise ValueError(f"output_stride must be one of {sorted(STAGE_GEOMETRY)}, got {output_stride}")
        self.stride = output_stride
        norm_layer: NormLayer = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
        self.out_channels = out_channels
        self.stem = nn.Sequential(
            nn.Conv2d(3, stem_channels, 7, stride=2, padding=3, bias=False),
            norm_layer(stem_channels),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        # conv2 … conv5; at output stride 16 conv5 keeps stride 1 and dilates its 3×3 convolutions by 2.
        strides, dilations = STAGE_GEOMETRY[output_stride]
        stages = []
        in_channels = stem_channels
        for count, width, stride, dilation in zip(blocks, widths, strides, dilations):
            units = []
            for unit in range(count):
                units.append(
                    Bottleneck(
                        in_channels=in_channels,
                        width=width,
                        stride=stride if unit == 0 else 1,
                        dilation=dilation,
                        norm_layer=norm_layer,
                    )
                )
                in_channels = width * Bottleneck.expansion
            stages.append(nn.Sequential(*units))
        self.conv2, self.conv3, self.conv4, self.conv5 = stages
        # The randomly initialised 3×3 reduction to 1024-d, dilated by 6 ("feat_conv_3x3" of Section 4).
        self.head = nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=6, dilation=6), nn.ReLU(inplace=True))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        x = self.stem(frame)
        x = self.conv5(self.conv4(self.conv3(self.conv2(x))))
        return self.head(x)


def _resnet(blocks: Sequence[int], *, out_channels: int, frozen_bn: bool, output_stride: int) -> FeatureNet:
    return FeatureNet(
        blocks=blocks, stem_channels=64, widths=(64, 128, 256, 512), out_channels=out_channels, frozen_bn=frozen_bn,
        output_stride=output_stride,
    )


def resnet50(*, out_channels: int = 1024, frozen_bn: bool = False, output_stride: int = 16) -> FeatureNet:
    """Dilated ResNet-50 feature network."""
    return _resnet((3, 4, 6, 3), out_channels=out_channels, frozen_bn=frozen_bn, output_stride=output_stride)


def resnet101(*, out_channels: int = 1024, frozen_bn: bool = False, output_stride: int = 16) -> FeatureNet:
    """Dilated ResNet-101 feature network (the paper's default)."""
    return _resnet((3, 4, 23, 3), out_channels=out_channels, frozen_bn=frozen_bn, output_stride=output_stride)


def resnet_small(*, out_channels: int = 128, frozen_bn: bool = False, output_stride: int = 16) -> FeatureNet:
    """Two narrow units per stage: heavy enough next to ``flownet_tiny`` for DFF to pay off on a CPU (the demo)."""
    return FeatureNet(
        blocks=(2, 2, 2, 2), stem_channels=32, widths=(16, 32, 64, 96), out_channels=out_channels, frozen_bn=frozen_bn,
        output_stride=output_stride,
    )


def resnet_tiny(*, out_channels: int = 32, frozen_bn: bool = False, output_stride: int = 16) -> FeatureNet:
    """One narrow unit per stage: same topology and stride, for tests and CPU demos."""
    return FeatureNet(
        blocks=(1, 1, 1, 1), stem_channels=16, widths=(8, 16, 24, 32), out_channels=out_channels, frozen_bn=frozen_bn,
        output_stride=output_stride,
    )
