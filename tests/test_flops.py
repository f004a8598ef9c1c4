"""MAC counting: single layers with known counts, whole models, Table 2 of the paper, ``dff flops``."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from dff.cli import main
from dff.errors import InputSizeError
from dff.flops import PAPER_INVERSE_R, complexity_ratios, count_macs, layer_macs
from dff.models.flownet import flownet_tiny

# Each case: a layer, its input shape, and its MACs written out as
# (output or input pixels) × (input channels per group) × (output channels) × k².
SINGLE_LAYERS = {
    "conv": (nn.Conv2d(3, 8, 3, padding=1), (1, 3, 10, 12), (10 * 12) * 3 * 8 * 9),
    "strided conv": (nn.Conv2d(4, 6, 5, stride=2, padding=2), (2, 4, 9, 9), 2 * (5 * 5) * 4 * 6 * 25),
    # Dilation spreads the taps and, with matching padding, keeps the size: the cost is unchanged.
    "dilated conv": (nn.Conv2d(4, 6, 3, padding=6, dilation=6), (1, 4, 16, 8), (16 * 8) * 4 * 6 * 9),
    "grouped conv": (nn.Conv2d(8, 12, 3, padding=1, groups=4), (1, 8, 6, 6), (6 * 6) * (8 // 4) * 12 * 9),
    "1x1 conv without bias": (nn.Conv2d(16, 4, 1, bias=False), (3, 16, 5, 7), 3 * (5 * 7) * 16 * 4),
    # Transposed: every input pixel scatters C_out/groups × k² products per input channel.
    "transposed conv": (nn.ConvTranspose2d(6, 4, 4, stride=2, padding=1), (1, 6, 5, 7), (5 * 7) * 6 * 4 * 16),
    "grouped transposed conv": (nn.ConvTranspose2d(6, 4, 4, stride=2, groups=2), (1, 6, 3, 3), (3 * 3) * 6 * (4 // 2) * 16),
    "linear": (nn.Linear(10, 7), (4, 10), 4 * 10 * 7),
    "linear on a sequence": (nn.Linear(10, 7), (2, 5, 10), (2 * 5) * 10 * 7),
}


@pytest.mark.parametrize("case", SINGLE_LAYERS)
def test_single_layer_counts(case: str) -> None:
    layer, shape, expected = SINGLE_LAYERS[case]
    count = count_macs(layer, torch.randn(shape))
    assert count.total == expected
    assert [(entry.name, entry.kind) for entry in count.layers] == [("", type(layer).__name__)]


def test_conv_count_equals_the_products_of_its_im2col_matrix_product() -> None:
    # Independent of the formula: a convolution is weight (C_out, C_in·k²) @ columns (C_in·k², L).
    layer = nn.Conv2d(5, 3, 3, stride=2, padding=2, dilation=2)
    x = torch.randn(1, 5, 11, 13)
    columns = nn.functional.unfold(x, 3, dilation=2, padding=2, stride=2)
    assert count_macs(layer, x).total == layer.out_channels * columns.shape[1] * columns.shape[2]


def test_model_breakdown_names_every_call_and_skips_parameter_free_layers() -> None:
    shared = nn.Conv2d(4, 4, 3, padding=1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), shared, shared, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)
    )
    count = count_macs(model, torch.randn(1, 3, 8, 8))
    assert [entry.name for entry in count.layers] == ["0", "3", "3", "7"]
    assert [entry.kind for entry in count.layers] == ["Conv2d", "Conv2d", "Conv2d", "Linear"]
    assert count.total == 64 * 3 * 4 + 2 * (64 * 4 * 4 * 9) + 4 * 2
    assert count.under("3") == 2 * (64 * 4 * 4 * 9)
    assert count.gmacs == count.total / 1e9
    assert all(not module._forward_hooks for module in model.modules()), "count_macs must remove its hooks"


def test_meta_device_counts_equal_real_ones() -> None:
    frame = torch.randn(1, 3, 80, 112)
    real = count_macs(flownet_tiny(), frame, frame)
    with torch.device("meta"):
        meta = count_macs(flownet_tiny(), frame.to("meta"), frame.to("meta"))
    assert meta == real
    assert real.total > 0


def test_layer_macs_rejects_other_modules() -> None:
    with pytest.raises(TypeError, match="BatchNorm2d"):
        layer_macs(nn.BatchNorm2d(3), (torch.randn(1, 3, 4, 4),), torch.randn(1, 3, 4, 4))


@pytest.fixture(scope="module")
def table2() -> dict[tuple[str, str], object]:
    return {(ratio.feature, ratio.flow): ratio for ratio in complexity_ratios()}


# Section 4 and Table 2: FlowNet and FlowNet Half are published designs; Inception is only described by its cost.
TOLERANCE = {"simple": 0.05, "half": 0.05, "inception": 0.10}


@pytest.mark.parametrize("pair", PAPER_INVERSE_R)
def test_table2_is_reproduced(table2, pair: tuple[str, str]) -> None:
    ratio = table2[pair]
    assert ratio.paper_inverse_r == PAPER_INVERSE_R[pair]
    assert ratio.inverse_r == pytest.approx(ratio.feature_gmacs / ratio.flow_gmacs)
    assert abs(ratio.relative_difference) <= TOLERANCE[pair[1]], (
        f"1/r for {pair} is {ratio.inverse_r:.2f}, Table 2 says {ratio.paper_inverse_r}"
    )


def test_flow_variants_have_the_papers_relative_complexity(table2) -> None:
    # Section 4: Half is about 1/4 of FlowNet, Inception about 1/8.
    simple = table2["resnet50", "simple"].flow_gmacs
    assert table2["resnet50", "half"].flow_gmacs / simple == pytest.approx(1 / 4, rel=0.15)
    assert table2["resnet50", "inception"].flow_gmacs / simple == pytest.approx(1 / 8, rel=0.15)


def test_other_frame_sizes_have_no_paper_value_and_bad_sizes_are_rejected() -> None:
    ratios = complexity_ratios(height=256, width=512)
    assert all(ratio.paper_inverse_r is None and ratio.relative_difference is None for ratio in ratios)
    with pytest.raises(InputSizeError, match="multiples of 16"):
        complexity_ratios(height=1000, width=2048)


def test_cli_json(capsys) -> None:
    assert main(["flops", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(row["feature"], row["flow"]) for row in rows} == set(PAPER_INVERSE_R)
    for row in rows:
        assert {"feature", "flow", "feature_gmacs", "flow_gmacs", "inverse_r"} <= set(row)
        assert row["inverse_r"] == pytest.approx(row["feature_gmacs"] / row["flow_gmacs"])
        assert row["paper_inverse_r"] == PAPER_INVERSE_R[row["feature"], row["flow"]]


def test_cli_table_and_error(capsys) -> None:
    assert main(["flops"]) == 0
    out = capsys.readouterr().out
    assert "1024×2048" in out
    assert sum(line.startswith(("resnet50 ", "resnet101 ")) for line in out.splitlines()) == 6
    assert main(["flops", "--height", "100"]) == 2
    assert "multiples of 16" in capsys.readouterr().err
