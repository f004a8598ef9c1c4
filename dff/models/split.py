"""Moving the split point of N = N_task ∘ N_feat (Section 5, "Split point of N_task", Table 5).

N is a chain of blocks: the stem, the bottleneck units of conv2 … conv5, the dilated 3×3 head
that reduces to the feature width, and the 1×1 score convolution. The split point cuts the chain:
N_feat runs the blocks before it on key frames, F and W propagate their output, and N_task runs
the blocks after it on every frame. ``task_blocks`` counts the blocks after the split:

* 0: the score convolution moves into N_feat, so the score maps themselves are propagated
  (the paper's "0 layer");
* 1: the default, only the score convolution (:func:`dff.models.build_model`);
* 2: the head and the score convolution;
* 3 and more: also the last ``task_blocks - 2`` bottleneck units (conv5's last units first,
  then conv4's, down to conv4's second unit: F's flow lives on the stride-16 grid, which N
  reaches in conv4's first unit).

The propagated tensor has the width of the block before the split, so F's scale field S must
have that many channels (:func:`split_channels`). Table 5 counts N_task's weight layers
(projection shortcuts included: 5, 12 and 21 for ResNet-101 are 3, 5 and 8 blocks);
:func:`task_layers` gives that count. The blocks are shared with the networks passed in, not
copied, so a split model computes N exactly as the default one does on key frames.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from dff.config import ModelConfig
from dff.models import FLOW_BUILDERS, build_model
from dff.models.deep_feature_flow import DeepFeatureFlow
from dff.models.resnet import FeatureNet
from dff.models.task import SegmentationTaskNet, probabilities

#: The default split: N_task is the score convolution alone (Section 4).
DEFAULT_TASK_BLOCKS = 1
#: The block after which N's output stride is 16 (conv4 down-samples in its first unit; conv5 is dilated).
FIRST_STRIDE16_BLOCK = "conv4_0"


def network_blocks(feature_net: FeatureNet, task_net: SegmentationTaskNet) -> list[tuple[str, nn.Module, int]]:
    """N's blocks in order as (name, module, output channels): stem, conv2_0 … conv5_*, head, score."""
    blocks: list[tuple[str, nn.Module, int]] = [("stem", feature_net.stem, feature_net.stem[0].out_channels)]
    for stage in ("conv2", "conv3", "conv4", "conv5"):
        for index, unit in enumerate(getattr(feature_net, stage)):
            blocks.append((f"{stage}_{index}", unit, unit.conv3.out_channels))
    blocks.append(("head", feature_net.head, feature_net.out_channels))
    blocks.append(("score", task_net.score, task_net.num_classes))
    return blocks


def _check_task_blocks(task_blocks: int, blocks: list[tuple[str, nn.Module, int]]) -> None:
    # F's flow lives on the stride-16 grid, which N reaches with conv4's first unit: the split must come after it.
    most = len(blocks) - 1 - [name for name, _, _ in blocks].index(FIRST_STRIDE16_BLOCK)
    if not (isinstance(task_blocks, int) and 0 <= task_blocks <= most):
        raise ValueError(
            f"task_blocks must be an integer in 0..{most} (the propagated tensor must be on the stride-16 grid, so the "
            f"split comes after {FIRST_STRIDE16_BLOCK}), got {task_blocks!r}"
        )


def split_channels(feature_net: FeatureNet, task_net: SegmentationTaskNet, task_blocks: int) -> int:
    """Width of the propagated tensor when the last ``task_blocks`` blocks of N form N_task (F's S needs it)."""
    blocks = network_blocks(feature_net, task_net)
    _check_task_blocks(task_blocks, blocks)
    return blocks[len(blocks) - task_blocks - 1][2]


class SplitFeatureNet(nn.Sequential):
    """N_feat: the blocks of N before the split point; frames (N, 3, H, W) → (N, out_channels, H/16, W/16)."""

    def __init__(self, *, blocks: list[tuple[str, nn.Module, int]]) -> None:
        super().__init__(OrderedDict((name, module) for name, module, _ in blocks))
        self.out_channels = blocks[-1][2]


class SplitTaskNet(nn.Module):
    """N_task: the blocks of N after the split point (none for ``task_blocks = 0``), ending in score maps."""

    def __init__(self, *, blocks: list[tuple[str, nn.Module, int]], in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(OrderedDict((name, module) for name, module, _ in blocks))
        self.in_channels = in_channels
        self.num_classes = num_classes

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.blocks(feat)

    def probabilities(self, feat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Softmax over classes, bilinearly upsampled to the frame ``size`` (H, W), as the default N_task's."""
        return probabilities(self(feat), size)


def task_layers(task_net: nn.Module) -> int:
    """N_task's weight layers as Table 5 counts them: convolutions, projection shortcuts included."""
    return sum(isinstance(module, nn.Conv2d) for module in task_net.modules())


def split_model(
    *, feature_net: FeatureNet, flow_net: nn.Module, task_net: SegmentationTaskNet, task_blocks: int
) -> DeepFeatureFlow:
    """DeepFeatureFlow whose N_task is the last ``task_blocks`` blocks of N = ``task_net`` ∘ ``feature_net``.

    ``flow_net`` must give a scale field with :func:`split_channels` channels (attribute
    ``feature_channels``). The blocks are shared with ``feature_net`` and ``task_net``.
    """
    blocks = network_blocks(feature_net, task_net)
    _check_task_blocks(task_blocks, blocks)
    cut = len(blocks) - task_blocks
    channels = blocks[cut - 1][2]
    if not (flow_net.feature_channels == channels):
        raise ValueError(
            f"with task_blocks={task_blocks} the propagated tensor has {channels} channels, so F's scale field needs "
            f"{channels}; flow_net gives {flow_net.feature_channels}"
        )
    return DeepFeatureFlow(
        feature_net=SplitFeatureNet(blocks=blocks[:cut]),
        flow_net=flow_net,
        task_net=SplitTaskNet(blocks=blocks[cut:], in_channels=channels, num_classes=task_net.num_classes),
    )


def build_split_model(config: ModelConfig, *, task_blocks: int) -> DeepFeatureFlow:
    """:func:`dff.models.build_model`'s model for ``config``, split with ``task_blocks`` blocks in N_task.

    F is rebuilt with a scale field as wide as the propagated tensor where that differs from the
    feature width, so ``task_blocks = 1`` keeps build_model's very model (same draws from the seed).
    """
    model = build_model(config)
    channels = split_channels(model.feature_net, model.task_net, task_blocks)
    flow_net = model.flow_net if channels == config.channels else FLOW_BUILDERS[config.flow](feature_channels=channels)
    return split_model(feature_net=model.feature_net, flow_net=flow_net, task_net=model.task_net, task_blocks=task_blocks)
