"""The hooks a stylefw plugin implements, typed against ``stylefw.contracts``: ``register_*`` fill the registries,
``on_*`` watch runs."""

from __future__ import annotations

import pluggy

from .contracts import (BackboneFactory, LossFactory, Register, RegisterCommand, RegisterOptimizer, RunEnd, RunStart,
                        SchedulerFactory, StageStart, StepEvent)

__all__ = ["hookspec", "hookimpl", "Register"]

hookspec = pluggy.HookspecMarker("stylefw")
hookimpl = pluggy.HookimplMarker("stylefw")


@hookspec
def register_backbones(register: Register[BackboneFactory]) -> None:
    """Register feature extractors: ``register("vgg19", factory)`` once for each, with a ``BackboneFactory``."""


@hookspec
def register_losses(register: Register[LossFactory]) -> None:
    """Register loss terms: ``register("gram", factory)`` once for each, with a ``LossFactory``."""


@hookspec
def register_optimizers(register: RegisterOptimizer) -> None:
    """Register optimizers: ``register("adam", factory, resize_state=...)``, with an ``OptimizerFactory``.

    ``resize_state``, a ``ResizeState``, is optional.
    """


@hookspec
def register_schedulers(register: Register[SchedulerFactory]) -> None:
    """Register learning-rate schedules: ``register("step", factory)``, with a ``SchedulerFactory``.

    The engine calls the schedule's ``step()`` once after each optimizer step.
    """


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Add ``stylefw`` subcommands: ``register("weights", handler, help=..., configure=...)`` once for each.

    ``configure(parser)`` adds the command's arguments to its ``argparse`` parser, and ``handler(args)`` runs
    it and returns the exit code. Errors it raises are shown as the built-in commands' are: a
    ``stylefw.errors.StylefwError`` as its message, hint and exit code, anything else as exit code 1, with
    tracebacks only under ``--debug``. A name a built-in command or another plugin has is an error naming both.
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
