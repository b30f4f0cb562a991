"""Fixtures shared by several test files."""

from __future__ import annotations

import signal

import pytest

pytest_plugins = ["pytester"]  # tests/test_regress.py runs pytest itself, with stylefw's plugin


@pytest.fixture
def default_signal_handlers():
    """SIGINT, SIGTERM and SIGHUP as a terminal gives them, whatever this test process inherited.

    A run leaves a signal its process started with ignored alone (so that ``nohup`` keeps working); a suite
    started under ``nohup``, or in the background of a script, inherits ignored SIGHUP or SIGINT, and the tests
    that send those signals would then see nothing happen.
    """
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                signal.SIGHUP: signal.SIG_DFL}
    inherited = {number: signal.getsignal(number) for number in defaults}
    for number, handler in defaults.items():
        signal.signal(number, handler)
    yield
    for number, handler in inherited.items():
        signal.signal(number, handler)
