"""Typed training configurations, loaded from YAML or JSON by :func:`dff.config.load_config` (unknown keys are errors).

``dff train CONFIG`` reads a :class:`TrainConfig`, ``dff train-flow CONFIG`` a :class:`FlowTrainConfig`;
both share the fields of :class:`RunConfig`. A minimal ``dff train`` file::

    variant: frame
    iterations: 2000
    output_dir: runs/frame
    model: {feature: tiny, flow: tiny, num_classes: 4}
    data: {dataset: synthetic, synthetic: {length: 200, seed: 0}}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dff.config import ModelConfig
from dff.data.flying_shapes import FlyingShapesConfig
from dff.errors import ConfigError
from dff.train.data import TrainDataConfig
from dff.train.schedule import OptimiserConfig
from dff.train.variants import VARIANTS, VariantName


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """How long and where to train: what every training run shares."""

    iterations: int
    output_dir: str
    optimiser: OptimiserConfig = OptimiserConfig()
    #: Samples per process and iteration (the paper: one per GPU, 8 GPUs).
    batch_size: int = 1
    checkpoint_every: int = 1000
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: DataLoader worker processes per training process (0 loads in the training process).
    workers: int = 0
    #: CPU threads of each training process; None keeps torch's default (one per core). On a shared
    #: CPU, 1 avoids threads spinning while they wait for a busy core.
    threads: int | None = None

    def __post_init__(self) -> None:
        checks = {
            "iterations": self.iterations >= 0,
            "batch_size": self.batch_size >= 1,
            "checkpoint_every": self.checkpoint_every >= 1,
            "seed": self.seed >= 0,
            "workers": self.workers >= 0,
            "threads": self.threads is None or self.threads >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                "need iterations >= 0, batch_size >= 1, checkpoint_every >= 1, seed >= 0, workers >= 0, threads >= 1; got "
                + ", ".join(f"{name}={getattr(self, name)}" for name in bad)
            )

    def run_description(self) -> dict:
        """What must not change when a run is resumed: everything but the length, checkpointing, where and how fast."""
        from dff.config import to_dict

        data = to_dict(self)
        for name in ("iterations", "checkpoint_every", "device", "workers", "threads", "output_dir"):
            data.pop(name)
        return data


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """``dff train``: one variant of Table 3 on labelled video (see :mod:`dff.train.variants`)."""

    variant: VariantName
    model: ModelConfig
    data: TrainDataConfig = TrainDataConfig()
    #: Checkpoint whose N (feature_net and task_net) is the start: the *Frame* model.
    init_network: str | None = None
    #: Checkpoint whose F (flow_net) is the start: the output of ``dff train-flow``.
    init_flow: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        variant = VARIANTS[self.variant]
        for part, rule, given in (
            ("init_network", variant.network_init, self.init_network),
            ("init_flow", variant.flow_init, self.init_flow),
        ):
            if rule == "required" and given is None:
                raise ConfigError(f"variant {self.variant} ({variant.description}) needs {part}")
            if rule == "unused" and given is not None:
                raise ConfigError(f"variant {self.variant} ({variant.description}) does not use {part}; remove it")
        if not variant.trains and self.iterations != 0:
            raise ConfigError(f"variant {self.variant} trains nothing ({variant.description}): set iterations: 0")
        if variant.trains and self.iterations == 0:
            raise ConfigError(f"variant {self.variant} trains: set iterations >= 1")


@dataclass(frozen=True, kw_only=True)
class FlowTrainConfig(RunConfig):
    """``dff train-flow``: pre-train F on flying-shapes pairs; ``model`` names F's architecture and feature width."""

    model: ModelConfig
    data: FlyingShapesConfig = FlyingShapesConfig()
    #: Checkpoint to continue F's pre-training from.
    init: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.iterations == 0:
            raise ConfigError("train-flow needs iterations >= 1")
