"""The ``signals`` plugin: Ctrl-C (SIGINT), SIGTERM and SIGHUP stop every run in progress after its current step,
and never cut the writing of its files short.

The first signal asks each run to stop, naming the signal in the stop's details; a second one while a step
runs interrupts that step at once (a KeyboardInterrupt, which the run turns into the same stop). While a
run's files are being written (``RunControl.saving``), further signals wait until they are written, so a
second kill cannot cost the image; with ``--debug`` a second Ctrl-C aborts there too (the writes are atomic:
the previous files stay whole). Only the main thread receives signals; elsewhere this does nothing. A signal
the process started with ignored stays ignored, as the shell chose (``cmd &`` ignores SIGINT, ``nohup`` SIGHUP).
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from stylefw.contracts.run import INTERRUPTED, RunAbort, RunContext, RunEnd, RunStart
from stylefw.hooks.specs import hookimpl

__all__ = ["STOP_SIGNALS", "SignalStop"]

# the signals that stop a run cleanly: Ctrl-C, kill (docker stop, CI timeouts, schedulers) and a closed terminal
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class SignalStop:
    """The process's stop signals, handled while any run is in progress (the lanes of a batch are several)."""

    def __init__(self) -> None:
        self.runs: list[RunContext] = []
        self.received: list[str] = []
        self.previous: dict[int, Any] = {}

    def add(self, run: RunContext) -> None:
        """Watch ``run``; the first run in progress installs the handlers."""
        if threading.current_thread() is not threading.main_thread():
            return
        if not self.runs:
            self.received = []
            for number in (getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)):
                previous = signal.getsignal(number)
                if previous is not signal.SIG_IGN:
                    # None: installed from C code; put back what Python would have
                    self.previous[number] = previous if previous is not None else _default(number)
                    signal.signal(number, self.handle)
        self.runs.append(run)

    def remove(self, run: RunContext) -> None:
        """Stop watching ``run``; the last one puts the handlers back."""
        if run in self.runs:
            self.runs.remove(run)
        if not self.runs:
            for number, previous in self.previous.items():
                signal.signal(number, previous)
            self.previous = {}

    def handle(self, number: int, frame: Any) -> None:
        """The handler: the first signal stops the runs; later ones interrupt a step, or wait for the files."""
        name = signal.Signals(number).name
        self.received.append(name)
        if len(self.received) == 1:
            for run in self.runs:
                run.control.stop(INTERRUPTED, signal=name)
            return
        holding = any(run.control.holding for run in self.runs)
        debug = any(run.debug for run in self.runs)
        if not holding or (debug and number == signal.SIGINT):
            raise KeyboardInterrupt


def _default(number: int) -> Any:
    return signal.default_int_handler if number == signal.SIGINT else signal.SIG_DFL


_HANDLERS = SignalStop()


@hookimpl(tryfirst=True)
def on_run_start(event: RunStart) -> None:
    _HANDLERS.add(event.run)


@hookimpl(trylast=True)
def on_run_end(event: RunEnd) -> None:
    _HANDLERS.remove(event.run)


@hookimpl(trylast=True)
def on_run_abort(event: RunAbort) -> None:
    _HANDLERS.remove(event.run)
