"""How a non-key frame gets its features f_i from the key frame's f_k (Table 3's rows).

* :class:`FlowNetPropagation`: Deep Feature Flow, f_i = W(f_k, F(I_k, I_i), S(I_k, I_i)) (Eq. 3).
* :class:`CopyPropagation`: f_i = f_k, reuse without motion (as Clockwork's copied features, Section 2).
* :class:`OpticalFlowPropagation`: Shallow Feature Flow: an off-the-shelf optical flow, no training,
  S = 1 (Section 3: "any flow function F … is readily applicable"). The paper used SIFT-Flow; we use
  OpenCV's DIS optical flow, also a CPU method.

Each is called with the key features and both frames, as :class:`FrameInputs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch

from dff.models import DeepFeatureFlow
from dff.ops.warp import warp
from dff.train.feature_flow import feature_flow

DISPreset = Literal["ultrafast", "fast", "medium"]


@dataclass(frozen=True)
class FrameInputs:
    """One frame as the networks take it (normalised float (1, 3, H, W) on the device) and as OpenCV does (uint8 H×W×3 BGR)."""

    tensor: torch.Tensor
    image: np.ndarray


class FlowNetPropagation:
    """f_i = W(f_k, F(I_k, I_i), S(I_k, I_i)) with the model's own F."""

    def __init__(self, model: DeepFeatureFlow) -> None:
        self.model = model

    def __call__(self, key_feat: torch.Tensor, key: FrameInputs, current: FrameInputs) -> torch.Tensor:
        return self.model.propagate(key_feat, key.tensor, current.tensor)


class CopyPropagation:
    """f_i = f_k."""

    def __call__(self, key_feat: torch.Tensor, key: FrameInputs, current: FrameInputs) -> torch.Tensor:
        return key_feat


class OpticalFlowPropagation:
    """f_i = W(f_k, M, 1) with M from DIS optical flow (Kroeger et al., ECCV 2016) on the grey frames.

    DIS computes M_{i→k} when given (I_i, I_k): I_i(p) ≈ I_k(p + M(p)), the paper's backward flow,
    in image pixels; :func:`~dff.train.feature_flow.feature_flow` brings it to the feature grid.
    """

    _PRESETS = {
        "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
        "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    }

    def __init__(self, *, preset: DISPreset = "medium") -> None:
        if preset not in self._PRESETS:
            raise ValueError(f"DIS preset must be one of {sorted(self._PRESETS)}, got {preset!r}")
        self.dis = cv2.DISOpticalFlow_create(self._PRESETS[preset])

    def image_flow(self, key: np.ndarray, current: np.ndarray) -> np.ndarray:
        """M_{i→k} in image pixels, float32 H×W×2, from uint8 BGR frames k and i."""
        grey = [cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) for image in (current, key)]
        return self.dis.calc(grey[0], grey[1], None)

    def __call__(self, key_feat: torch.Tensor, key: FrameInputs, current: FrameInputs) -> torch.Tensor:
        flow = torch.from_numpy(self.image_flow(key.image, current.image)).permute(2, 0, 1)[None]
        stride = flow.shape[2] // key_feat.shape[2]  # the feature net's output stride (16, or 8)
        return warp(key_feat, feature_flow(flow.to(key_feat.device, key_feat.dtype), stride=stride))
