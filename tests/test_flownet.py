"""Flow network F: shapes, strides, initial fields, gradients, input checks and ONNX export."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dff.errors import InputSizeError
from dff.models.flownet import (
    FlowNet,
    InceptionBlock,
    flownet_half,
    flownet_inception,
    flownet_simple,
    flownet_tiny,
)

# Multiples of 16: square, not multiples of 128 (odd encoder sizes), and a wide frame.
SIZES = [(64, 64), (80, 112), (128, 192)]
BUILDERS = {"simple": flownet_simple, "half": flownet_half, "inception": flownet_inception, "tiny": flownet_tiny}


@pytest.fixture(scope="module")
def nets() -> dict[str, FlowNet]:
    torch.manual_seed(0)
    return {name: build().eval() for name, build in BUILDERS.items()}


def _perturb_heads(net: FlowNet) -> None:
    """Give the zero-initialised output layers random weights so M and S depend on the frames."""
    with torch.no_grad():
        for layer in (net.decoder[-1].predict_flow, net.scale):
            layer.weight.normal_(0, 0.05)


def _frames(n: int, height: int, width: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, height, width, generator=generator), torch.randn(n, 3, height, width, generator=generator)


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("size", SIZES)
def test_outputs_are_on_the_feature_grid(nets: dict[str, FlowNet], name: str, size: tuple[int, int]) -> None:
    net = nets[name]
    key, current = _frames(2, *size)
    with torch.no_grad():
        flow, scale = net(key, current)
    grid = (size[0] // 16, size[1] // 16)
    assert net.feature_stride == 16
    assert flow.shape == (2, 2, *grid)
    assert scale.shape == (2, net.feature_channels, *grid)
    # Section 3: the scale field starts at exactly one; our flow head starts at exactly zero.
    assert torch.equal(scale, torch.ones_like(scale))
    assert torch.equal(flow, torch.zeros_like(flow))


def test_feature_stride_8_keeps_the_last_prediction_unhalved() -> None:
    torch.manual_seed(0)
    net16, net8 = flownet_tiny(), flownet_tiny(feature_stride=8)
    _perturb_heads(net16)
    net8.load_state_dict(net16.state_dict())  # same weights: only the final halving differs
    key, current = _frames(1, 80, 112)
    with torch.no_grad():
        (flow16, scale16), (flow8, scale8) = net16(key, current), net8(key, current)
    assert flow8.shape == (1, 2, 10, 14) and scale8.shape == (1, 32, 10, 14)
    torch.testing.assert_close(F.interpolate(flow8, scale_factor=0.5, mode="bilinear", align_corners=False), flow16)
    with pytest.raises(ValueError, match="feature_stride must be one of \\[8, 16\\], got 32"):
        flownet_tiny(feature_stride=32)


def test_feature_channels_sets_the_scale_field_width() -> None:
    assert flownet_simple().feature_channels == 1024
    assert flownet_tiny().feature_channels == 32
    net = flownet_tiny(feature_channels=12)
    _, scale = net(*_frames(1, 64, 64))
    assert scale.shape[1] == 12


def test_gradients_reach_every_parameter_and_both_frames() -> None:
    torch.manual_seed(1)
    net = flownet_tiny()
    _perturb_heads(net)
    key, current = _frames(2, 80, 112)
    key.requires_grad_(True)
    current.requires_grad_(True)
    flow, scale = net(key, current)
    (flow.square().sum() + (scale * torch.randn_like(scale)).sum()).backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"
    assert key.grad.abs().sum() > 0 and current.grad.abs().sum() > 0


def test_flow_depends_on_the_frame_order() -> None:
    torch.manual_seed(2)
    net = flownet_tiny().eval()
    _perturb_heads(net)
    key, current = _frames(1, 64, 64)
    with torch.no_grad():
        forward_flow, _ = net(key, current)
        swapped_flow, _ = net(current, key)
    assert not torch.allclose(forward_flow, swapped_flow)


def test_scale_layer_commutes_with_the_bilinear_resize() -> None:
    # Why S is computed after the resize (4× cheaper): a 1×1 convolution commutes with bilinear halving.
    torch.manual_seed(3)
    net = flownet_tiny()
    _perturb_heads(net)
    x = torch.randn(2, net.scale.in_channels, 20, 28)
    with torch.no_grad():
        before = F.interpolate(net.scale(x), scale_factor=0.5, mode="bilinear", align_corners=False)
        after = net.scale(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [(10, 14), (5, 7)])
def test_inception_block_shapes(stride: int, size: tuple[int, int]) -> None:
    block = InceptionBlock(in_channels=8, branch_channels=(4, 6, 2), reduce_channels=(3, 1), stride=stride)
    out = block(torch.randn(1, 8, *size))
    expected = tuple(-(-s // stride) for s in size)  # ceil: every branch pads like its 3×3 convolutions
    assert block.out_channels == 12
    assert out.shape == (1, 12, *expected)


def test_frames_of_wrong_size_are_rejected_with_the_fix() -> None:
    net = flownet_tiny()
    with pytest.raises(InputSizeError, match="multiple of 16"):
        net(*_frames(1, 72, 64))
    with pytest.raises(InputSizeError, match="multiple of 16"):
        net(*_frames(1, 64, 72))
    key, _ = _frames(1, 64, 64)
    with pytest.raises(ValueError, match="one shape"):
        net(key, torch.randn(1, 3, 64, 80))
    with pytest.raises(ValueError, match="one shape"):
        net(torch.randn(1, 4, 64, 64), torch.randn(1, 4, 64, 64))


def test_constructor_checks_its_arguments() -> None:
    stages = list(flownet_tiny().encoder)
    with pytest.raises(ValueError, match="5 encoder stages"):
        FlowNet(encoder=stages[:4], encoder_channels=(16, 16, 24, 24, 32), decoder_channels=(16, 16, 8, 8), feature_channels=8)
    with pytest.raises(ValueError, match="4 decoder widths"):
        FlowNet(encoder=stages, encoder_channels=(16, 16, 24, 24, 32), decoder_channels=(16, 16, 8), feature_channels=8)
    with pytest.raises(ValueError, match="feature_channels"):
        FlowNet(encoder=stages, encoder_channels=(16, 16, 24, 24, 32), decoder_channels=(16, 16, 8, 8), feature_channels=0)


def test_onnx_export_with_dynamic_size_matches_torch(tmp_path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(4)
    net = flownet_tiny().eval()
    _perturb_heads(net)
    path = tmp_path / "flownet_tiny.onnx"
    dynamic = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter announces its successor
        torch.onnx.export(
            net,
            _frames(1, 64, 64),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["key", "current"],
            output_names=["flow", "scale"],
            dynamic_axes={"key": dynamic, "current": dynamic, "flow": dynamic, "scale": dynamic},
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, height, width in [(2, 80, 112), (1, 128, 192)]:
        key, current = _frames(n, height, width, seed=height)
        with torch.no_grad():
            expected = net(key, current)
        got = session.run(["flow", "scale"], {"key": key.numpy(), "current": current.numpy()})
        for ours, theirs in zip(got, expected):
            assert ours.shape == tuple(theirs.shape)
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)
