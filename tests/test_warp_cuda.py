"""The fused CUDA warp kernel (dff.ops.warp_cuda) against Eq. (1) and the grid_sample path; CPU-side checks of its
availability logic. The GPU tests skip where torch sees no CUDA device; where it does, a failed build fails them, and
each case asserts the path it claims (pixel pairs on even planes with aligned pointers, one pixel per thread on odd
planes or misaligned ones). The same thread code runs on the CPU in plugins/tests/test_warp_thread.cpp (ctest)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dff.ops import warp, warp_cuda, warp_reference
from dff.ops.warp import sampling_grid

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch sees none)")


def grid_sample_warp(feat, flow, scale=None):
    """dff.ops.warp's portable path, called directly (dff.ops.warp itself picks the kernel when grad is off)."""
    grid = sampling_grid(flow, feat.shape[2], feat.shape[3])
    out = F.grid_sample(feat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out if scale is None else out * scale


def random_case(seed, *, n, c, hw, out_hw, flow_scale=3.0, dtype=torch.float32, device="cuda"):
    """feat, flow, scale; flow_scale 3 sends many samples outside small maps."""
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, c, *hw, generator=g)
    flow = torch.randn(n, 2, *out_hw, generator=g) * flow_scale
    scale = torch.rand(n, c, *out_hw, generator=g) + 0.5
    return tuple(t.to(device=device, dtype=dtype) for t in (feat, flow, scale))


@pytest.fixture(scope="module")
def kernel():
    """The built extension. With a GPU and a toolchain (nvcc, ninja) a failed build is a failure, not a skip."""
    from torch.utils import cpp_extension

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none)")
    if cpp_extension.CUDA_HOME is None or not cpp_extension.is_ninja_available():
        pytest.skip("building the CUDA extension needs the CUDA toolkit (CUDA_HOME) and ninja")
    assert warp_cuda.available(), warp_cuda.unavailable_reason()
    return warp_cuda


# ---- CPU side: runs everywhere ----


def test_extension_sources_exist():
    for path in (*warp_cuda.SOURCES, warp_cuda.INCLUDE_DIR / "dff" / "warp_kernel.h"):
        assert path.is_file(), f"{path} is missing"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_unavailable_without_cuda_and_warp_says_why():
    assert warp_cuda.available() is False
    assert "CUDA" in warp_cuda.unavailable_reason()
    feat, flow, scale = random_case(0, n=1, c=2, hw=(3, 4), out_hw=(3, 4), device="cpu")
    with pytest.raises(RuntimeError, match="unavailable: no CUDA device"):
        warp_cuda.warp(feat, flow, scale)
    # dff.ops.warp keeps working on the CPU (grid_sample path).
    with torch.no_grad():
        torch.testing.assert_close(warp(feat, flow, scale), grid_sample_warp(feat, flow, scale))


# ---- GPU ----


#: (n, c, feature map, flow grid, pixels per thread the launcher must pick): each case claims one kernel path.
CASES = [
    (2, 3, (5, 7), (5, 9), 1),  # odd sizes, output wider than the map; odd plane: one pixel per thread
    (1, 37, (6, 8), (4, 6), 2),  # channels not a multiple of the 16-channel chunk; even plane: pixel pairs
    (3, 17, (7, 5), (7, 5), 1),  # three images: one grid slice each; odd plane
    (2, 33, (6, 9), (5, 8), 2),  # even plane, a partial third chunk
]


@needs_cuda
@pytest.mark.parametrize("n, c, hw, out_hw, pixels", CASES)
@pytest.mark.parametrize("with_scale", [True, False])
def test_float32_matches_direct_sum_over_eq1(kernel, n, c, hw, out_hw, pixels, with_scale):
    feat, flow, scale = random_case(1, n=n, c=c, hw=hw, out_hw=out_hw)
    scale = scale if with_scale else None
    assert kernel.pixels_per_thread(feat, flow, scale) == pixels, "the case does not take the path it claims"
    torch.testing.assert_close(kernel.warp(feat, flow, scale), warp_reference(feat, flow, scale), rtol=0, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("n, c, hw, out_hw, pixels", CASES)
@pytest.mark.parametrize("with_scale", [True, False])
def test_float16_matches_float32_reference(kernel, n, c, hw, out_hw, pixels, with_scale):
    feat, flow, scale = random_case(2, n=n, c=c, hw=hw, out_hw=out_hw, dtype=torch.float16)
    scale = scale if with_scale else None
    assert kernel.pixels_per_thread(feat, flow, scale) == pixels, "the case does not take the path it claims"
    out = kernel.warp(feat, flow, scale)
    assert out.dtype == torch.float16
    expected = warp_reference(feat.float(), flow.float(), None if scale is None else scale.float())
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=1e-2)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_larger_map_matches_grid_sample_path(kernel, dtype):
    # A Cityscapes-like map at a small channel count; the grid path loses a little to its normalised grid.
    # float16 inputs are compared with float32 arithmetic on the same (rounded) values.
    feat, flow, scale = random_case(3, n=1, c=48, hw=(64, 128), out_hw=(64, 128), flow_scale=8.0, dtype=dtype)
    expected = grid_sample_warp(feat.float(), flow.float(), scale.float())
    out = kernel.warp(feat, flow, scale)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, rtol=0, atol=1e-4 if dtype == torch.float32 else 1e-2)


@needs_cuda
@pytest.mark.parametrize("hw", [(1, 6), (5, 1), (1, 1)])
def test_one_cell_axes_match_grid_sample_path(kernel, hw):
    # On a one-cell axis grid_sample reads cell 0 whatever the flow (dff.ops.warp.sampling_grid).
    feat, flow, scale = random_case(4, n=1, c=3, hw=hw, out_hw=(4, 5))
    torch.testing.assert_close(kernel.warp(feat, flow, scale), grid_sample_warp(feat, flow, scale), rtol=0, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_misaligned_and_non_contiguous_inputs(kernel, dtype):
    # A one-element storage offset defeats the paired loads (scalar fallback); a permuted flow is made contiguous.
    feat, flow, scale = random_case(5, n=1, c=5, hw=(6, 8), out_hw=(6, 8), dtype=dtype)
    shifted = torch.empty(scale.numel() + 1, dtype=dtype, device="cuda")[1:].view_as(scale).copy_(scale)
    permuted_flow = flow.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2)
    assert not permuted_flow.is_contiguous()
    assert kernel.pixels_per_thread(feat, flow, shifted) == 1 and kernel.pixels_per_thread(feat, flow, scale) == 2
    # Same arithmetic in both paths; the default tolerances allow one rounding step of the dtype.
    torch.testing.assert_close(kernel.warp(feat, permuted_flow, shifted), kernel.warp(feat, flow, scale))


@needs_cuda
def test_ops_warp_uses_the_kernel_without_grad(kernel):
    feat, flow, scale = random_case(6, n=1, c=4, hw=(5, 6), out_hw=(5, 6))
    with torch.no_grad():
        torch.testing.assert_close(warp(feat, flow, scale), kernel.warp(feat, flow, scale), rtol=0, atol=0)


@needs_cuda
def test_rejects_mixed_or_unsupported_dtypes(kernel):
    feat, flow, scale = random_case(7, n=1, c=2, hw=(4, 4), out_hw=(4, 4))
    with pytest.raises(ValueError, match="one dtype among float32 and float16"):
        kernel.warp(feat, flow.half(), scale)
    with pytest.raises(ValueError, match="torch.float64"):
        kernel.warp(feat.double(), flow.double(), scale.double())
    assert not kernel.supports(feat, flow.half(), scale)
    assert kernel.supports(feat.half(), flow.half())
