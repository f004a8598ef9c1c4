"""The training variants of Table 3: what each starts from, what it trains, what it keeps fixed.

N is the image recognition network N_task ∘ N_feat, F the flow network. Where the paper starts N
from ImageNet pre-training, we start it from the *Frame* model (``init_network``): we have no
ImageNet model for the tiny networks, every variant then starts from the same N, and DFF's
difference from *DFF fix N* is exactly the joint fine-tuning. F starts from flow pre-training
(``dff train-flow``, our Flying Chairs: ``init_flow``). Left unset, an optional start is the random
initialisation, under which F predicts zero flow and scale one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

VariantName = Literal["frame", "dff", "dff-fix-n", "dff-fix-f", "dff-separate"]


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One row of Table 3."""

    name: str
    #: Trained on pairs (I_k, I_i), 0 ≤ i − k ≤ max_offset (Fig. 2b), rather than single frames (Fig. 2a).
    pairs: bool
    train_network: bool
    train_flow: bool
    #: Whether the variant uses, and whether it needs, a start for N and for F.
    network_init: Literal["required", "optional"]
    flow_init: Literal["required", "optional", "unused"]
    #: Table 3's description.
    description: str

    @property
    def trains(self) -> bool:
        return self.train_network or self.train_flow


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            name="frame", pairs=False, train_network=True, train_flow=False, network_init="optional", flow_init="unused",
            description="N trained on single frames (Fig. 2a); no flow network",
        ),
        Variant(
            name="dff", pairs=True, train_network=True, train_flow=True, network_init="optional", flow_init="optional",
            description="N and F trained end to end on frame pairs (Fig. 2b)",
        ),
        Variant(
            name="dff-fix-n", pairs=True, train_network=False, train_flow=True, network_init="required", flow_init="optional",
            description="N from Frame, then fixed; F trained on pairs",
        ),
        Variant(
            name="dff-fix-f", pairs=True, train_network=True, train_flow=False, network_init="optional", flow_init="required",
            description="F from flow pre-training, then fixed; N trained on pairs",
        ),
        Variant(
            name="dff-separate", pairs=True, train_network=False, train_flow=False, network_init="required", flow_init="required",
            description="N from Frame and F from flow pre-training, no joint training",
        ),
    )
}  # fmt: skip
