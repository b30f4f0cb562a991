"""The hooks a stylefw plugin implements: ``register_*`` get a ``register(name, factory)`` callback; ``on_*`` watch runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from .contracts import RunEnd, RunStart, StageStart, StepEvent

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


@hookspec
def on_run_start(event: RunStart) -> None:
    """A run starts: ``event`` has its recipe, device and stages."""


@hookspec
def on_stage_start(event: StageStart) -> None:
    """A stage starts: ``event`` has the stage (index, size, steps) and the targets at its size."""


@hookspec
def on_step(event: StepEvent) -> None:
    """An optimizer step was taken. Read ``event.loss`` or ``event.image()`` only when needed (each copies from the
    device), and call ``event.stop(reason)`` to end the run cleanly after this step."""


@hookspec
def on_run_end(event: RunEnd) -> None:
    """A run ended (finished, stopped or interrupted): ``event.result`` is the Result it returns."""
