"""A non-finite loss: the run rolls back to the last picture whose loss was finite, stops as ``failed`` naming
the term and its plugin, and blames the plugin, the learning rate or a weight. Steps that overshoot (most of
the picture pinned at 0 or 1) roll back to the last picture read with few values pinned, and fail too."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
import yaml

import stylefw
from stylefw import hookimpl
from stylefw.cli import main
from stylefw.contracts import FAILED, StepEvent
from stylefw.errors import RunError, StylefwWarning
from stylefw.plugin_manager import get_plugin_manager
from stylefw.registry import build_registry, default_registry

from test_stages import recipe

pytestmark = pytest.mark.filterwarnings("ignore:vgg19 uses random weights")  # random weights, on purpose


class NanLoss:
    """The image's mean, until its ``at``-th call: from then on NaN."""

    layers: list[str] = []

    def __init__(self, *, at: int = 3) -> None:
        self.at, self.calls = at, 0

    def prepare(self, targets) -> None:
        pass

    def __call__(self, features, image):
        self.calls += 1
        return image.mean() * (float("nan") if self.calls >= self.at else 1.0)


class Blowup(torch.optim.SGD):
    """SGD whose ``at``-th step leaves the image NaN, as a far too large step would."""

    def __init__(self, params, *, lr: float = 0.05, at: int = 3) -> None:
        super().__init__(params, lr=lr)
        self.at, self.count = at, 0

    def step(self, closure):
        loss = super().step(closure)
        self.count += 1
        if self.count >= self.at:
            with torch.no_grad():
                for group in self.param_groups:
                    for param in group["params"]:
                        self.spoil(param)
        return loss

    def spoil(self, image: torch.Tensor) -> None:
        image.fill_(float("nan"))


class Overshoot(Blowup):
    """SGD whose ``at``-th step and every one after throw the image far out of [0, 1], as far too large a
    learning rate does, while the losses (of the clamped picture) stay finite."""

    def spoil(self, image: torch.Tensor) -> None:
        image.sub_(0.5).mul_(1e6)


class Breaker:
    """A third-party plugin with a loss that goes NaN and optimizers that blow the image up or overshoot."""

    @hookimpl
    def register_losses(self, register):
        register("nanloss", NanLoss)

    @hookimpl
    def register_optimizers(self, register):
        register("blowup", Blowup)
        register("overshoot", Overshoot)


@pytest.fixture
def registry():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Breaker(), name="breaker")
    return build_registry(manager)


def with_nanloss(tmp_path: Path, at: int, **changes) -> dict:
    data = recipe(tmp_path, scales=1, size=24, **changes)
    data["losses"] = data["losses"] + [{"name": "nanloss", "weight": 2.0, "at": at}]
    return data


@pytest.mark.parametrize("steps", [8, 26])  # found at the stage's end, or at the trace's read after step 25
def test_a_nan_at_step_n_keeps_the_image_of_step_n_minus_1(tmp_path, registry, steps):
    failed = stylefw.run(with_nanloss(tmp_path, at=6, steps=steps), registry=registry)
    # step 6's loss is NaN: step 5's was the last finite one, computed from the image after 4 steps
    reference = stylefw.run(with_nanloss(tmp_path, at=1000, steps=4, output=None), registry=registry)
    assert torch.equal(failed.tensor, reference.tensor)
    assert [step.loss for step in failed.trace[:4]] == [step.loss for step in reference.trace]
    assert len(failed.trace) == 5 and all(step.loss == step.loss for step in failed.trace)
    stop = failed.stopped
    assert (stop.reason, stop.stage, stop.step) == (FAILED, 1, 6) and not failed.interrupted
    assert stop.details["last_finite"] == {"stage": 1, "step": 5}
    assert {key: stop.details[key] for key in ("term", "loss", "plugin", "value", "cause")} == {
        "term": "nanloss", "loss": "nanloss", "plugin": "breaker", "value": "nan", "cause": "plugin breaker"}
    assert stop.details["message"] == ("the loss became nan at step 6: term 'nanloss' (loss 'nanloss' from "
                                       "plugin 'breaker') returned nan for a finite image")
    assert "bug in the plugin 'breaker'" in stop.details["hint"] and "losses[2]" in stop.details["hint"]
    sidecar = json.loads(Path(f"{failed.output}.json").read_text())
    assert sidecar["stopped"] == {"reason": "failed", "stage": 1, "step": 6, **stop.details}
    assert sidecar["steps_done"] == len(sidecar["trace"]) == 5
    assert stylefw.engine.image.load_image(failed.output).tobytes() == reference.image.tobytes()


def test_an_image_blown_up_by_the_optimizer_blames_the_learning_rate(tmp_path, registry):
    data = recipe(tmp_path, scales=1, size=24, steps=8, optimizer={"name": "blowup", "lr": 0.5, "at": 3})
    result = stylefw.run(data, registry=registry, save=False)
    stop = result.stopped
    # step 3 leaves the image NaN, so step 4's losses are NaN; step 3's came from the image after 2 steps
    assert (stop.reason, stop.step, stop.details["cause"]) == (FAILED, 4, "optimizer.lr")
    assert stop.details["message"].startswith("the loss became nan at step 4: the image became non-finite, so term "
                                              "'content' (loss 'content' from stylefw) is nan")
    assert stop.details["hint"] == "lower optimizer.lr (now 0.5) or the loss weights"
    assert len(result.trace) == 3 and bool(torch.isfinite(result.tensor).all())


def test_a_nan_at_the_first_step_of_stage_two_keeps_stage_one(tmp_path, registry):
    data = recipe(tmp_path)  # stage 1: 2 steps at 24 px, stage 2: 3 at 48 px
    data["losses"] = data["losses"] + [{"name": "nanloss", "at": 3}]
    result = stylefw.run(data, registry=registry, save=False)
    assert (result.stopped.reason, result.stopped.stage, result.stopped.step) == (FAILED, 2, 1)
    assert result.stopped.details["last_finite"] == {"stage": 1, "step": 2}
    assert result.stopped.details["message"].startswith("the loss became nan at step 1 of stage 2 (48 px)")
    assert result.image.size == (24, 16) and len(result.trace) == 2


def test_a_nan_at_the_first_step_has_no_image_to_keep(tmp_path, registry):
    with pytest.raises(RunError, match=re.escape("the loss became nan at step 1: term 'nanloss'")):
        stylefw.run(with_nanloss(tmp_path, at=1, steps=3), registry=registry)
    assert not (tmp_path / "out.png").exists()


def test_a_ctrl_c_after_the_loss_went_nan_still_keeps_the_good_image(tmp_path, registry):
    def interrupt(event) -> None:
        if isinstance(event, StepEvent) and event.step == 8:
            event.stop("enough")  # before any read of the losses

    result = stylefw.run(with_nanloss(tmp_path, at=6, steps=20), registry=registry, save=False, on_event=interrupt)
    assert (result.stopped.reason, result.stopped.step) == (FAILED, 6)
    assert len(result.trace) == 5 and bool(torch.isfinite(result.tensor).all())


@pytest.fixture
def cli_registry(monkeypatch):
    """The CLI's registry, with the breaker plugin beside the installed ones."""
    default_registry.cache_clear()
    monkeypatch.setattr("stylefw.registry.default_registry.cache_clear", default_registry.cache_clear)
    default_registry().manager.register(Breaker(), name="breaker")
    yield
    default_registry.cache_clear()


def test_the_cli_exits_1_with_one_message_and_writes_the_last_good_image(tmp_path, cli_registry, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(with_nanloss(tmp_path, at=6, steps=10)), encoding="utf-8")
    assert main(["recipe", str(path), "--progress", "plain"]) == 1
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: the loss became nan at step 6: term 'nanloss' (loss 'nanloss' from plugin 'breaker') "
                      f"returned nan for a finite image; wrote the last image with a finite loss (step 5) to "
                      f"{tmp_path / 'out.png'}"]
    assert "  hint: this looks like a bug in the plugin 'breaker'" in err and "Traceback" not in err
    assert json.loads((tmp_path / "out.png.json").read_text())["stopped"]["reason"] == "failed"


# -- saturation ---------------------------------------------------------------------------------


def test_steps_that_overshoot_from_the_start_fail_and_write_nothing(tmp_path):
    data = recipe(tmp_path, scales=1, size=24, steps=3, optimizer={"name": "adam", "lr": 1e30})
    with pytest.raises(RunError) as caught:
        stylefw.run(data)
    assert re.fullmatch(r"\d+% of the image's values are pinned at 0 or 1 at step 3: the steps overshoot before any "
                        r"picture with few values pinned was kept: nothing was written", caught.value.message)
    assert caught.value.hint == "lower optimizer.lr (now 1e+30)"
    assert not (tmp_path / "out.png").exists()


def test_steps_that_overshoot_later_roll_back_to_the_last_picture_read_with_few_pinned(tmp_path, registry):
    # read after step 25 (sound), thrown out at step 27, read again at the stage's end (step 30)
    overshoot = {"name": "overshoot", "lr": 0.05, "at": 27}
    failed = stylefw.run(recipe(tmp_path, scales=1, size=24, steps=30, optimizer=overshoot), registry=registry)
    reference = stylefw.run(recipe(tmp_path, scales=1, size=24, steps=25, optimizer=overshoot, output=None),
                            registry=registry)
    assert torch.equal(failed.tensor, reference.tensor)
    stop = failed.stopped
    assert (stop.reason, stop.stage, stop.step) == (FAILED, 1, 30)
    assert stop.details["last_finite"] == {"stage": 1, "step": 25} and stop.details["cause"] == "optimizer.lr"
    assert re.fullmatch(r"\d+% of the image's values are pinned at 0 or 1 at step 30: the steps overshoot",
                        stop.details["message"])
    # the trace ends with the picture kept, and what the result records is that picture's
    assert [step.step for step in failed.trace] == list(range(1, 26))
    assert failed.final_losses == reference.final_losses
    sidecar = json.loads(Path(f"{failed.output}.json").read_text())
    assert sidecar["stopped"]["reason"] == "failed" and sidecar["steps_done"] == 25


def test_overshooting_in_stage_two_keeps_the_picture_stage_two_started_from(tmp_path, registry):
    overshoot = {"name": "overshoot", "lr": 0.05, "at": 3}  # stage 1: 2 steps at 24 px, stage 2: 3 at 48 px
    result = stylefw.run(recipe(tmp_path, optimizer=overshoot), registry=registry, save=False)
    assert (result.stopped.reason, result.stopped.stage) == (FAILED, 2)
    assert result.stopped.details["last_finite"] == {"stage": 2, "step": 0}
    assert result.stopped.details["message"].endswith("at step 3 of stage 2 (48 px): the steps overshoot")
    assert result.image.size == (48, 32) and len(result.trace) == 2
    assert float(((result.tensor <= 0) | (result.tensor >= 1)).float().mean()) < 0.5


def test_the_cli_exits_1_naming_the_learning_rate_and_the_picture_kept(tmp_path, cli_registry, capsys):
    path = tmp_path / "recipe.yaml"
    overshoot = {"name": "overshoot", "lr": 0.05, "at": 27}
    path.write_text(yaml.safe_dump(recipe(tmp_path, scales=1, size=24, steps=30, optimizer=overshoot)),
                    encoding="utf-8")
    assert main(["recipe", str(path), "--progress", "plain"]) == 1
    err = capsys.readouterr().err
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert re.fullmatch(r"error: \d+% of the image's values are pinned at 0 or 1 at step 30: the steps overshoot; "
                        rf"wrote the last image with few values pinned \(step 25\) to {re.escape(str(tmp_path))}/out.png",
                        error), error
    assert "  hint: lower optimizer.lr (now 0.05)" in err and "Traceback" not in err


def test_a_normal_learning_rate_runs_to_the_end(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = stylefw.run(recipe(tmp_path, scales=1, size=24, steps=30), save=False)
    assert result.stopped is None and len(result.trace) == 30
    assert not [w for w in caught if issubclass(w.category, StylefwWarning) and "pinned" in str(w.message)]
