"""Shapes and strides of N_feat and N_task, the wiring of DeepFeatureFlow, and allowed frame sizes."""

import pytest
import torch

from dff.config import ModelConfig
from dff.errors import InputSizeError
from dff.frames import check_frame_size, feature_size, round_to_stride
from dff.models import build_model, resnet50, resnet101, resnet_small, resnet_tiny
from dff.models.preprocess import FrameNormalizer
from dff.models.resnet import FrozenBatchNorm2d
from dff.models.task import SegmentationTaskNet


@pytest.mark.parametrize("size", [(64, 64), (80, 112), (128, 192), (96, 208)])
@pytest.mark.parametrize("builder", [resnet_tiny, resnet_small])
def test_small_feature_nets_have_stride_16(builder, size):
    net = builder(out_channels=24).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *size))
    assert out.shape == (2, 24, size[0] // 16, size[1] // 16)
    assert (out >= 0).all()  # the head ends with ReLU


@pytest.mark.parametrize("builder, units", [(resnet50, (3, 4, 6, 3)), (resnet101, (3, 4, 23, 3))])
def test_resnet_depth_stride_and_dilation(builder, units):
    net = builder()
    assert tuple(len(s) for s in (net.conv2, net.conv3, net.conv4, net.conv5)) == units
    # conv5: stride 1 everywhere, every 3×3 dilated by 2; the head is a 3×3 dilated by 6 to 1024 (Section 4).
    assert all(u.conv1.stride == (1, 1) and u.conv2.dilation == (2, 2) for u in net.conv5)
    assert net.conv3[0].conv1.stride == (2, 2) and net.conv3[0].conv2.stride == (1, 1)  # ResNet-v1: stride on the 1×1
    head = net.head[0]
    assert (head.out_channels, head.kernel_size, head.dilation) == (1024, (3, 3), (6, 6))
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, 64, 96)).shape == (1, 1024, 4, 6)


def test_output_stride_8_dilates_conv4_with_the_same_weights():
    torch.manual_seed(0)
    net16, net8 = resnet_tiny(), resnet_tiny(output_stride=8)
    # Same parameters by name and shape: the holing algorithm moves strides into dilations, it adds no weights.
    assert {n: p.shape for n, p in net16.named_parameters()} == {n: p.shape for n, p in net8.named_parameters()}
    assert net8.conv4[0].conv1.stride == (1, 1) and net8.conv4[0].conv2.dilation == (2, 2)
    assert net8.conv5[0].conv2.dilation == (4, 4) and net8.conv3[0].conv1.stride == (2, 2)
    assert (net16.stride, net8.stride) == (16, 8)
    with torch.no_grad():
        assert net8.eval()(torch.randn(1, 3, 64, 96)).shape == (1, 32, 8, 12)
    with pytest.raises(ValueError, match="output_stride must be one of \\[8, 16\\], got 4"):
        resnet_tiny(output_stride=4)


def test_frozen_bn_has_no_trainable_norm_parameters():
    net = resnet_tiny(frozen_bn=True)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    trainable = {n for n, p in net.named_parameters()}
    assert not any(".bn" in n or "stem.1" in n for n in trainable)


def test_task_net_scores_and_probabilities():
    task = SegmentationTaskNet(in_channels=8, num_classes=5)
    feat = torch.randn(2, 8, 4, 6)
    assert task(feat).shape == (2, 5, 4, 6)
    probs = task.probabilities(feat, (64, 96))
    assert probs.shape == (2, 5, 64, 96)
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 64, 96))


def test_deep_feature_flow_pair_forward_and_key_path():
    torch.manual_seed(0)
    model = build_model(ModelConfig(feature="tiny", flow="tiny", num_classes=5)).eval()
    key, cur = torch.randn(2, 3, 64, 96), torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        f_k = model.key(key)
        assert f_k.shape == (2, 32, 4, 6)
        f_i = model.propagate(f_k, key, cur)
        assert f_i.shape == f_k.shape
        y = model.forward_pair(key, cur)
        torch.testing.assert_close(y, model.task(f_i))
        # i == k: no propagation, the key features are used as they are (Section 3).
        same = torch.tensor([True, False])
        mixed = model.forward_pair(key, cur, same)
        torch.testing.assert_close(mixed[0], model.task(f_k)[0])
        torch.testing.assert_close(mixed[1], y[1])
        torch.testing.assert_close(model.forward_pair(key, key, torch.tensor([True, True])), model.task(f_k))


def test_parts_must_agree_on_feature_width():
    from dff.models import DeepFeatureFlow, flownet_tiny

    with pytest.raises(ValueError, match="32 channels but feature_net gives 16"):
        DeepFeatureFlow(
            feature_net=resnet_tiny(out_channels=16),
            flow_net=flownet_tiny(feature_channels=16),
            task_net=SegmentationTaskNet(in_channels=32, num_classes=3),
        )


def test_frame_normalizer_layouts_agree():
    rgb = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    bgr_nhwc = rgb.flip(1).permute(0, 2, 3, 1)
    mean, std = (120.0, 110.0, 100.0), (50.0, 60.0, 70.0)
    a = FrameNormalizer(mean=mean, std=std)(rgb)
    b = FrameNormalizer(mean=mean, std=std, layout="nhwc_bgr")(bgr_nhwc)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0, 2, 0, 0], (rgb[0, 2, 0, 0].float() - 100.0) / 70.0)


@pytest.mark.parametrize("size", [(64, 64), (1024, 2048), (368, 480)])
def test_allowed_sizes(size):
    check_frame_size(*size)
    assert feature_size(*size) == (size[0] // 16, size[1] // 16)


@pytest.mark.parametrize("size, nearest", [((360, 480), (352, 480)), ((100, 64), (96, 64)), ((48, 128), (64, 128))])
def test_disallowed_sizes_name_the_rule_and_the_fix(size, nearest):
    with pytest.raises(InputSizeError, match="multiples of 16") as info:
        check_frame_size(*size)
    assert f"{nearest[0]}x{nearest[1]}" in str(info.value)
    assert round_to_stride(*size) == nearest
