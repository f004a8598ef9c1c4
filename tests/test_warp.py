"""W (Eq. 1-3) against a direct loop over Eq. (1), known shifts, and gradcheck (Eq. 4)."""

import pytest
import torch

from dff.ops import warp, warp_reference


def _random_case(seed: int, n=2, c=3, h=5, w=7, out_hw=(4, 6), flow_scale=3.0):
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, c, h, w, generator=g, dtype=torch.float64)
    flow = torch.randn(n, 2, *out_hw, generator=g, dtype=torch.float64) * flow_scale
    scale = torch.rand(n, c, *out_hw, generator=g, dtype=torch.float64) + 0.5
    return feat, flow, scale


@pytest.mark.parametrize("seed", range(4))
def test_matches_direct_sum_over_eq1(seed):
    # flow_scale 3 sends many samples outside the 5×7 map: they must contribute zero.
    feat, flow, scale = _random_case(seed)
    torch.testing.assert_close(warp(feat, flow, scale), warp_reference(feat, flow, scale), rtol=0, atol=1e-12)
    torch.testing.assert_close(warp(feat, flow), warp_reference(feat, flow), rtol=0, atol=1e-12)


def test_zero_flow_is_identity_and_scale_multiplies():
    feat, _, scale = _random_case(0, out_hw=(5, 7))
    zero = torch.zeros(2, 2, 5, 7, dtype=torch.float64)
    torch.testing.assert_close(warp(feat, zero), feat)
    torch.testing.assert_close(warp(feat, zero, scale), feat * scale)


def test_integer_shift_moves_and_fills_with_zero():
    feat = torch.arange(20, dtype=torch.float64).view(1, 1, 4, 5) + 1
    flow = torch.zeros(1, 2, 4, 5, dtype=torch.float64)
    flow[:, 0] = 2  # read two columns to the right
    flow[:, 1] = -1  # and one row up
    out = warp(feat, flow)
    expected = torch.zeros_like(feat)
    expected[..., 1:, :3] = feat[..., :3, 2:]
    torch.testing.assert_close(out, expected)


def test_fractional_shift_interpolates_linearly():
    feat = torch.tensor([[[[0.0, 10.0, 20.0, 30.0]]]], dtype=torch.float64)
    flow = torch.zeros(1, 2, 1, 4, dtype=torch.float64)
    flow[:, 0] = 0.25
    # The last sample sits at x = 3.25: a quarter outside the map, so 0.75 of the last value.
    torch.testing.assert_close(warp(feat, flow), torch.tensor([[[[2.5, 12.5, 22.5, 22.5]]]], dtype=torch.float64))


def test_output_takes_flow_size():
    feat, flow, scale = _random_case(1, h=6, w=6, out_hw=(3, 9))
    assert warp(feat, flow, scale).shape == (2, 3, 3, 9)


def test_gradcheck_all_inputs():
    # Offsets are kept away from integer coordinates, where g is not differentiable.
    feat, flow, scale = _random_case(2, n=1, c=2, h=4, w=5, out_hw=(3, 4), flow_scale=1.0)
    flow = (flow.round() + 0.3).requires_grad_()
    feat.requires_grad_()
    scale.requires_grad_()
    assert torch.autograd.gradcheck(warp, (feat, flow, scale), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "feat_shape, flow_shape, scale_shape, message",
    [
        ((2, 3, 4, 4), (1, 2, 4, 4), None, "same N"),
        ((2, 3, 4, 4), (2, 3, 4, 4), None, "flow"),
        ((2, 3, 4, 4), (2, 2, 4, 4), (2, 4, 4, 4), "scale"),
        ((2, 3, 4, 4), (2, 2, 4, 4), (2, 3, 5, 4), "scale"),
        ((3, 4, 4), (2, 2, 4, 4), None, "feat"),
    ],
)
def test_mismatched_shapes_raise_value_error_naming_them(feat_shape, flow_shape, scale_shape, message):
    feat, flow = torch.zeros(feat_shape), torch.zeros(flow_shape)
    scale = None if scale_shape is None else torch.zeros(scale_shape)
    with pytest.raises(ValueError, match=message) as info:
        warp(feat, flow, scale)
    assert str(tuple(feat_shape)) in str(info.value) or str(tuple(scale_shape)) in str(info.value)
