"""Learning-rate schedules: none (constant), step, exponential and cosine, stepped once per optimizer step."""

from __future__ import annotations

import math
from typing import Annotated

import torch
from torch.optim.lr_scheduler import ExponentialLR, LambdaLR, LRScheduler, StepLR

from stylefw import hookimpl
from stylefw.markers import Range

__all__ = ["Constant", "constant", "step", "exponential", "cosine"]

# a factor above 1 compounds into a diverging rate (1.05 per step is 4e10 times after 500 steps)
Decay = Annotated[float, Range(0, 1, low_open=True)]


class Constant:
    """A schedule that leaves every learning rate as the optimizer was built with."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer

    def step(self) -> None:
        """Nothing to change."""


def constant(optimizer: torch.optim.Optimizer, *, total_steps: int) -> Constant:
    """Constant learning rate, the same as no schedule."""
    return Constant(optimizer)


def step(optimizer: torch.optim.Optimizer, *, total_steps: int, every: Annotated[int, Range(1)],
         gamma: Decay = 0.1) -> LRScheduler:
    """Multiply the learning rate by gamma every N steps."""
    if every < 1:
        raise ValueError(f"every must be 1 or more, not {every!r}")
    return StepLR(optimizer, step_size=every, gamma=_decay(gamma))


def exponential(optimizer: torch.optim.Optimizer, *, total_steps: int, gamma: Decay) -> LRScheduler:
    """Multiply the learning rate by gamma after every step."""
    return ExponentialLR(optimizer, gamma=_decay(gamma))


def cosine(optimizer: torch.optim.Optimizer, *, total_steps: int,
           floor: Annotated[float, Range(0, 1)] = 0.0) -> LRScheduler:
    """Cosine annealing from the learning rate down to floor times it over the run's steps."""
    if not 0.0 <= floor <= 1.0:
        raise ValueError(f"floor is a fraction of the starting learning rate: use 0 to 1, not {floor!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be 1 or more, not {total_steps!r}")

    # Loshchilov & Hutter's SGDR curve, without restarts: held at the floor if stepped past the end
    def factor(done: int) -> float:
        return floor + (1.0 - floor) * (1.0 + math.cos(math.pi * min(done, total_steps) / total_steps)) / 2.0

    return LambdaLR(optimizer, factor)


def _decay(gamma: float) -> float:
    # validation checks recipes against Decay; this guards Python callers
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must be above 0 and at most 1, not {gamma!r}")
    return gamma


@hookimpl
def register_schedulers(register) -> None:
    """The built-in learning-rate schedules."""
    register("none", constant)
    register("step", step)
    register("exponential", exponential)
    register("cosine", cosine)
