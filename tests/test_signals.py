"""SIGINT, SIGTERM and SIGHUP: a clean stop with the image written, 128 + the signal's number, and saves that a
second signal cannot cut short."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from PIL import Image

from stylefw.contracts import INTERRUPTED, RunContext, RunControl
from stylefw.plugins.signals import SignalStop

from test_stages import recipe

pytestmark = [pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning"),  # random weights, on purpose
              pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
              pytest.mark.usefixtures("default_signal_handlers")]


# -- the handler, in this process ---------------------------------------------------------------


def a_run(*, debug: bool = False) -> RunContext:
    return RunContext(None, "cpu", (), RunControl(), debug=debug)


@contextlib.contextmanager
def watched(*runs: RunContext) -> Iterator[SignalStop]:
    """The signals plugin's handlers, watching ``runs`` for the duration, as it does between a run's start and end."""
    stop = SignalStop()
    for run in runs:
        stop.add(run)
    try:
        yield stop
    finally:
        for run in runs:
            stop.remove(run)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_the_first_signal_stops_the_run_and_names_itself(name):
    run = a_run()
    with watched(run):
        os.kill(os.getpid(), getattr(signal, name))
    assert (run.control.reason, run.control.details) == (INTERRUPTED, {"signal": name})


def test_the_first_signal_stops_every_run_in_progress():
    lanes = [a_run(), a_run()]
    with watched(*lanes):
        os.kill(os.getpid(), signal.SIGTERM)
    assert [run.control.reason for run in lanes] == [INTERRUPTED, INTERRUPTED]


def test_a_second_signal_interrupts_a_step_but_waits_for_a_save():
    run = a_run()
    with watched(run):
        os.kill(os.getpid(), signal.SIGTERM)
        with run.control.saving():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)  # no --debug: Ctrl-C waits too
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGHUP)
    assert run.control.details == {"signal": "SIGTERM"}  # the first reason is kept


def test_with_debug_a_second_ctrl_c_aborts_even_a_save():
    run = a_run(debug=True)
    with watched(run):
        os.kill(os.getpid(), signal.SIGINT)
        with pytest.raises(KeyboardInterrupt), run.control.saving():
            os.kill(os.getpid(), signal.SIGINT)


def test_handlers_are_put_back_and_an_ignored_signal_stays_ignored():
    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup leaves it
    try:
        with watched(a_run(), a_run()):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert all(signal.getsignal(number) != handler for number, handler in before.items())
        assert {number: signal.getsignal(number) for number in before} == before
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)


def test_off_the_main_thread_nothing_is_installed():
    seen = []

    def watch() -> None:
        stop = SignalStop()
        stop.add(a_run())
        seen.append(stop.previous)

    thread = threading.Thread(target=watch)
    thread.start()
    thread.join()
    assert seen == [{}]


# -- the CLI, in a child process -----------------------------------------------------------------


def start_cli(tmp_path: Path, *extra: str, code: str = "") -> subprocess.Popen:
    """``stylefw recipe`` in a child with a long run logging every step; ``code`` runs first (to patch it)."""
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe(tmp_path, scales=1, size=32, steps=100000)), encoding="utf-8")
    script = f"{code}\nfrom stylefw.cli import entry; entry()"
    command = [sys.executable, "-c", script, "recipe", str(path), "--progress", "plain", "--log-every", "1", *extra]
    # a shell that starts the suite in the background (cmd &) ignores SIGINT, and children inherit that
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def signal_after_a_step(process: subprocess.Popen, number: int | None) -> tuple[int, str]:
    """Wait for a step line, send ``number`` (None: the child signals itself), and return the exit code and stderr."""
    watchdog = threading.Timer(120, process.kill)  # never hang the suite if no step line comes
    watchdog.start()
    try:
        for line in process.stdout:
            if line.startswith("step "):
                break
        if number is not None:
            process.send_signal(number)
        _, stderr = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        process.kill()
    return process.returncode, stderr


def assert_whole_output(folder: Path) -> dict:
    """The output decodes, its sidecar says it was interrupted, and no temporary file is left."""
    with Image.open(folder / "out.png") as image:
        image.verify()
    sidecar = json.loads((folder / "out.png.json").read_text(encoding="utf-8"))
    assert sidecar["interrupted"] is True and 1 <= sidecar["steps_done"] < 100000
    assert not list(folder.glob("*.part")) and not list(folder.glob(".*.part"))
    return sidecar


@pytest.mark.parametrize(("name", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_kill_stops_the_cli_cleanly_with_128_plus_the_signal(tmp_path, name, code):
    process = start_cli(tmp_path)
    returncode, stderr = signal_after_a_step(process, getattr(signal, name))
    assert returncode == code, stderr
    assert f"by {name}; wrote the image so far to {tmp_path / 'out.png'}" in stderr
    assert "Traceback" not in stderr
    stopped = assert_whole_output(tmp_path)["stopped"]
    assert stopped["reason"] == "interrupted" and stopped["signal"] == name and stopped["stage"] == 1


# the child signals itself: SIGTERM after its first step, then again and again while the image is written
SIGNALS_WHILE_SAVING = """
import os, signal
import stylefw.engine.image, stylefw.engine.outputs, stylefw.plugins.progress
step = stylefw.plugins.progress.PlainRenderer.step
def first(self, event):
    step(self, event)
    if event.done == 1:
        os.kill(os.getpid(), signal.SIG{first})
stylefw.plugins.progress.PlainRenderer.step = first
image_writer = stylefw.engine.image.image_writer
def slow_writer(*args, **kwargs):
    write = image_writer(*args, **kwargs)
    def interrupted(handle):
        handle.write(b"half")
        os.kill(os.getpid(), signal.SIG{second})
        handle.seek(0)
        write(handle)
    return interrupted
stylefw.engine.outputs.image_writer = slow_writer
"""


def test_a_second_kill_while_saving_waits_for_the_image(tmp_path):
    process = start_cli(tmp_path, code=SIGNALS_WHILE_SAVING.format(first="TERM", second="TERM"))
    returncode, stderr = signal_after_a_step(process, None)
    assert returncode == 143, stderr
    assert "Traceback" not in stderr
    assert assert_whole_output(tmp_path)["stopped"]["signal"] == "SIGTERM"


def test_with_debug_a_second_ctrl_c_while_saving_aborts_and_keeps_the_previous_output(tmp_path):
    previous = tmp_path / "out.png"
    Image.new("RGB", (8, 8), "red").save(previous)
    before = previous.read_bytes()
    process = start_cli(tmp_path, "--debug",
                        code=SIGNALS_WHILE_SAVING.format(first="INT", second="INT"))
    returncode, stderr = signal_after_a_step(process, None)
    assert returncode == 130, stderr
    assert "Traceback" in stderr  # --debug
    assert previous.read_bytes() == before
    # the interrupt's checkpoint is written before the image, so it is whole; no temporary file is left
    assert sorted(path.name for path in tmp_path.iterdir()) == ["content.png", "out.png", "out.png.ckpt", "recipe.yaml",
                                                              "style.png"]
