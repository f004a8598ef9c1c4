"""N = N_task ∘ N_feat with feature propagation by F and W (Section 3, Figure 2)."""

from __future__ import annotations

import torch
from torch import nn

from dff.ops.warp import warp


class DeepFeatureFlow(nn.Module):
    """Wires the three networks of the paper; the parts are passed in, not built here.

    * ``feature_net``: frames (N, 3, H, W) → f (N, C, H/16, W/16), with attribute ``out_channels`` = C.
    * ``flow_net``: (I_k, I_i) → (M, S) on the same grid: M (N, 2, ·, ·) in feature-map pixels, S (N, C, ·, ·).
    * ``task_net``: f → score maps (N, num_classes, H/16, W/16), with attribute ``in_channels`` = C.

    Frames are normalised float tensors (see :class:`~dff.models.preprocess.FrameNormalizer`).
    """

    def __init__(self, *, feature_net: nn.Module, flow_net: nn.Module, task_net: nn.Module) -> None:
        super().__init__()
        if not (feature_net.out_channels == task_net.in_channels):
            raise ValueError(
                f"task_net takes {task_net.in_channels} channels but feature_net gives {feature_net.out_channels}"
            )
        self.feature_net = feature_net
        self.flow_net = flow_net
        self.task_net = task_net

    def key(self, frame: torch.Tensor) -> torch.Tensor:
        """f_k = N_feat(I_k) (Algorithm 1, line 8)."""
        return self.feature_net(frame)

    def propagate(self, key_feat: torch.Tensor, key_frame: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        """f_i = W(f_k, F(I_k, I_i), S(I_k, I_i)) (Algorithm 1, line 11)."""
        flow, scale = self.flow_net(key_frame, frame)
        return warp(key_feat, flow, scale)

    def task(self, feat: torch.Tensor) -> torch.Tensor:
        """y = N_task(f): score maps on the feature grid (Algorithm 1, lines 9 and 12)."""
        return self.task_net(feat)

    def forward_pair(
        self, key_frame: torch.Tensor, frame: torch.Tensor, same: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Training forward on pairs (I_k, I_i) (Figure 2b): score maps of frame i.

        ``same`` (N,) marks pairs with i == k: their features are used as they are, without
        propagation, which makes per-frame training the special case (Section 3).
        """
        key_feat = self.key(key_frame)
        if same is not None and bool(same.all()):
            return self.task(key_feat)
        feat = self.propagate(key_feat, key_frame, frame)
        if same is not None:
            feat = torch.where(same.view(-1, 1, 1, 1), key_feat, feat)
        return self.task(feat)

    def forward(self, key_frame: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        return self.forward_pair(key_frame, frame)
