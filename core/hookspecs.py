"""The hooks a stylefw plugin implements; each receives a ``register(name, factory)`` callback."""

from __future__ import annotations

from typing import Any, Callable

import pluggy

__all__ = ["hookspec", "hookimpl", "Register"]

hookspec = pluggy.HookspecMarker("stylefw")
hookimpl = pluggy.HookimplMarker("stylefw")

Register = Callable[[str, Any], None]


@hookspec
def register_backbones(register: Register) -> None:
    """Register feature extractors: ``register("vgg19", factory)``; factories expose ``layer_names``."""


@hookspec
def register_losses(register: Register) -> None:
    """Register loss terms: ``register("gram", factory)``; factories take the recipe entry's keys."""


@hookspec
def register_optimizers(register: Register) -> None:
    """Register optimizers: ``register("adam", factory)``; ``factory(params, **kwargs)`` returns one."""


@hookspec
def register_schedulers(register: Register) -> None:
    """Register learning-rate schedules: ``register("step", factory)``; factories return an object with ``step()``.

    ``factory(optimizer, *, total_steps, **options)`` gets the built optimizer, the run's number of steps and
    the recipe's ``optimizer.schedule`` keys other than ``name``; a ``torch.optim.lr_scheduler.LRScheduler``
    qualifies. The engine calls ``step()`` once after each optimizer step.
    """
