"""The networks of Deep Feature Flow: N_feat, F, N_task, and the model that wires them."""

from __future__ import annotations

from dff.config import ModelConfig
from dff.models.deep_feature_flow import DeepFeatureFlow
from dff.models.flownet import FlowNet, flownet_half, flownet_inception, flownet_simple, flownet_tiny
from dff.models.resnet import FeatureNet, resnet50, resnet101, resnet_small, resnet_tiny
from dff.models.task import SegmentationTaskNet

FEATURE_BUILDERS = {"resnet50": resnet50, "resnet101": resnet101, "small": resnet_small, "tiny": resnet_tiny}
FLOW_BUILDERS = {"simple": flownet_simple, "half": flownet_half, "inception": flownet_inception, "tiny": flownet_tiny}


def build_model(config: ModelConfig) -> DeepFeatureFlow:
    """The model a configuration describes, randomly initialised (S starts at ones); R-FCN's for a detection task."""
    if config.task == "detection":
        from dff.detection.model import build_detection_model  # it builds on this module

        return build_detection_model(config)
    channels = config.channels
    return DeepFeatureFlow(
        feature_net=FEATURE_BUILDERS[config.feature](out_channels=channels, frozen_bn=config.frozen_bn),
        flow_net=FLOW_BUILDERS[config.flow](feature_channels=channels),
        task_net=SegmentationTaskNet(in_channels=channels, num_classes=config.num_classes),
    )


__all__ = [
    "DeepFeatureFlow",
    "FeatureNet",
    "FlowNet",
    "SegmentationTaskNet",
    "build_model",
    "resnet50",
    "resnet101",
    "resnet_small",
    "resnet_tiny",
    "flownet_simple",
    "flownet_half",
    "flownet_inception",
    "flownet_tiny",
]
