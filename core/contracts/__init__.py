"""The floor of stylefw: the vocabulary plugins, recipes and runs share, as Protocols and frozen records.

- :mod:`~stylefw.contracts.plugins`: what a plugin implements (backbones, losses, optimizers, schedules,
  commands) and the ``Targets`` a loss is prepared with;
- :mod:`~stylefw.contracts.recipe`: a validated ``Recipe`` and its parts;
- :mod:`~stylefw.contracts.scales`: the stages a recipe renders at;
- :mod:`~stylefw.contracts.run`: what a run passes around, the events its plugins see, and its ``Result``.

Everything above imports from here; this imports nothing of stylefw's but these modules, and no torch. The
names below load their module on first use, so that a plugin importing one module of records does not pay
for the others' (start-up time: each frozen record costs its class a little to build).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:  # the names below, for type checkers and editors
    from .plugins import (READS, Backbone, BackboneFactory, CommandHandler, ConfigureCommand, Loss, LossFactory,
                          OptimizerFactory, Register, RegisterCommand, RegisterOptimizer, ResizeState, Scheduler,
                          SchedulerFactory, Targets)
    from .recipe import BackboneSpec, ColorSpec, ImageRef, LossSpec, OptimizerSpec, Recipe, ScheduleSpec, TileSpec
    from .run import (FAILED, INTERRUPTED, READ_EVERY, Download, Event, OnEvent, Result, RunAbort, RunContext,
                      RunControl, RunEnd, RunFinish, RunStart, Save, Stage, StageStart, Step, StepEvent, Stop, Term)

_MODULES = {
    "plugins": ["Backbone", "BackboneFactory", "Loss", "LossFactory", "OptimizerFactory", "ResizeState", "Scheduler",
                "SchedulerFactory", "CommandHandler", "ConfigureCommand", "Register", "RegisterOptimizer",
                "RegisterCommand", "Targets", "READS"],
    "run": ["Term", "Step", "Stage", "Stop", "RunControl", "RunContext", "RunStart", "StageStart", "StepEvent",
            "RunFinish", "Save", "Download", "RunEnd", "RunAbort", "Result", "Event", "OnEvent", "INTERRUPTED", "FAILED",
            "READ_EVERY"],
    "recipe": ["Recipe", "ImageRef", "BackboneSpec", "LossSpec", "OptimizerSpec", "ScheduleSpec", "ColorSpec",
               "TileSpec"],
}

__all__ = [name for names in _MODULES.values() for name in names]
__getattr__, __dir__ = lazy_names(__name__, globals(), _MODULES)
