"""Subscribers to a run's events: the loss trace, snapshots, plugin hooks, Ctrl-C, and the fan-out to all of them.

Everything that watches a run is one of these, the CLI's progress display included; the loop in
stages.py only emits. None of them reads a tensor back from the device on every step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .contracts import INTERRUPTED, RunControl, RunEnd, RunStart, StageStart, Step, StepEvent
from .errors import RunError

__all__ = ["Subscriber", "broadcast", "Trace", "StepCallback", "Snapshots", "PluginHooks", "sigint_stops",
           "snapshot_path"]


class Subscriber:
    """Receives a run's events through one method per kind; the base class ignores them all."""

    def __call__(self, event: Any) -> None:
        method = _METHODS.get(type(event))
        if method is not None:
            getattr(self, method)(event)

    def run_start(self, event: RunStart) -> None:
        """The run starts."""

    def stage_start(self, event: StageStart) -> None:
        """A stage starts."""

    def step(self, event: StepEvent) -> None:
        """An optimizer step was taken."""

    def run_end(self, event: RunEnd) -> None:
        """The run ended."""


_METHODS = {RunStart: "run_start", StageStart: "stage_start", StepEvent: "step", RunEnd: "run_end"}


def broadcast(subscribers: Iterable[Callable[[Any], None] | None]) -> Callable[[Any], None]:
    """One callable that passes each event to every subscriber, in order."""
    chosen = tuple(subscriber for subscriber in subscribers if subscriber is not None)

    def emit(event: Any) -> None:
        for subscriber in chosen:
            subscriber(event)

    return emit


class Trace(Subscriber):
    """Every step's losses as plain numbers, copied from the device in batches; a non-finite loss stops the run.

    Copying each step's loss to the host would make the CPU wait for the GPU every step; instead the losses
    are kept on the device and read back every ``every`` steps and at the end of each stage.
    """

    def __init__(self, every: int = 25) -> None:
        self.every = every
        self.steps: list[Step] = []
        self.pending: list[StepEvent] = []

    def step(self, event: StepEvent) -> None:
        self.pending.append(event)
        if len(self.pending) >= self.every or event.step == event.stage.steps:
            self.flush()

    def flush(self) -> list[Step]:
        """Read the pending losses back (one sync), check them, and return the whole trace."""
        if self.pending:
            import torch

            rows = torch.stack([event.values for event in self.pending]).tolist()
            events, self.pending = self.pending, []
            for event, row in zip(events, rows):
                _check_finite(row[0], event)
                self.steps.append(event.record(row))
        return self.steps


def _check_finite(loss: float, event: StepEvent) -> None:
    if loss != loss or loss in (float("inf"), float("-inf")):
        where = f" of stage {event.stage.index} ({event.stage.size} px)" if event.stage.count > 1 else ""
        raise RunError(f"the loss became {loss} at step {event.step}{where}", hint="lower optimizer.lr or the loss weights")


class StepCallback(Subscriber):
    """Calls ``callback(step)`` with every step as plain numbers (0.1's ``on_step``; it reads the device every step)."""

    def __init__(self, callback: Callable[[Step], None]) -> None:
        self.callback = callback

    def step(self, event: StepEvent) -> None:
        self.callback(event.record())


def snapshot_path(output: Path, step: int, stage: int | None = None) -> Path:
    """``out.000100.png`` in a single-scale run, ``out.stage2.000100.png`` in stage 2 of a multi-scale one."""
    where = f"stage{stage}." if stage is not None else ""
    return output.with_name(f"{output.stem}.{where}{step:06d}{output.suffix}")


class Snapshots(Subscriber):
    """``save_every``: writes the picture every N steps of each stage, beside the output, with its metadata."""

    def __init__(self, every: int, output: Path, save: Callable[[Any, Path], None]) -> None:
        self.every, self.output, self.save = every, output, save

    def step(self, event: StepEvent) -> None:
        if event.step % self.every == 0:
            stage = event.stage.index if event.stage.count > 1 else None
            self.save(event, snapshot_path(self.output, event.step, stage))


class PluginHooks(Subscriber):
    """Passes each event to the plugins' ``on_*`` hooks; hooks no plugin implements cost nothing per step."""

    def __init__(self, manager: Any) -> None:
        self.hooks = {name: getattr(manager.hook, name) for name in ("on_run_start", "on_stage_start", "on_step",
                                                                       "on_run_end")
                      if manager is not None and getattr(manager.hook, name).get_hookimpls()}

    def __call__(self, event: Any) -> None:
        hook = self.hooks.get(f"on_{_METHODS.get(type(event))}")
        if hook is not None:
            hook(event=event)


@contextlib.contextmanager
def sigint_stops(control: RunControl) -> Iterator[None]:
    """While inside, Ctrl-C asks the run to stop after its current step; a second Ctrl-C interrupts at once.

    Only the main thread receives signals; elsewhere this does nothing, and a KeyboardInterrupt still stops the run.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT) or signal.default_int_handler  # None: installed from C code
    if previous is signal.SIG_IGN:  # started in the background (cmd &): leave it ignored, as the user's shell did
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        control.stop(INTERRUPTED)
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
