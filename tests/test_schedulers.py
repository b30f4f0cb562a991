"""Learning-rate schedules: the rates a run really uses, the optimizer.schedule key, overrides and plugins."""

from __future__ import annotations

import math
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import stylefw
import stylefw.engine.stages
import stylefw.engine.session
from stylefw.cli import main
from stylefw.engine.optimise import optimise
from stylefw.errors import RecipeError
from stylefw.plugin_manager import get_plugin_manager
from stylefw.recipe import override, ScheduleSpec, recipe_from_dict
from stylefw.registry import build_registry, default_registry

pytestmark = [
    pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning"),  # random weights, on purpose
    # torch warns when a schedule is stepped before its optimizer: the engine's order must never trigger it
    pytest.mark.filterwarnings("error:Detected call of:UserWarning"),
]

LR = 0.1


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """content.png and style.png, 16 px noise: the runs below only read the learning rate."""
    for seed, name in enumerate(("content.png", "style.png")):
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
    return tmp_path


def recipe(images: Path, schedule: Any = None, **changes: Any) -> dict[str, Any]:
    """A cheap run (tv only, so the backbone is never evaluated) with Adam at LR and ``schedule``."""
    optimizer: dict[str, Any] = {"name": "adam", "lr": LR}
    if schedule is not None:
        optimizer["schedule"] = schedule
    data = {"content": str(images / "content.png"), "style": str(images / "style.png"), "size": 16, "steps": 10,
            "device": "cpu", "backbone": {"name": "vgg19", "weights": "random"}, "losses": [{"name": "tv"}],
            "optimizer": optimizer}
    return {**data, **changes}


class RateSpy:
    """Records, during a run, the rate each optimizer step used and the rate seen by ``on_step`` after it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.used: list[float] = []
        self.after: list[float] = []
        self.optimizer: torch.optim.Optimizer | None = None
        real = stylefw.engine.stages.optimise

        def spy(image, backbone, losses, weights, labels, optimizer, *args, **kwargs):
            self.optimizer = optimizer
            optimizer.register_step_pre_hook(lambda opt, *_: self.used.append(opt.param_groups[0]["lr"]))
            return real(image, backbone, losses, weights, labels, optimizer, *args, **kwargs)

        monkeypatch.setattr(stylefw.engine.stages, "optimise", spy)

    def on_step(self, step) -> None:
        self.after.append(self.optimizer.param_groups[0]["lr"])


def run_rates(monkeypatch, data: dict[str, Any], registry=None) -> RateSpy:
    # tv reads no layer, so the backbone is never evaluated: skip building a VGG for every run
    monkeypatch.setattr(stylefw.engine.session, "build_backbone", lambda *args: torch.nn.Identity())
    spy = RateSpy(monkeypatch)
    result = stylefw.run(data, on_step=spy.on_step, save=False, registry=registry)
    assert len(result.trace) == len(spy.used) == len(spy.after) == data["steps"]
    return spy


# -- the rates a run uses -----------------------------------------------------------------------


def test_step_schedule_multiplies_by_gamma_every_n_steps_during_the_run(images, monkeypatch):
    spy = run_rates(monkeypatch, recipe(images, {"name": "step", "every": 50, "gamma": 0.8}, steps=100))
    # as on_step sees the optimizer: the rate after step n is the one step n + 1 will use
    assert spy.after[49 - 1] == pytest.approx(LR)
    assert spy.after[50 - 1] == pytest.approx(0.8 * LR)
    assert spy.after[100 - 1] == pytest.approx(0.64 * LR)
    # so steps 1 to 50 run at LR and 51 to 100 at 0.8 LR, like torch's StepLR stepped once per epoch
    assert spy.used == pytest.approx([LR] * 50 + [0.8 * LR] * 50)


def test_exponential_schedule_multiplies_by_gamma_after_every_step(images, monkeypatch):
    spy = run_rates(monkeypatch, recipe(images, {"name": "exponential", "gamma": 0.9}, steps=12))
    assert spy.used == pytest.approx([LR * 0.9**n for n in range(12)])
    assert spy.after == pytest.approx([LR * 0.9**n for n in range(1, 13)])


def test_cosine_schedule_anneals_to_its_floor_over_the_run(images, monkeypatch):
    spy = run_rates(monkeypatch, recipe(images, {"name": "cosine", "floor": 0.1}, steps=20))
    expected = [LR * (0.1 + 0.9 * (1 + math.cos(math.pi * n / 20)) / 2) for n in range(20)]
    assert spy.used == pytest.approx(expected)
    assert spy.used[0] == pytest.approx(LR) and spy.used[10] == pytest.approx(0.55 * LR)
    assert spy.after[-1] == pytest.approx(0.1 * LR)  # reached only after the last step: no step is wasted


@pytest.mark.parametrize("schedule", [None, "none"])
def test_no_schedule_and_none_keep_the_rate_constant(images, monkeypatch, schedule):
    spy = run_rates(monkeypatch, recipe(images, schedule, steps=5))
    assert spy.used == spy.after == [LR] * 5


def test_a_schedule_applies_to_lbfgs_too(images, monkeypatch):
    data = recipe(images, steps=4)
    data["optimizer"] = {"name": "lbfgs", "lr": 0.01, "max_iter": 2, "schedule": {"name": "exponential", "gamma": 0.5}}
    assert run_rates(monkeypatch, data).used == pytest.approx([0.01, 0.005, 0.0025, 0.00125])


def test_the_engine_steps_the_scheduler_once_after_each_optimizer_step():
    image = torch.full((1, 3, 4, 4), 0.5, requires_grad=True)
    optimizer = torch.optim.SGD([image], lr=0.01)
    events: list[str] = []
    optimizer.register_step_post_hook(lambda *_: events.append("optimizer"))

    class Scheduler:
        def step(self) -> None:
            events.append("scheduler")

    square = lambda features, picture: (picture**2).sum()  # noqa: E731
    steps = list(optimise(image, None, [square], [1.0], ["square"], optimizer, 3, [], scheduler=Scheduler()))
    assert [step.step for step in steps] == [1, 2, 3]
    assert events == ["optimizer", "scheduler"] * 3


# -- the recipe key -----------------------------------------------------------------------------


def test_a_schedule_is_kept_in_the_resolved_recipe_and_not_given_to_the_optimizer(images):
    resolved = recipe_from_dict(recipe(images, {"name": "step", "every": 5}))
    assert resolved.optimizer.options == {"lr": LR}
    assert resolved.optimizer.schedule == ScheduleSpec("step", {"every": 5})
    assert resolved.data["optimizer"] == {"name": "adam", "lr": LR, "schedule": {"name": "step", "every": 5}}
    assert override(resolved, {"steps": 3}).optimizer.schedule == resolved.optimizer.schedule


def test_without_a_schedule_the_resolved_optimizer_is_unchanged(images):
    resolved = recipe_from_dict(recipe(images))
    assert resolved.optimizer.schedule is None
    assert resolved.data["optimizer"] == {"name": "adam", "lr": LR}


def test_the_shorthand_string_names_a_schedule_with_default_options(images):
    assert recipe_from_dict(recipe(images, "cosine")).optimizer.schedule == ScheduleSpec("cosine", {})


def test_the_schedule_is_embedded_in_the_output_metadata(images):
    result = stylefw.run(recipe(images, {"name": "exponential", "gamma": 0.5}, steps=2), save=False)
    assert result.metadata()["recipe"]["optimizer"]["schedule"] == {"name": "exponential", "gamma": 0.5}


def schedule_problems(images: Path, schedule: Any, **optimizer: Any) -> dict[str, str]:
    data = recipe(images, schedule)
    data["optimizer"].update(optimizer)
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(data)
    return {problem.path: problem.message for problem in caught.value.problems}


INSTALLED = ", ".join(default_registry().names("scheduler"))


@pytest.mark.parametrize(("schedule", "path", "message"), [
    ({"name": "stpe", "every": 50},
     "optimizer.schedule.name", f"unknown scheduler 'stpe' (did you mean step?); installed: {INSTALLED}"),
    ({"every": 50}, "optimizer.schedule", f"missing required key 'name'; installed schedulers: {INSTALLED}"),
    ({"name": "exponential"}, "optimizer.schedule", "missing required key 'gamma' for scheduler 'exponential'"),
    ({"name": "step", "every": 2.5}, "optimizer.schedule.every", "expected a whole number, got float 2.5"),
    ({"name": "cosine", "floor": "low"}, "optimizer.schedule.floor", "expected a number, got text 'low'"),
    ({"name": "step", "every": 0}, "optimizer.schedule.every", "0 is out of range; use 1 or more"),
    ({"name": "exponential", "gamma": 1.5},
     "optimizer.schedule.gamma", "1.5 is out of range; use a value above 0 and at most 1"),
    ({"name": "step", "every": 5, "gamma": 0},
     "optimizer.schedule.gamma", "0 is out of range; use a value above 0 and at most 1"),
    ({"name": "cosine", "floor": 2}, "optimizer.schedule.floor", "2 is out of range; use 0 to 1"),
    ({"name": "cosine", "total_steps": 10},
     "optimizer.schedule.total_steps", "the run's steps are passed as total_steps; remove this key"),
    ([50, 0.8], "optimizer.schedule", "expected a mapping of keys, got a list [50, 0.8]"),
])
def test_a_bad_schedule_is_reported_at_its_path(images, schedule, path, message):
    assert schedule_problems(images, schedule) == {path: message}


def test_a_misspelt_option_is_suggested_and_the_missing_one_named(images):
    assert schedule_problems(images, {"name": "step", "evry": 50}) == {
        "optimizer.schedule.evry": "unknown option 'evry' for scheduler 'step' (did you mean every?); "
                                   "valid: name, every, gamma",
        "optimizer.schedule": "missing required key 'every' for scheduler 'step'",
    }


def test_a_misspelt_schedule_key_is_suggested(images):
    problems = schedule_problems(images, None, schedul="cosine")
    assert problems["optimizer.schedul"].startswith(
        "unknown option 'schedul' for optimizer 'adam' (did you mean schedule?); valid: name, schedule, lr, ")


def test_schedule_problems_are_reported_with_the_others(images):
    data = recipe(images, {"name": "step", "evry": 50}, sise=3)
    data["losses"][0]["weight"] = -1
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(data)
    paths = [problem.path for problem in caught.value.problems]
    assert paths == ["sise", "losses[0].weight", "optimizer.schedule.evry", "optimizer.schedule"]


# -- overrides ----------------------------------------------------------------------------------


def test_set_changes_one_schedule_option(images):
    data = recipe(images, {"name": "step", "every": 50, "gamma": 0.8})
    resolved = recipe_from_dict(data, overrides=["optimizer.schedule.gamma=0.5"])
    assert resolved.optimizer.schedule == ScheduleSpec("step", {"every": 50, "gamma": 0.5})


def test_set_adds_a_schedule_to_a_recipe_without_one(images):
    resolved = recipe_from_dict(recipe(images), overrides=["optimizer.schedule={name: step, every: 50, gamma: 0.8}"])
    assert resolved.optimizer.schedule == ScheduleSpec("step", {"every": 50, "gamma": 0.8})
    shorthand = recipe_from_dict(recipe(images), overrides=["optimizer.schedule=cosine"])
    assert shorthand.optimizer.schedule == ScheduleSpec("cosine", {})
    # the shorthand is expanded before overrides apply, so a later --set can reach inside it
    floor = recipe_from_dict(recipe(images, "cosine"), overrides=["optimizer.schedule.floor=0.2"])
    assert floor.optimizer.schedule == ScheduleSpec("cosine", {"floor": 0.2})


def test_set_null_removes_a_schedule(images):
    resolved = recipe_from_dict(recipe(images, "cosine"), overrides=["optimizer.schedule=null"])
    assert resolved.optimizer.schedule is None


def test_set_an_option_without_a_name_is_reported(images):
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe(images), overrides=["optimizer.schedule.gamma=0.5"])
    assert [problem.path for problem in caught.value.problems] == ["optimizer.schedule"]
    assert "missing required key 'name'" in caught.value.problems[0].message


def test_cli_validate_names_the_schedule(images, monkeypatch, capsys):
    monkeypatch.chdir(images)
    (images / "r.yaml").write_text(yaml.safe_dump(recipe(images, {"name": "step", "every": 50})), encoding="utf-8")
    assert main(["validate", "r.yaml", "--set", "optimizer.schedule.gamma=0.5", "--steps", "100"]) == 0
    assert "adam with the step schedule for 100 steps" in capsys.readouterr().out
    assert main(["validate", "r.yaml", "--set", "optimizer.schedule.gama=0.5"]) == 2
    assert "optimizer.schedule.gama: unknown option 'gama' for scheduler 'step' (did you mean gamma?)" in (
        capsys.readouterr().err)


# -- plugins ------------------------------------------------------------------------------------


class Halving:
    """A third-party schedule that is not a torch LRScheduler: it halves the rate once, at step ``at``."""

    def __init__(self, optimizer, *, total_steps: int, at: int) -> None:
        if not 0 < at < total_steps:
            raise ValueError(f"at must be between 1 and total_steps - 1 ({total_steps - 1}), not {at}")
        self.optimizer, self.at, self.done = optimizer, at, 0

    def step(self) -> None:
        self.done += 1
        if self.done == self.at:
            for group in self.optimizer.param_groups:
                group["lr"] /= 2


class HalvingPlugin:
    @stylefw.hookimpl
    def register_schedulers(self, register):
        register("halving", Halving)


@pytest.fixture
def halving_registry():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(HalvingPlugin(), name="halving-plugin")
    return build_registry(manager)


def test_a_plugin_scheduler_is_usable_from_a_recipe(images, monkeypatch, halving_registry):
    assert halving_registry.get("scheduler", "halving").plugin == "halving-plugin"
    spy = run_rates(monkeypatch, recipe(images, {"name": "halving", "at": 3}, steps=5), registry=halving_registry)
    assert spy.used == [LR, LR, LR, LR / 2, LR / 2]


def test_a_plugin_scheduler_options_are_validated(images, halving_registry):
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe(images, {"name": "halving", "at": "3"}), registry=halving_registry)
    assert {p.path: p.message for p in caught.value.problems} == {
        "optimizer.schedule.at": "expected a whole number, got text '3'"}


def test_what_only_a_plugin_scheduler_can_refuse_stops_the_run_before_any_image_is_read(images, halving_registry):
    # the bound on ``at`` depends on the run's steps, which no annotation can say: validation passes,
    # and the run refuses at the schedule's path before it decodes the (here undecodable) content
    data = recipe(images, {"name": "halving", "at": 10})
    recipe_from_dict(data, registry=halving_registry)
    (images / "content.png").write_text("not an image")
    with pytest.raises(RecipeError) as caught:
        stylefw.run(data, registry=halving_registry, save=False)
    assert {p.path: p.message for p in caught.value.problems} == {
        "optimizer.schedule":
            "scheduler 'halving' rejects these options: at must be between 1 and total_steps - 1 (9), not 10"}


try:
    metadata.distribution("stylefw-example-plugin")
    EXAMPLE = True
except metadata.PackageNotFoundError:
    EXAMPLE = False


@pytest.mark.skipif(not EXAMPLE, reason="the example plugin is not installed: pip install -e tests/example_plugin")
def test_the_example_plugin_has_no_scheduler_hook_and_its_optimizer_takes_a_schedule(images, monkeypatch):
    registry = default_registry()
    assert registry.get("optimizer", "signsgd").plugin == "example"
    assert "example" not in {entry.plugin for entry in registry.entries("scheduler")}
    data = recipe(images, steps=4, backbone={"name": "tiny", "weights": "random"})
    data["optimizer"] = {"name": "signsgd", "lr": 0.04, "schedule": {"name": "step", "every": 2, "gamma": 0.5}}
    assert run_rates(monkeypatch, data).used == [0.04, 0.04, 0.02, 0.02]


def test_list_and_plugins_show_the_schedulers(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that rich wraps no cell
    assert main(["list"]) == 0
    rows = [re.split(r"\s{2,}", line.strip())[:3] for line in capsys.readouterr().out.splitlines()]
    for name in ("none", "step", "exponential", "cosine"):
        assert ["scheduler", name, "stylefw.plugins.schedulers"] in rows
    assert main(["plugins"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "stylefw.plugins.schedulers" in line)
    assert row.split()[:3] == ["stylefw.plugins.schedulers", "stylefw", stylefw.__version__]
    assert "scheduler cosine, scheduler exponential, scheduler none, scheduler step" in row
