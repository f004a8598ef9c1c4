"""Feature propagation W (Eq. 1-3): bilinear warping of key-frame features, times the scale field.

Conventions, shared by the ONNX forms, the CUDA kernel and the TensorRT plugin:

* ``flow`` M has 2 channels in **feature-map pixels**: channel 0 is the horizontal
  displacement δp_x, channel 1 the vertical δp_y. Location p of the current frame
  reads the key features at p + δp (Section 3: M projects back to the key frame).
* Pixel coordinates are cell indices p = 0 … W-1 (``align_corners=True``).
* Samples outside the map contribute zero: g(a, b) = max(0, 1 - |a - b|) summed
  over the map's own locations only (``padding_mode="zeros"``).
* The output has the flow's spatial size and the features' channels; it is multiplied
  element-wise by ``scale`` S when given (S = 1 otherwise).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_shapes(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor | None) -> None:
    if not (feat.dim() == 4 and flow.dim() == 4 and flow.shape[1] == 2 and flow.shape[0] == feat.shape[0]):
        raise ValueError(
            "warp expects feat (N, C, H, W) and flow (N, 2, H', W') with the same N; "
            f"got feat {tuple(feat.shape)} and flow {tuple(flow.shape)}"
        )
    expected = (feat.shape[0], feat.shape[1], flow.shape[2], flow.shape[3])
    if scale is not None and not (scale.dim() == 4 and tuple(scale.shape) == expected):
        raise ValueError(f"warp expects scale of shape {expected} (N, C of feat; H', W' of flow), got {tuple(scale.shape)}")


def sampling_grid(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The normalised ``grid_sample`` grid (N, H', W', 2) for p + δp on a ``height`` × ``width`` map."""
    n, _, h, w = flow.shape
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    # align_corners=True maps -1 and +1 to the centres of the first and last cells. A map one
    # cell wide has no such span: max(…, 1) keeps it finite and every sample then reads cell 0
    # (grid_sample's rule, which the kernel follows too); frames of >= 64 px never produce one.
    gx = (xs + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    return torch.stack((gx, gy), dim=-1)


def warp(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """f_i = W(f_k, M, S) (Eq. 3): differentiable in all three inputs (Eq. 4)."""
    _check_shapes(feat, flow, scale)
    if feat.is_cuda and not torch.is_grad_enabled():
        from dff.ops import warp_cuda

        if warp_cuda.available() and warp_cuda.supports(feat, flow, scale):
            return warp_cuda.warp(feat, flow, scale)
    out = F.grid_sample(
        feat, sampling_grid(flow, feat.shape[2], feat.shape[3]), mode="bilinear", padding_mode="zeros", align_corners=True
    )
    return out if scale is None else out * scale


def warp_reference(feat: torch.Tensor, flow: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (1) as written: a direct sum over q of G(q, p + δp) f_k(q). Slow; for tests only."""
    _check_shapes(feat, flow, scale)
    n, c, h, w = feat.shape
    out = feat.new_zeros(n, c, flow.shape[2], flow.shape[3])
    qy = torch.arange(h, dtype=feat.dtype, device=feat.device).view(h, 1)
    qx = torch.arange(w, dtype=feat.dtype, device=feat.device).view(1, w)
    for b in range(n):
        for py in range(flow.shape[2]):
            for px in range(flow.shape[3]):
                sx = px + flow[b, 0, py, px]
                sy = py + flow[b, 1, py, px]
                # G(q, p + δp) = g(q_x, p_x + δp_x) · g(q_y, p_y + δp_y), g(a, b) = max(0, 1 - |a - b|)  (Eq. 2)
                kernel = (1 - (qx - sx).abs()).clamp(min=0) * (1 - (qy - sy).abs()).clamp(min=0)
                out[b, :, py, px] = (feat[b] * kernel).sum(dim=(1, 2))
    return out if scale is None else out * scale
