"""The hooks a stylefw plugin implements, typed against ``stylefw.contracts``: ``register_*`` fill the registries,
``on_*`` take part in runs.

The ``on_*`` hooks are how everything that watches or extends a run is built, stylefw's own features
included: the trace, the sidecar, snapshots, checkpoints, signal handling and the score are default plugins
on these hooks (``stylefw plugins`` lists them), and the command line adds the progress display and the
preview the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from ..contracts.plugins import BackboneFactory, LossFactory, Register, RegisterCommand, RegisterOptimizer, SchedulerFactory

if TYPE_CHECKING:  # the events, for the annotations only: ``import stylefw`` does not build their records
    from ..contracts.run import Download, RunAbort, RunEnd, RunFinish, RunStart, Save, StageStart, StepEvent

__all__ = ["hookspec", "hookimpl", "Register"]

hookspec = pluggy.HookspecMarker("stylefw")
hookimpl = pluggy.HookimplMarker("stylefw")


@hookspec
def register_backbones(register: Register[BackboneFactory]) -> None:
    """Register feature extractors: ``register("mynet", factory)`` once for each, with a ``BackboneFactory``.

    ``register("mynet", factory, default=True)`` makes it the backbone of recipes that name none; one
    plugin may declare the default.
    """


@hookspec
def register_losses(register: Register[LossFactory]) -> None:
    """Register loss terms: ``register("gram", factory)`` once for each, with a ``LossFactory``."""


@hookspec
def register_optimizers(register: RegisterOptimizer) -> None:
    """Register optimizers: ``register("adam", factory, resize_state=...)``, with an ``OptimizerFactory``.

    ``resize_state``, a ``ResizeState``, is optional; ``default=True`` makes it the optimizer of recipes that
    name none.
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
def on_download(event: Download) -> None:
    """An input image is being downloaded: ``event`` has its URL and the bytes so far."""


@hookspec
def on_run_start(event: RunStart) -> None:
    """A run starts: ``event`` has its recipe, device and stages, and ``event.run``, the run's context."""


@hookspec
def on_stage_start(event: StageStart) -> None:
    """A stage starts: ``event`` has the stage (index, size, steps) and the targets at its size."""


@hookspec
def on_step(event: StepEvent) -> None:
    """An optimizer step was taken. Read ``event.loss`` or ``event.image()`` only when needed (each copies from the
    device), and call ``event.stop(reason)`` to end the run cleanly after this step."""


@hookspec
def on_run_finish(event: RunFinish) -> None:
    """The stages are over and nothing is written yet: add to ``event.metadata`` what the output should record,
    or keep ``event.state()`` to continue the run from."""


@hookspec
def on_save(event: Save) -> None:
    """``event.result`` is about to be written to ``event.path``: add files to write with it to ``event.files``."""


@hookspec
def on_run_end(event: RunEnd) -> None:
    """A run ended (finished, stopped or interrupted) and its output is written: ``event.result`` is what it
    returns."""


@hookspec
def on_run_abort(event: RunAbort) -> None:
    """A run raised ``event.error`` after it started (a plugin's bug, a full disk): it returns no result, and
    ``on_run_end`` does not follow. Let go of what the run held, as ``on_run_end`` would."""
