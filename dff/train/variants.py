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


@dataclass(frozen=True)
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
        Variant("frame", False, True, False, "optional", "unused", "N trained on single frames (Fig. 2a); no flow network"),
        Variant("dff", True, True, True, "optional", "optional", "N and F trained end to end on frame pairs (Fig. 2b)"),
        Variant("dff-fix-n", True, False, True, "required", "optional", "N from Frame, then fixed; F trained on pairs"),
        Variant("dff-fix-f", True, True, False, "optional", "required", "F from flow pre-training, then fixed; N trained on pairs"),
        Variant("dff-separate", True, False, False, "required", "required", "N from Frame and F from flow pre-training, no joint training"),
    )
}
