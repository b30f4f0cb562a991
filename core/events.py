"""Subscribers to a run's events: the loss trace, snapshots, plugin hooks, signals, and the fan-out to all of them.

Everything that watches a run is one of these, the CLI's progress display included; the loop in
stages.py only emits. None of them reads a tensor back from the device on every step.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from .contracts import INTERRUPTED, RunControl, RunEnd, RunStart, StageStart, Step, StepEvent

__all__ = ["Subscriber", "broadcast", "Trace", "StepCallback", "Snapshots", "PluginHooks", "SignalStop",
           "STOP_SIGNALS", "snapshot_path"]


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
    """Every step's losses as plain numbers, copied from the device in batches, up to the first non-finite one.

    Copying each step's loss to the host would make the CPU wait for the GPU every step; instead the losses
    are kept on the device and read back every ``every`` steps and at the end of each stage.
    """

    def __init__(self, every: int = 25) -> None:
        self.every = every
        self.steps: list[Step] = []
        self.pending: list[StepEvent] = []
        self.broken = False

    def step(self, event: StepEvent) -> None:
        self.pending.append(event)
        if len(self.pending) >= self.every or event.step == event.stage.steps:
            self.flush()

    def flush(self) -> list[Step]:
        """Read the pending losses back (one sync) and return the whole trace, which ends before a non-finite loss.

        The run rolls the image back to the last step with a finite loss, so the steps from there on are dropped.
        """
        if self.pending:
            import torch

            rows = torch.stack([event.values for event in self.pending]).tolist()
            events, self.pending = self.pending, []
            for event, row in zip(events, rows):
                self.broken = self.broken or not math.isfinite(row[0])
                if not self.broken:
                    self.steps.append(event.record(row))
        return self.steps


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


# the signals that stop a run cleanly: Ctrl-C, kill (docker stop, CI timeouts, schedulers) and a closed terminal
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class SignalStop:
    """While inside, SIGINT, SIGTERM and SIGHUP stop the run after its current step, and never cut a save short.

    The first signal asks the run to stop, naming the signal in the stop's details; a second one while a
    step runs interrupts that step at once (a KeyboardInterrupt, which the driver turns into the same stop).
    Inside ``saving()`` further signals wait until the output is written, so a second kill cannot cost the
    image; with ``debug`` a second Ctrl-C aborts there too (the write is atomic: the previous output stays
    whole). Only the main thread receives signals; elsewhere this does nothing. A signal the process
    started with ignored stays ignored, as the shell chose (``cmd &`` ignores SIGINT, ``nohup`` SIGHUP).
    """

    def __init__(self, control: RunControl, *, debug: bool = False) -> None:
        self.control, self.debug = control, debug
        self.received: list[str] = []
        self.holding = False
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "SignalStop":
        if threading.current_thread() is threading.main_thread():
            for number in (getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)):
                previous = signal.getsignal(number)
                if previous is not signal.SIG_IGN:
                    # None: installed from C code; put back what Python would have
                    self.previous[number] = previous if previous is not None else _default(number)
                    signal.signal(number, self.handle)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for number, previous in self.previous.items():
            signal.signal(number, previous)
        self.previous = {}

    def handle(self, number: int, frame: Any) -> None:
        """The handler: the first signal stops the run; later ones interrupt a step, or wait for the save."""
        name = signal.Signals(number).name
        self.received.append(name)
        if len(self.received) == 1:
            self.control.stop(INTERRUPTED, signal=name)
        elif not self.holding or (self.debug and number == signal.SIGINT):
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """While inside, signals only stop the run: the output being written is finished first."""
        self.holding = True
        try:
            yield
        finally:
            self.holding = False


def _default(number: int) -> Any:
    return signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL
