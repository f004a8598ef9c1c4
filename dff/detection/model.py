"""Deep Feature Flow for detection: N_feat and F as for segmentation, N_task the R-FCN head."""

from __future__ import annotations

from dff.config import ModelConfig
from dff.detection.head import rfcn_head, rfcn_head_tiny
from dff.models import FEATURE_BUILDERS, FLOW_BUILDERS, DeepFeatureFlow

#: The R-FCN head that suits each feature network: the paper's for the ResNets, the small-frame one for ``tiny``.
HEAD_BUILDERS = {"resnet50": rfcn_head, "resnet101": rfcn_head, "tiny": rfcn_head_tiny}


def build_detection_model(config: ModelConfig) -> DeepFeatureFlow:
    """The detector a configuration describes, randomly initialised (F's S starts at ones, M at zero).

    ``config.num_classes`` counts the background, as for segmentation (C + 1).
    """
    channels, stride = config.channels, config.output_stride
    return DeepFeatureFlow(
        feature_net=FEATURE_BUILDERS[config.feature](out_channels=channels, frozen_bn=config.frozen_bn, output_stride=stride),
        flow_net=FLOW_BUILDERS[config.flow](feature_channels=channels, feature_stride=stride),
        task_net=HEAD_BUILDERS[config.feature](in_channels=channels, num_classes=config.num_classes, feature_stride=stride),
    )
