"""Network complexity in multiply-accumulates (MACs): the O(·) of Eq. (5)-(6) and the paper's Table 2.

:func:`count_macs` runs a model once with forward hooks on its weight layers and reads each
layer's cost from the shapes it actually saw, so the count follows the model as built, not a
table. Only ``nn.Conv2d`` (dilated and grouped included), ``nn.ConvTranspose2d`` and
``nn.Linear`` are counted: everything else (BatchNorm, activations, pooling, bilinear resizing,
concatenation, additions) is O(HWC) next to their O(HWC·C'k²), and biases are not
multiply-accumulates. Models and inputs may live on the ``meta`` device: hooks only need shapes,
so the paper's 1024×2048 frames cost no memory and no arithmetic.

Table 2 of the paper gives 1/r = O(N_feat) / O(F) (Eq. 6) for ResNet-50/101 and the three flow
networks; :func:`complexity_ratios` recomputes it from our models at the paper's sizes: N_feat
sees 1024×2048 frames (Cityscapes, Section 5.1) and F the same frames, which it halves itself
(Section 4). What the paper must have counted, found by matching its figures (all within 1.5%;
see the README section "FLOPs and Table 2"):

* ResNet-v1 as released by MSRA (the original DFF code's ``resnet_v1_101``): the stride of a
  down-sampling unit sits on its first 1×1 convolution; conv5 has stride 1 with 3×3 convolutions
  dilated by 2, and the 3×3 dilation-6 reduction to 1024 channels counts as part of N_feat.
* FlowNetS with ``conv6_1`` (present in the DFF code's FlowNet), the full refinement decoder
  (deconvolutions, flow predictions, learned flow up-sampling) and the 1×1 scale-field layer
  to 1024 channels all count as part of F.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dff.errors import InputSizeError
from dff.models.flownet import flownet_half, flownet_inception, flownet_simple
from dff.models.resnet import resnet50, resnet101

# Table 2 of the paper: 1/r for (feature network, flow network).
PAPER_INVERSE_R: dict[tuple[str, str], float] = {
    ("resnet50", "simple"): 9.20,
    ("resnet50", "half"): 33.56,
    ("resnet50", "inception"): 68.97,
    ("resnet101", "simple"): 12.71,
    ("resnet101", "half"): 46.30,
    ("resnet101", "inception"): 95.24,
}

#: The frame size Table 2 refers to: Cityscapes frames, shorter side 1024 (Section 5.1).
PAPER_FRAME_SIZE = (1024, 2048)


@dataclass(frozen=True)
class LayerMACs:
    """One weight layer's multiply-accumulates in one forward pass."""

    name: str
    kind: str
    macs: int


@dataclass(frozen=True)
class MACCount:
    """A model's multiply-accumulates, layer by layer in the order they ran."""

    layers: tuple[LayerMACs, ...]

    @property
    def total(self) -> int:
        return sum(layer.macs for layer in self.layers)

    @property
    def gmacs(self) -> float:
        return self.total / 1e9

    def under(self, prefix: str) -> int:
        """MACs of the layers whose module path is ``prefix`` or starts with ``prefix.``."""
        return sum(layer.macs for layer in self.layers if layer.name == prefix or layer.name.startswith(prefix + "."))


def layer_macs(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> int:
    """MACs of one call of a Conv2d, ConvTranspose2d or Linear, from the shapes of its input and output."""
    if isinstance(module, nn.ConvTranspose2d):
        # Every input pixel scatters a k×k×(C_out/groups) patch for each of its C_in channels.
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return inputs[0].numel() * (module.out_channels // module.groups) * kernel
    if isinstance(module, nn.Conv2d):
        # Every output value is a dot product over (C_in/groups)·k² inputs; dilation spreads, not adds, taps.
        kernel = module.kernel_size[0] * module.kernel_size[1]
        return output.numel() * (module.in_channels // module.groups) * kernel
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    raise TypeError(f"layer_macs counts Conv2d, ConvTranspose2d and Linear, got {type(module).__name__}")


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> MACCount:
    """Run ``model(*inputs)`` once without gradients and return the MACs of every weight layer it called."""
    layers: list[LayerMACs] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        layers.append(LayerMACs(name=names[module], kind=type(module).__name__, macs=layer_macs(module, args, output)))

    handles = [
        module.register_forward_hook(record)
        for module in model.modules()
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return MACCount(layers=tuple(layers))


@dataclass(frozen=True)
class ComplexityRatio:
    """Eq. (6) for one pair of networks: 1/r = O(N_feat) / O(F), next to the paper's Table 2 value."""

    feature: str
    flow: str
    feature_gmacs: float
    flow_gmacs: float
    paper_inverse_r: float | None

    @property
    def inverse_r(self) -> float:
        return self.feature_gmacs / self.flow_gmacs

    @property
    def relative_difference(self) -> float | None:
        """(ours - paper) / paper, or None where the paper has no value."""
        if self.paper_inverse_r is None:
            return None
        return (self.inverse_r - self.paper_inverse_r) / self.paper_inverse_r


def complexity_ratios(*, height: int = PAPER_FRAME_SIZE[0], width: int = PAPER_FRAME_SIZE[1]) -> list[ComplexityRatio]:
    """1/r of Eq. (6) for ResNet-50/101 × FlowNet Simple/Half/Inception on ``height`` × ``width`` frames.

    The models are built on the ``meta`` device: nothing is allocated or computed.
    """
    if not (height > 0 and width > 0 and height % 16 == 0 and width % 16 == 0):
        raise InputSizeError(
            f"frame height and width must be positive multiples of 16, got {height}×{width} (Table 2 uses 1024×2048)"
        )
    features = {"resnet50": resnet50, "resnet101": resnet101}
    flows = {"simple": flownet_simple, "half": flownet_half, "inception": flownet_inception}
    frame = torch.empty(1, 3, height, width, device="meta")
    with torch.device("meta"):
        feature_gmacs = {name: count_macs(build(), frame).gmacs for name, build in features.items()}
        flow_gmacs = {name: count_macs(build(), frame, frame).gmacs for name, build in flows.items()}
    at_paper_size = (height, width) == PAPER_FRAME_SIZE
    return [
        ComplexityRatio(
            feature=feature,
            flow=flow,
            feature_gmacs=feature_gmacs[feature],
            flow_gmacs=flow_gmacs[flow],
            paper_inverse_r=PAPER_INVERSE_R[feature, flow] if at_paper_size else None,
        )
        for feature in features
        for flow in flows
    ]
