"""Run events: their order and contents, plugin hooks, stopping from a subscriber, and reads from the device."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

import stylefw
import stylefw.plugins.progress
from stylefw import hookimpl
from stylefw.contracts import (Download, RunAbort, RunEnd, RunFinish, RunStart, Save, StageStart, StepEvent, Stop)
from stylefw.plugin_manager import get_plugin_manager
from stylefw.plugins.progress import PlainRenderer, RichRenderer
from stylefw.registry import build_registry

from test_image import _serve
from test_stages import recipe, write_image

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
    # the stages over, the result is finished (its trace, what plugins add), saved with its files, and ends
    assert kinds(events) == ["RunStart", "StageStart", "StepEvent", "StepEvent", "StageStart", "StepEvent",
                             "StepEvent", "StepEvent", "RunFinish", "Save", "RunEnd"]
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


def with_plugin(plugin: object, name: str):
    """A registry of the built-in plugins and ``plugin``, as the command line registers its display."""
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(plugin, name=name)
    return build_registry(manager)


def test_the_rich_display_reads_the_losses_at_most_ten_times_a_second(tmp_path, monkeypatch):
    tables = []
    monkeypatch.setattr(stylefw.plugins.progress, "_loss_table", lambda terms, loss: tables.append(loss))
    monkeypatch.setattr(stylefw.plugins.progress.time, "monotonic", lambda: 1000.0)  # no time passes
    with RichRenderer(console=__import__("rich.console").console.Console(file=io.StringIO())) as renderer:
        stylefw.run(recipe(tmp_path, steps=6, scales=[{"size": 24, "steps": 6}, {"size": 48}]), save=False,
                    registry=with_plugin(renderer, "progress"))
    assert len(tables) == 3  # the first step, then each stage's last


def test_plain_progress_names_the_stage_and_size(tmp_path):
    stream = io.StringIO()
    stylefw.run(recipe(tmp_path), save=False, registry=with_plugin(PlainRenderer(100, stream), "progress"))
    lines = [line.split("  ")[0] for line in stream.getvalue().splitlines()]
    assert lines == ["stage 1/2 (24 px) step 1/2", "stage 1/2 (24 px) step 2/2", "stage 2/2 (48 px) step 1/3",
                     "stage 2/2 (48 px) step 3/3"]



def test_plain_progress_logs_every_twentieth_of_the_run_unless_told(tmp_path):
    stream = io.StringIO()
    stylefw.run(recipe(tmp_path, size=24, steps=40, scales=[{"size": 24, "steps": 40}]), save=False,
                registry=with_plugin(PlainRenderer(stream=stream), "progress"))
    steps = [int(line.split("  ")[0].split()[-1].split("/")[0]) for line in stream.getvalue().splitlines()]
    assert steps == [1, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40]


class Watcher:
    """A plugin implementing every run hook, recording what it was given; it adds to the output's metadata, and a
    file of its own beside it."""

    def __init__(self) -> None:
        self.events: list = []

    @hookimpl
    def on_download(self, event):
        self.events.append(event)

    @hookimpl
    def on_run_finish(self, event):
        self.events.append(event)
        event.metadata["watched"] = {"steps": len(event.trace)}

    @hookimpl
    def on_save(self, event):
        self.events.append(event)
        text = f"{len(event.result.trace)} steps, snapshot: {event.snapshot}\n".encode()
        event.files[event.path.with_name(f"{event.path.name}.watched.txt")] = lambda handle: handle.write(text)

    @hookimpl
    def on_run_abort(self, event):
        self.events.append(event)

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


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    """One watched run, whose events and files the tests below only read."""
    watcher = Watcher()
    folder = tmp_path_factory.mktemp("watched")
    result = stylefw.run(recipe(folder, save_every=3), registry=with_plugin(watcher, "watcher"))
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
    assert events[-1].run is events[0].run and not any(isinstance(event, RunAbort) for event in events)


def test_hook_on_run_finish(watched):
    events, result = watched
    (finish,) = [event for event in events if isinstance(event, RunFinish)]
    assert finish.trace == list(result.trace) and len(result.trace) == 4  # the trace plugin filled it first
    assert finish.stopped == result.stopped and finish.picture.shape[-2:] == (32, 48)
    # what it adds to the metadata is the result's, and the output's and sidecar's
    assert result.metadata()["watched"] == {"steps": 4}
    assert json.loads(Path(f"{result.output}.json").read_text())["watched"] == {"steps": 4}
    # stopped after a whole step: the state to continue from, which the checkpoints plugin keeps
    assert finish.state()["done"] == 4 and Path(f"{result.output}.ckpt").is_file()


def test_hook_on_save(watched):
    events, result = watched
    saves = [event for event in events if isinstance(event, Save)]
    # save_every: 3 takes no snapshot here: stage 1 has 2 steps, and the watcher stops the run at stage 2's second
    assert [(event.path.name, event.snapshot) for event in saves] == [("out.png", False)]
    written = Path(f"{result.output}.watched.txt")
    assert written.read_text() == "4 steps, snapshot: False\n"
    assert set(path.name for path in written.parent.iterdir()) >= {"out.png", "out.png.json", "out.png.watched.txt"}


def test_a_snapshot_is_saved_through_the_hook_too(tmp_path):
    watcher = Watcher()
    stylefw.run(recipe(tmp_path, save_every=2), registry=with_plugin(watcher, "watcher"))
    saves = [(event.path.name, event.snapshot) for event in watcher.events if isinstance(event, Save)]
    assert saves == [("out.stage1.000002.png", True), ("out.stage2.000002.png", True), ("out.png", False)]
    # a snapshot has no sidecar: the sidecar plugin writes one for the output alone
    assert not (tmp_path / "out.stage1.000002.png.json").exists() and (tmp_path / "out.png.json").is_file()


def test_hook_on_download(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEFW_CACHE", str(tmp_path / "cache"))
    png = io.BytesIO()
    __import__("PIL.Image").Image.open(write_image(tmp_path / "served.png", 60, 40, 3)).save(png, format="PNG")
    _serve(monkeypatch, png.getvalue(), "image/png")
    watcher = Watcher()
    stylefw.run(recipe(tmp_path, content="https://example.com/photo.png"), save=False,
                registry=with_plugin(watcher, "watcher"))
    downloads = [event for event in watcher.events if isinstance(event, Download)]
    assert downloads and {event.url for event in downloads} == {"https://example.com/photo.png"}
    assert downloads[-1].done == downloads[-1].total == len(png.getvalue())
    assert watcher.events.index(downloads[-1]) < next(i for i, e in enumerate(watcher.events) if isinstance(e, RunStart))


class Falls:
    """A plugin whose on_step fails at the run's second step."""

    @hookimpl
    def on_step(self, event):
        if event.done == 2:
            raise RuntimeError("the plugin fell over")


def test_hook_on_run_abort(tmp_path):
    watcher = Watcher()
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(watcher, name="watcher")
    manager.register(Falls(), name="falls")
    with pytest.raises(RuntimeError, match="the plugin fell over"):
        stylefw.run(recipe(tmp_path), registry=build_registry(manager))
    abort = watcher.events[-1]
    assert isinstance(abort, RunAbort) and str(abort.error) == "the plugin fell over"
    assert abort.run is watcher.events[0].run
    assert not any(isinstance(event, (RunFinish, RunEnd)) for event in watcher.events)


def test_the_eta_leaves_out_the_time_before_the_first_step():
    from types import SimpleNamespace

    from stylefw.contracts import Stage
    from stylefw.tools.timing import Work

    stages = (Stage(1, 2, 128, (96, 128), 200), Stage(2, 2, 256, (192, 256), 100))
    work = Work(stages)

    def step(stage: int, number: int, elapsed: float) -> SimpleNamespace:
        return SimpleNamespace(stage=stages[stage - 1], step=number, elapsed=elapsed)

    assert work.remaining(step(1, 1, 30.0)) is None  # 30 s of set-up before the first step: not known yet
    # then 0.1 s a step at 128 px: the rest at that pace, a 256 px step counting as four at 128 px
    assert work.remaining(step(1, 11, 31.0)) == pytest.approx(0.1 * (189 + 4 * 100))
