"""How a run's events reach those who watch it: the plugins' ``on_*`` hooks first, then a Python caller's own
subscribers (``stylefw.run(on_event=...)``).

The stage loop only emits; it knows none of its watchers. Everything stylefw shows or writes while a run
goes (the trace, the sidecar, snapshots, checkpoints, signals, the score, the progress display and the
preview) is a plugin on these hooks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ..contracts.run import Download, RunAbort, RunEnd, RunFinish, RunStart, Save, StageStart, Step, StepEvent
from ..hooks.manager import PluginManager
from ..hooks.specs import hookimpl

__all__ = ["HOOKS", "Watcher", "RunHooks", "step_callback"]

# each event and the hook it is passed to
HOOKS = {Download: "on_download", RunStart: "on_run_start", StageStart: "on_stage_start", StepEvent: "on_step",
         RunFinish: "on_run_finish", Save: "on_save", RunEnd: "on_run_end", RunAbort: "on_run_abort"}


class Watcher:
    """A plugin that follows a run through one method per kind of event, each a hook's; the base class ignores
    them all. Of runs that share a batch, it follows the first lane."""

    @hookimpl
    def on_run_start(self, event: RunStart) -> None:
        if not event.run.lane:
            self.run_start(event)

    @hookimpl
    def on_stage_start(self, event: StageStart) -> None:
        if not event.run.lane:
            self.stage_start(event)

    @hookimpl
    def on_step(self, event: StepEvent) -> None:
        if not event.run.lane:
            self.step(event)

    @hookimpl
    def on_run_end(self, event: RunEnd) -> None:
        if not event.run.lane:
            self.run_end(event)

    def run_start(self, event: RunStart) -> None:
        """The run starts."""

    def stage_start(self, event: StageStart) -> None:
        """A stage starts."""

    def step(self, event: StepEvent) -> None:
        """An optimizer step was taken."""

    def run_end(self, event: RunEnd) -> None:
        """The run ended."""


class RunHooks:
    """A run's emitter: each event to the plugins' hook for it, then to ``subscribers``.

    Which hooks have implementations is read once, when the run starts: a hook no plugin implements costs
    nothing per step.
    """

    def __init__(self, manager: PluginManager | None, subscribers: Iterable[Callable[[Any], None] | None] = ()) -> None:
        self.hooks = {kind: getattr(manager.hook, name) for kind, name in HOOKS.items()
                      if manager is not None and getattr(manager.hook, name).get_hookimpls()}
        self.subscribers = tuple(subscriber for subscriber in subscribers if subscriber is not None)

    def __call__(self, event: Any) -> None:
        hook = self.hooks.get(type(event))
        if hook is not None:
            hook(event=event)
        for subscriber in self.subscribers:
            subscriber(event)


def step_callback(callback: Callable[[Step], None]) -> Callable[[Any], None]:
    """A subscriber that calls ``callback(step)`` with every step as plain numbers (0.1's ``on_step``; it reads
    the device every step)."""

    def emit(event: Any) -> None:
        if isinstance(event, StepEvent):
            callback(event.record())

    return emit
