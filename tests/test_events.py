"""Run events: their order and contents, plugin hooks, stopping from a subscriber, and reads from the device."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

import stylefw
import stylefw.progress
from stylefw import hookimpl
from stylefw.contracts import RunEnd, RunStart, StageStart, StepEvent, Stop
from stylefw.plugin_manager import get_plugin_manager
from stylefw.progress import PlainRenderer, RichRenderer
from stylefw.registry import build_registry

from test_stages import recipe

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose


def kinds(events: list) -> list[str]:
    return [type(event).__name__ for event in events]


def test_a_two_stage_run_emits_start_stages_steps_and_end_in_order(tmp_path):
    events: list = []
    shapes = []  # the image is the run's current one: read it while the event is current

    def watch(event) -> None:
        events.append(event)
        if isinstance(event, StepEvent):
            shapes.append(tuple(event.image().shape[-2:]))

    result = stylefw.run(recipe(tmp_path), on_event=watch)
    assert kinds(events) == ["RunStart", "StageStart", "StepEvent", "StepEvent", "StageStart", "StepEvent",
                             "StepEvent", "StepEvent", "RunEnd"]
    start, end = events[0], events[-1]
    assert [(stage.index, stage.count, stage.size, stage.shape, stage.steps) for stage in start.stages] == [
        (1, 2, 24, (16, 24), 2), (2, 2, 48, (32, 48), 3)]
    assert start.total_steps == 5 and start.recipe is result.recipe and start.device == "cpu"
    assert end.result is result
    stage_two = events[4]
    assert stage_two.stage == start.stages[1]
    # each image's features only where a loss reads them: the content at the content loss's layer, the style at Gram's
    assert set(stage_two.targets.content) == {"relu2_1"}
    assert [set(features) for features, _ in stage_two.targets.styles] == [{"relu1_1"}]
    steps = [event for event in events if isinstance(event, StepEvent)]
    assert [(event.stage.index, event.step, event.done) for event in steps] == [
        (1, 1, 1), (1, 2, 2), (2, 1, 3), (2, 2, 4), (2, 3, 5)]
    assert [event.elapsed for event in steps] == sorted(event.elapsed for event in steps)
    assert shapes == [(16, 24)] * 2 + [(32, 48)] * 3
    # an event's numbers are the trace's numbers
    assert [event.loss for event in steps] == [step.loss for step in result.trace]
    assert steps[-1].terms == result.trace[-1].terms and steps[-1].record() == result.trace[-1]


def test_a_subscriber_stops_the_run_cleanly_with_its_reason(tmp_path):
    def stop_in_stage_two(event) -> None:
        if isinstance(event, StepEvent) and event.stage.index == 2:
            event.stop("good enough")

    result = stylefw.run(recipe(tmp_path), on_event=stop_in_stage_two)
    assert result.stopped == Stop("good enough", 2, 1) and not result.interrupted
    assert len(result.trace) == 3 and result.image.size == (48, 32)
    sidecar = json.loads(Path(f"{result.output}.json").read_text())
    assert sidecar["stopped"] == {"reason": "good enough", "stage": 2, "step": 1}
    assert sidecar["interrupted"] is False and sidecar["steps_done"] == 3


class Reads:
    """Counts the reads of a tensor's values into Python during a run: each one waits for a GPU."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        for name in ("tolist", "__float__", "item"):
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self.counting(real))

    def counting(self, real):
        def read(tensor, *args, **kwargs):
            if tensor.is_floating_point() and tensor.dim() >= 1:  # the losses of steps, not Adam's step count
                self.count += 1
            return real(tensor, *args, **kwargs)

        return read


def test_the_engine_reads_the_losses_back_in_batches_not_every_step(tmp_path, monkeypatch):
    data = recipe(tmp_path, scales=1, steps=30, size=24)
    reads = Reads(monkeypatch)
    stylefw.run(data, save=False)
    # the trace and then the health check (health.py), each after step 25 and at the end: the second read
    # of each pair finds the device already drained by the first
    assert reads.count == 2 + 2
    reads.count = 0
    stylefw.run(data, save=False, on_step=lambda step: None)  # 0.1's on_step asks for numbers every step
    assert reads.count == 30 + 2 + 2


def test_the_rich_display_reads_the_losses_at_most_ten_times_a_second(tmp_path, monkeypatch):
    tables = []
    monkeypatch.setattr(stylefw.progress, "_loss_table", lambda terms, loss: tables.append(loss))
    monkeypatch.setattr(stylefw.progress.time, "monotonic", lambda: 1000.0)  # no time passes
    with RichRenderer(console=__import__("rich.console").console.Console(file=io.StringIO())) as renderer:
        stylefw.run(recipe(tmp_path, steps=6, scales=[{"size": 24, "steps": 6}, {"size": 48}]), save=False,
                    on_event=renderer)
    assert len(tables) == 3  # the first step, then each stage's last


def test_plain_progress_names_the_stage_and_size(tmp_path):
    stream = io.StringIO()
    stylefw.run(recipe(tmp_path), save=False, on_event=PlainRenderer(100, stream))
    lines = [line.split("  ")[0] for line in stream.getvalue().splitlines()]
    assert lines == ["stage 1/2 (24 px) step 1/2", "stage 1/2 (24 px) step 2/2", "stage 2/2 (48 px) step 1/3",
                     "stage 2/2 (48 px) step 3/3"]


class Watcher:
    """A plugin implementing every run hook, recording what it was given."""

    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def on_run_start(self, event):
        self.events.append(event)

    @hookimpl
    def on_stage_start(self, event):
        self.events.append(event)

    @hookimpl
    def on_step(self, event):
        self.events.append(event)
        if event.done == 4:
            event.stop("the watcher has seen enough")

    @hookimpl
    def on_run_end(self, event):
        self.events.append(event)


@pytest.fixture
def watched(tmp_path):
    manager = get_plugin_manager(load_entry_points=False)
    watcher = Watcher()
    manager.register(watcher, name="watcher")
    result = stylefw.run(recipe(tmp_path), registry=build_registry(manager), save=False)
    return watcher.events, result


def test_hook_on_run_start(watched):
    events, result = watched
    assert isinstance(events[0], RunStart) and [stage.size for stage in events[0].stages] == [24, 48]


def test_hook_on_stage_start(watched):
    events, _ = watched
    assert [event.stage.index for event in events if isinstance(event, StageStart)] == [1, 2]


def test_hook_on_step(watched):
    events, result = watched
    assert [event.done for event in events if isinstance(event, StepEvent)] == [1, 2, 3, 4]
    assert result.stopped == Stop("the watcher has seen enough", 2, 2)


def test_hook_on_run_end(watched):
    events, result = watched
    assert isinstance(events[-1], RunEnd) and events[-1].result is result
