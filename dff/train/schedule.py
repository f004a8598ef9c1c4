"""SGD with the paper's two-step learning rate.

Section 5.1: 20K iterations at learning rate 10^-3 for the first 15K and 10^-4 for the last 5K;
``lr_step`` is the iteration of the drop, 3/4 of the run when unset. Momentum 0.9 and weight
decay 5e-4 are the usual settings of the paper's DeepLab and R-FCN baselines.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dff.errors import ConfigError


@dataclass(frozen=True)
class OptimiserConfig:
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    #: Iteration from which the learning rate is ``lr * lr_factor``; None: 3/4 of the iterations.
    lr_step: int | None = None
    lr_factor: float = 0.1

    def __post_init__(self) -> None:
        if not (self.lr > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0 and 0 < self.lr_factor <= 1):
            raise ConfigError(
                "optimiser needs lr > 0, 0 <= momentum < 1, weight_decay >= 0 and 0 < lr_factor <= 1; got "
                f"lr={self.lr}, momentum={self.momentum}, weight_decay={self.weight_decay}, lr_factor={self.lr_factor}"
            )
        if not (self.lr_step is None or self.lr_step >= 0):
            raise ConfigError(f"lr_step must be >= 0 or unset, got {self.lr_step}")

    def learning_rate(self, iteration: int, iterations: int) -> float:
        """The learning rate of 0-based ``iteration`` in a run of ``iterations``."""
        step = self.lr_step if self.lr_step is not None else (3 * iterations) // 4
        return self.lr if iteration < step else self.lr * self.lr_factor


def make_sgd(parameters: list[torch.nn.Parameter], config: OptimiserConfig) -> torch.optim.SGD:
    return torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
