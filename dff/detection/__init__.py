"""Object detection with Deep Feature Flow: the R-FCN task network of Section 4 and what trains and scores it.

* :mod:`~dff.detection.head`: N_task, the R-FCN head (RPN and position-sensitive maps, 1×1 layers
  only) and its parameter-free per-region stage (proposals, PS-RoI pooling, NMS).
* :mod:`~dff.detection.boxes`, :mod:`~dff.detection.anchors`, :mod:`~dff.detection.nms`,
  :mod:`~dff.detection.psroi_pool`: the parts it is made of.
* :mod:`~dff.detection.model`: DeepFeatureFlow with the R-FCN head as N_task.
* :mod:`~dff.detection.targets`, :mod:`~dff.detection.losses`, :mod:`~dff.detection.objective`,
  :mod:`~dff.detection.train`: training on pairs (I_k, I_i) with the boxes of frame i.
* :mod:`~dff.detection.ground_truth`, :mod:`~dff.detection.data`: boxes of the synthetic video and batches.
* :mod:`~dff.detection.mask_boxes`: boxes from masks (a box per connected region) and frames held with their boxes.
* :mod:`~dff.detection.metrics`, :mod:`~dff.detection.evaluate`: mAP@0.5 and the paper's protocol.
"""

from __future__ import annotations

from dff.detection.head import DetectionConfig, Detections, ProposalConfig, RFCNMaps, RFCNTaskNet, rfcn_head, rfcn_head_tiny
from dff.detection.model import build_detection_model

__all__ = [
    "DetectionConfig",
    "Detections",
    "ProposalConfig",
    "RFCNMaps",
    "RFCNTaskNet",
    "build_detection_model",
    "rfcn_head",
    "rfcn_head_tiny",
]
