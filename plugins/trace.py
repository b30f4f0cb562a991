"""The ``trace`` plugin: every step's losses as plain numbers, for the result (``Result.trace``), its sidecar and
its checkpoints.

Copying each step's loss to the host would make the CPU wait for the GPU every step; instead the losses
stay on the device and are read back every ``READ_EVERY`` steps and at the end of each stage, when the run
reads them too. The trace ends before the first non-finite loss: the run rolls its picture back to the last
step whose loss was finite; after steps that overshot, it ends at the picture the run rolled back to. A resumed
run's trace starts with the steps its checkpoint kept.
"""

from __future__ import annotations

import math
from typing import Iterable

from stylefw.contracts.run import FAILED, READ_EVERY, RunContext, RunFinish, RunStart, Step, StepEvent, step_from_dict
from stylefw.hooks.specs import hookimpl

__all__ = ["Trace", "steps_of"]

KEY = "trace"


class Trace:
    """A run's steps so far: those read back, and the events whose losses are still on the device."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: list[Step] = list(steps)
        self.pending: list[StepEvent] = []
        self.broken = False

    def add(self, event: StepEvent) -> None:
        self.pending.append(event)
        if len(self.pending) >= READ_EVERY or event.step == event.stage.steps:
            self.flush()

    def flush(self) -> list[Step]:
        """Read the pending losses back (one wait for the device) and return the whole trace, which ends before a
        non-finite loss."""
        if self.pending:
            import torch  # deferred: this module loads with every command; torch only once a run has steps

            rows = torch.stack([event.values for event in self.pending]).tolist()
            events, self.pending = self.pending, []
            for event, row in zip(events, rows):
                self.broken = self.broken or not math.isfinite(row[0])
                if not self.broken:
                    self.steps.append(event.record(row))
        return self.steps


def steps_of(run: RunContext) -> list[Step]:
    """The run's trace so far (empty when this plugin is blocked)."""
    trace = run.stash.get(KEY)
    return trace.flush() if trace is not None else []


@hookimpl(tryfirst=True)
def on_run_start(event: RunStart) -> None:
    kept = (event.run.resumed or {}).get("trace", [])
    event.run.stash[KEY] = Trace(step_from_dict(step) for step in kept)


@hookimpl(tryfirst=True)
def on_step(event: StepEvent) -> None:
    event.run.stash[KEY].add(event)


@hookimpl(tryfirst=True)
def on_run_finish(event: RunFinish) -> None:
    steps = steps_of(event.run)
    stop = event.stopped
    if stop is not None and stop.reason == FAILED:  # it ends where the picture kept was taken
        kept = stop.details["last_finite"]
        steps = [step for step in steps if (step.stage, step.step) <= (kept["stage"], kept["step"])]
    event.trace[:] = steps
